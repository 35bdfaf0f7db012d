// native.ts — the addon's whole surface, typed and documented once. Everything here is a thin
// wrapper over a system call; validation and defaults live in the callers. Errors thrown by these
// functions look like Node's own: `code` ('EPERM'), `errno` (negative), `syscall` ('setns').
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** What `describeSocket` reports about a file descriptor. */
export interface SocketDescription {
  /** false for a regular file, pipe, ...: then the other fields are meaningless */
  isSocket: boolean;
  /** SOCK_STREAM, SOCK_DGRAM, ... */
  type: number;
  /** AF_INET, AF_INET6, AF_UNIX, ... */
  family: number;
  /** SO_ACCEPTCONN: listen() was called on it */
  listening: boolean;
  /** the bound address, "127.0.0.1:5432" or "[::1]:5432" (a path for AF_UNIX) */
  local: string;
}

/** One event from the engine; events arrive in batches. */
export interface EngineEvent {
  type: 'opened' | 'closed' | 'connect-failed' | 'accept-failed' | 'helper-restarted' | 'sockmap-loss';
  /** connection id, 1-based, unique for the engine's life (0 for accept failures) */
  id: number;
  /** index of the listener (the order of addListener calls), -1 if none */
  listener: number;
  /** for failures, and for connections that ended in an error */
  code?: string;
  errno?: number;
  syscall?: string;
  /** closed: bytes client -> target, target -> client, and how long it lived */
  bytesIn?: number;
  bytesOut?: number;
  durationMs?: number;
  /** closed: ended with a reset (a side reset, a connect failure, a forced stop), not two FINs */
  reset?: boolean;
  /** accept-failed: how many failures this event stands for (they are reported once a second);
   * sockmap-loss: how many bytes the kernel dropped */
  count?: number;
  /** helper-restarted: the helper process that died (0 when a new one failed to start) */
  pid?: number;
  /** opened: the client's address */
  peer?: string;
}

export interface EngineOptions {
  /** namespace fd (from openNamespace) in which upstream sockets are created */
  netnsFd: number;
  /** -1: workers setns() into netnsFd themselves (needs CAP_SYS_ADMIN over it: root). Else the
   * owning user namespace: a helper process per worker joins it, then the netns, and makes the
   * sockets (rootless targets, no capabilities needed). */
  usernsFd: number;
  /** worker threads, each with its own epoll set */
  threads: number;
  /** exact limit on open connections; at the limit the kernel backlog holds new clients */
  connectionsMax: number;
  /** pipe size requested with F_SETPIPE_SZ (the kernel may give less) */
  pipeSize: number;
  /** a target that does not answer a SYN for this long fails the connection; 0: the kernel's ~2 min */
  connectTimeoutMs: number;
  /** TCP keepalive on both legs: idle seconds before probes (0: off), seconds between probes,
   * unanswered probes before the connection is reset */
  keepaliveIdleS: number;
  keepaliveIntervalS: number;
  keepaliveCount: number;
  /** PROXY protocol header sent to the service before any byte of the client's: 0 none, 1 or 2 */
  proxyProtocol: 0 | 1 | 2;
  /** who moves the bytes: user space (splice), the kernel (sockmap, root only), or splice with
   * conversational connections moved to sockmap and bulk ones back (auto); sockmap and auto fall
   * back to splice when they cannot run (engineInUse() says why) */
  engine: 'splice' | 'sockmap' | 'auto';
  /** auto: bytes a connection may move in 25 ms before it counts as bulk and moves to splice */
  sockmapBulkBytes?: number;
  /** auto: exchanges (pumps that moved bytes) a connection makes on splice before it joins
   * sockmap; 0: it joins as soon as it is connected */
  sockmapAfter?: number;
  /** report 'opened'/'closed' for every connection (failures are always reported) */
  reportConnections: boolean;
  /** start without accepting (setAccepting(true) later, once the target is ready) */
  startPaused: boolean;
}

export interface EngineStats {
  active: number;
  total: number;
  /** bytes moved by the kernel (sockmap) count once the connection leaves sockmap */
  bytesIn: number;
  bytesOut: number;
  connectFailures: number;
  /** connections on sockmap now (the rest of `active` on splice), ever, and moved to splice */
  sockmapActive: number;
  sockmapTotal: number;
  migrations: number;
  /** of those, reset because the kernel dropped bytes as they left sockmap (never silently) */
  sockmapLosses: number;
}

/** The data plane: worker threads inside the target netns that accept, connect and splice. */
export interface Engine {
  /** Forward what listening socket `fd` accepts to targetAddress:targetPort (numeric) inside the
   * namespace. Takes ownership of fd (made non-blocking and close-on-exec). Before start(). */
  addListener(fd: number, targetAddress: string, targetPort: number): number;
  /** Starts the workers; throws (e.g. setns EPERM) if they cannot enter the namespace. */
  start(): void;
  /** Stops accepting, closes all connections and listeners, joins the workers. Idempotent;
   * afterwards nothing of the engine keeps the event loop alive. */
  stop(): void;
  stats(): EngineStats;
  /** After start(): the engine in use, and why when it is not the one asked for. */
  engineInUse(): { engine: 'splice' | 'sockmap' | 'auto'; why?: string };
  /** Accept or not; clients wait in the kernel backlog meanwhile. Open connections go on. */
  setAccepting(accepting: boolean): void;
  /** Moves the workers into another namespace (the target restarted), usernsFd as in the
   * options. Call while not accepting. */
  enterNetns(netnsFd: number, usernsFd: number): void;
  /** Where listener `index` forwards to from now on (each worker switches between two events). */
  setTarget(index: number, address: string, port: number): void;
}

/** What execInTarget runs, and as whom (see native/exec_in_target.h). */
export interface ExecSpec {
  /** the target process (its cgroup/ipc/uts/pid/mnt namespaces, root and cwd); 0 for a bare netns */
  pid: number;
  /** pidfd holding pid, checked after the /proc files are opened (PID reuse); -1 for none */
  pidfd: number;
  netnsFd: number;
  /** the owning user namespace, joined first (no CAP_SYS_ADMIN); -1: enter directly */
  usernsFd: number;
  /** credentials inside; -1 / absent: keep nsproxy's */
  uid: number;
  gid: number;
  groups?: number[];
  /** the target's capability sets as /proc/PID/status shows them (hex); absent: keep */
  capabilities?: { bounding: string; effective: string; permitted: string; inheritable: string };
  noNewPrivs: boolean;
  argv: string[];
  /** the paths tried for argv[0], in order (the PATH search, done by the caller) */
  candidates: string[];
  /** "NAME=value" */
  env: string[];
  timeoutMs: number;
  /** bytes of output kept (stdout and stderr together) */
  outputMax: number;
}

export type ExecOutcome =
  | { outcome: 'exited'; exitCode?: number; signal?: string; output: string; truncated: boolean }
  | { outcome: 'timeout'; output: string; truncated: boolean }
  | { outcome: 'failed'; code: string; errno: number; syscall: string; output: string; truncated: boolean };

/** What inspectNetns saw inside a network namespace. */
export interface NetnsSnapshot {
  links: Array<{ index: number; name: string; up: boolean; loopback: boolean }>;
  addresses: Array<{ index: number; family: 4 | 6; address: string; prefixLength: number; scope: number }>;
  /** /proc/net/tcp and tcp6 as read inside */
  tcp: string;
  tcp6: string;
}

export interface Native {
  /** open(path, O_RDONLY|O_CLOEXEC) of a namespace file: /proc/PID/ns/net, /run/netns/NAME */
  openNamespace(path: string): number;
  /** ioctl(NS_GET_NSTYPE): a CLONE_NEW* constant, or 0 when fd is not a namespace */
  namespaceType(fd: number): number;
  /** Connects to address:port from inside the namespace (on a thread of its own, or through a
   * one-shot helper when usernsFd >= 0) and closes: resolves null when the target accepted,
   * else why not ({code: 'ECONNREFUSED', ...}). */
  probeTcp(netnsFd: number, usernsFd: number, address: string, port: number, timeoutMs: number): Promise<null | { code: string; errno: number; syscall: string }>;
  /** Runs a command inside the target as `podman exec` would (its namespaces, root, cwd, user),
   * from a forked child that joins usernsFd first when given; never on libuv's pool. Resolves
   * with how it ended; setup failures ('setns mnt', 'execve' ENOENT, ...) are outcome 'failed'. */
  execInTarget(spec: ExecSpec): Promise<ExecOutcome>;
  /** Interfaces, addresses and /proc/net/tcp{,6} from inside netnsFd (a forked child joins
   * usernsFd first when >= 0); rejects with a Node-shaped error when it cannot get in. */
  inspectNetns(netnsFd: number, usernsFd: number, timeoutMs: number): Promise<NetnsSnapshot>;
  /** ioctl(NS_GET_USERNS): a new fd of the user namespace that owns namespace fd */
  owningUserns(fd: number): number;
  /** ioctl(NS_GET_OWNER_UID): the uid that created user namespace usernsFd */
  usernsOwnerUid(usernsFd: number): number;
  /** Calls onReadable once when fd becomes readable (a pidfd: its process exited). Does not keep
   * the event loop alive; close() cancels. */
  FdWatch: new (fd: number, onReadable: () => void) => { close(): void };
  /** pidfd_open(pid): holds a process without a PID-reuse race */
  pidfdOpen(pid: number): number;
  /** inode number of fd, as a decimal string (systemd's $LISTEN_PIDFDID is a pidfd's inode) */
  fdInode(fd: number): string;
  /** socket+bind+listen on a numeric address in the host namespace: non-blocking, close-on-exec,
   * SO_REUSEADDR, TCP_NODELAY (inherited by accepted sockets) */
  listenTcp(address: string, port: number, backlog: number): number;
  describeSocket(fd: number): SocketDescription;
  /** Raises the RLIMIT_NOFILE soft limit to the hard limit; returns the new limits. */
  raiseNofileLimit(): { soft: number; hard: number };
  /** Sends one sd_notify datagram to socketPath (a path, or "@name" for an abstract socket). */
  sdNotify(socketPath: string, state: string): void;
  Engine: new (options: EngineOptions, onEvents: (events: EngineEvent[]) => void) => Engine;
  constants: { CLONE_NEWNET: number; SOCK_STREAM: number; AF_INET: number; AF_INET6: number; AF_UNIX: number };
}

let loaded: Native | undefined;

/** Where node-gyp puts the addon: build/Debug (node-gyp rebuild --debug, for sanitizer runs) wins
 * over build/Release, as with the bindings package, which looked in many more places at every
 * start-up. From dist/ (and from src/ in unit tests) it is ../build. */
function addonPath(): string {
  const debug = join(__dirname, '..', 'build', 'Debug', 'nsproxy.node');
  return existsSync(debug) ? debug : join(__dirname, '..', 'build', 'Release', 'nsproxy.node');
}

/** The compiled addon, loaded on first use. */
export function loadNative(): Native {
  loaded ??= require(addonPath()) as Native;
  return loaded;
}
