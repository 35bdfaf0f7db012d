// options.ts — every option of the daemon, once: yargs registers them (cli.ts), `nsproxy
// generate` passes them on, the environment layer maps NSPROXY_<NAME> to them (env-options.ts)
// and the man page is written from them (scripts/man.js). Data only, no behaviour.

export interface OptionSpec {
  /** the long option without "--" */
  name: string;
  type: 'string' | 'boolean';
  /** the value's placeholder in the man page: "NAME", "ADDR:PORT" */
  value?: string;
  /** may be given more than once; from the environment: words separated by white space */
  repeatable?: boolean;
  description: string;
}

/** `--to-like` -> NSPROXY_TO_LIKE */
export function envName(option: string): string {
  return `NSPROXY_${option.toUpperCase().replace(/-/g, '_')}`;
}

export const TARGET_OPTIONS: OptionSpec[] = [
  { name: 'container', type: 'string', value: 'NAME', description: 'Target a container by NAME or ID, resolved with --runtime; followed across restarts' },
  { name: 'runtime', type: 'string', value: 'RUNTIME', description: 'How --container is resolved: podman (podman inspect, the default) or runc (runc state)' },
  { name: 'runc-root', type: 'string', value: 'DIR', description: 'runc state directory (runc --root), for --runtime runc' },
  { name: 'pid', type: 'string', value: 'PID', description: 'Target the network namespace of process PID (/proc/PID/ns/net); nsproxy exits when PID does' },
  { name: 'netns', type: 'string', value: 'NAME|PATH', description: 'Target a bind-mounted namespace: a NAME under /run/netns (ip netns add NAME), or a PATH' },
];

export const TO_OPTION: OptionSpec = {
  name: 'to',
  type: 'string',
  value: 'ADDR:PORT',
  repeatable: true,
  description:
    "Where to connect inside the namespace: 127.0.0.1:5432, [::1]:5432, localhost:5432, or @NETWORK:PORT (the container's address on a podman network). NAME=... applies to the systemd socket NAME (FileDescriptorName=); repeatable. Also the first argument without an option, as systemd-socket-proxyd takes it",
};

export const READY_OPTIONS: OptionSpec[] = [
  { name: 'ready-exec', type: 'string', value: "'CMD ARG...'", description: "Also wait until CMD, run inside the target as podman exec would (its namespaces, root, user; no shell: write sh -c '...' for one), exits 0: at start, after every container restart and on reload. Example: 'pg_isready -h 127.0.0.1'" },
  { name: 'ready', type: 'string', value: 'tcp|health', description: "What else readiness waits for: tcp (the --to port accepts a connection, always checked; the default) or health (also podman's healthcheck status: healthy)" },
  { name: 'ready-timeout', type: 'string', value: 'DURATION', description: 'How long to wait for the target to be ready, at start, after a container restart and on reload (default 60s); then exit 1' },
];

export const DAEMON_OPTIONS: OptionSpec[] = [
  ...TARGET_OPTIONS,
  TO_OPTION,
  { name: 'listen', type: 'string', value: 'ADDR:PORT', repeatable: true, description: 'Host address to accept on, repeatable; PORT alone means 127.0.0.1:PORT, port 0 lets the kernel choose. Default: 127.0.0.1:<port of --to>, unless systemd passed sockets' },
  ...READY_OPTIONS,
  { name: 'connections-max', type: 'string', value: 'N', description: 'At most N connections at once (default 4096); at the limit nsproxy stops accepting and the kernel backlog holds the rest' },
  { name: 'backlog', type: 'string', value: 'N', description: 'listen(2) backlog of --listen sockets (default 128)' },
  { name: 'threads', type: 'string', value: 'N', description: 'Engine threads (default 1)' },
  { name: 'exit-idle-time', type: 'string', value: 'DURATION', description: 'Exit 0 after no connection was open for this long (default infinity: never); the .socket unit starts nsproxy again' },
  { name: 'drain-timeout', type: 'string', value: 'DURATION', description: 'On SIGTERM, let open connections finish for up to this long (default 10s); those still open then are reset' },
  { name: 'connect-timeout', type: 'string', value: 'DURATION', description: "Give up on a target that does not answer a connection for this long (default 10s; off: the kernel's ~2 min); the client gets a reset" },
  { name: 'keepalive', type: 'string', value: 'DURATION', description: 'TCP keepalive on both legs: probe a silent connection after this long, every quarter of it, and reset it after 4 unanswered probes (default 2min; off disables)' },
  { name: 'engine', type: 'string', value: 'auto|sockmap|splice', description: 'Who moves the bytes: sockmap (the kernel, a BPF program redirects each segment: least latency for request/response), splice (nsproxy\'s threads: cheapest for bulk), or auto (default): splice, and a connection that keeps exchanging small messages moves to sockmap, and back to splice if it turns bulk. sockmap needs root (CAP_BPF, CAP_NET_ADMIN); without it, and for rootless targets, both mean splice' },
  { name: 'sockmap-after', type: 'string', value: 'N', description: 'With --engine auto: a connection moves to sockmap after N exchanges (reads that moved bytes) on splice while under --sockmap-bulk bytes in all; short connections never pay for joining (default 4; 0: at once)' },
  { name: 'sockmap-bulk', type: 'string', value: 'BYTES', description: 'With --engine auto: a connection that moves this many bytes within 25 ms is bulk and moves to splice (default 256K: about 10 MB/s)' },
  { name: 'proxy-protocol', type: 'string', value: 'v1|v2', description: "Tell the service who the client is: send a PROXY protocol header (HAProxy's; nginx, HAProxy, Traefik, pgbouncer read it) of this version on each connection, before any byte of the client's (default: none)" },
  { name: 'log-connections', type: 'boolean', description: 'Log every connection when it ends, at level info: client address, target, bytes each way, duration, how it ended' },
  { name: 'log-level', type: 'string', value: 'LEVEL', description: 'One of trace, debug, info, warn, error (default info; debug logs every connection)' },
  { name: 'debug', type: 'boolean', description: 'Log level debug, and stack traces on errors' },
];
