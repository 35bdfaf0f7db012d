// config.ts — turns the parsed command line into one validated Config, or a one-line error.
import { parseEndpoint, parsePort, type Endpoint } from './address';
import { splitCommand } from './command-words';
import { parseDuration } from './duration';
import { NsproxyError } from './errors';
import { RUNTIMES, type RuntimeName } from './runtimes';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type TargetSpec =
  | { kind: 'pid'; pid: number }
  | { kind: 'netns'; path: string; name: string }
  | { kind: 'container'; name: string; runtime: RuntimeName; runcRoot?: string };

/** Where a connection goes inside the namespace: a literal address, or the container's address on a network. */
export type Destination = { kind: 'address'; endpoint: Endpoint } | { kind: 'network'; network: string; port: number };

/** One --to: for the systemd socket called `name`, or (no name) for every other listener. */
export interface Route {
  name?: string;
  destination: Destination;
}

/** --ready-exec: a command run inside the target; exit 0 means ready. */
export interface ReadyExec {
  /** as the user wrote it, for logs */
  command: string;
  argv: string[];
}

export const READY_KINDS = ['tcp', 'health'] as const;

export interface Config {
  target: TargetSpec;
  routes: Route[];
  /** --listen endpoints; empty means "systemd's sockets, or the default" */
  listen: Endpoint[];
  /** used when there is no --listen and no socket from systemd: 127.0.0.1:<port of --to> */
  defaultListen: Endpoint;
  readyTimeoutMs: number;
  readyExec?: ReadyExec;
  /** --ready health: also wait for podman's healthcheck to say healthy */
  readyHealth: boolean;
  /** undefined: never exit for idleness */
  exitIdleTimeMs?: number;
  drainTimeoutMs: number;
  /** upstream connect() timeout; 0: the kernel's own (~2 min of SYN retries) */
  connectTimeoutMs: number;
  /** TCP keepalive idle time on both legs; 0: off */
  keepaliveMs: number;
  /** PROXY protocol version to send to the service: 0 none */
  proxyProtocol: 0 | 1 | 2;
  /** who moves the bytes (the engine may fall back to splice) */
  engine: 'auto' | 'sockmap' | 'splice';
  /** --engine auto: bytes within 25 ms that make a connection bulk */
  sockmapBulkBytes: number;
  sockmapAfter: number;
  connectionsMax: number;
  backlog: number;
  threads: number;
  logLevel: LogLevel;
  /** --log-connections: an info line per connection */
  logConnections: boolean;
  debug: boolean;
}

/** The options as yargs hands them over: strings, kept raw so that we word the errors. */
export interface RawOptions {
  pid?: string | string[];
  netns?: string | string[];
  container?: string | string[];
  runtime?: string | string[];
  runcRoot?: string | string[];
  readyTimeout?: string | string[];
  readyExec?: string | string[];
  ready?: string | string[];
  exitIdleTime?: string | string[];
  drainTimeout?: string | string[];
  connectTimeout?: string | string[];
  keepalive?: string | string[];
  proxyProtocol?: string | string[];
  engine?: string | string[];
  sockmapBulk?: string | string[];
  sockmapAfter?: string | string[];
  to?: string | string[];
  listen?: string | string[];
  connectionsMax?: string | string[];
  backlog?: string | string[];
  threads?: string | string[];
  logLevel?: string | string[];
  logConnections?: boolean;
  debug?: boolean;
}

function usage(message: string): NsproxyError {
  return new NsproxyError('NSPROXY_ERR_USAGE', message);
}

export function single(name: string, value: string | string[] | undefined): string | undefined {
  if (Array.isArray(value)) {
    if (value.length > 1) throw usage(`--${name} given ${value.length} times; give it once`);
    return value[0];
  }
  return value;
}

export function list(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function positiveInt(name: string, value: string | undefined, fallback: number, max: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw usage(`--${name} '${value}': not a whole number from ${min} to ${max}; e.g. --${name} ${fallback}`);
  }
  return Number(value);
}

export function targetSpec(raw: RawOptions): TargetSpec {
  const pid = single('pid', raw.pid);
  const netns = single('netns', raw.netns);
  const container = single('container', raw.container);
  const given = [pid !== undefined && '--pid', netns !== undefined && '--netns', container !== undefined && '--container'].filter(Boolean);
  if (given.length > 1) {
    throw usage(`${given.join(' and ')} both given; name the target namespace once, with one of them`);
  }
  if (container !== undefined) {
    if (container === '') throw usage('--container is empty; give a container name or ID');
    const runtime = single('runtime', raw.runtime) ?? 'podman';
    if (!(RUNTIMES as readonly string[]).includes(runtime)) throw usage(`--runtime '${runtime}': not supported; use one of ${RUNTIMES.join(', ')}`);
    return { kind: 'container', name: container, runtime: runtime as RuntimeName, runcRoot: single('runc-root', raw.runcRoot) };
  }
  if (raw.runtime !== undefined) throw usage('--runtime applies to --container only; drop it, or name the target with --container');
  if (pid !== undefined) {
    if (!/^\d+$/.test(pid) || Number(pid) < 1 || Number(pid) > 4194304) {
      throw usage(`--pid '${pid}': not a process ID; give a number such as the output of podman inspect -f '{{.State.Pid}}' NAME`);
    }
    return { kind: 'pid', pid: Number(pid) };
  }
  if (netns !== undefined) {
    if (netns === '') throw usage('--netns is empty; give a name under /run/netns or a path');
    const path = netns.includes('/') ? netns : `/run/netns/${netns}`;
    return { kind: 'netns', path, name: netns };
  }
  throw usage('no target namespace; give --container NAME, --pid PID or --netns NAME|PATH (see nsproxy --help)');
}

export function parseRoute(text: string, target: TargetSpec): Route {
  const named = /^([^=[\]:@]+)=(.*)$/.exec(text);
  const name = named?.[1];
  const rest = named ? (named[2] as string) : text;
  const network = /^@([^:]+):(.*)$/.exec(rest);
  if (!network) return { name, destination: { kind: 'address', endpoint: parseEndpoint(rest, { option: '--to' }) } };
  if (target.kind !== 'container') {
    throw usage(`--to '${text}': addresses on a network need --container; give a numeric address, or name the container`);
  }
  const port = parsePort(text, network[2] as string, { option: '--to' });
  return { name, destination: { kind: 'network', network: network[1] as string, port } };
}

function parseRoutes(raw: RawOptions, target: TargetSpec): Route[] {
  const texts = list(raw.to);
  if (texts.length === 0) throw usage('--to is missing; give the address inside the namespace, e.g. --to 127.0.0.1:5432');
  const routes = texts.map((text) => parseRoute(text, target));
  const names = routes.map((route) => route.name ?? '');
  const twice = names.find((name, i) => names.indexOf(name) !== i);
  if (twice === '') {
    throw usage('--to given more than once without NAME=; name the sockets (--to NAME=ADDR:PORT, NAME from FileDescriptorName=) or give one --to');
  }
  if (twice !== undefined) throw usage(`--to ${twice}= given twice; give each socket name one --to`);
  return routes;
}

/** Port (and family) of the unnamed route, for the default listener. */
function defaultListenFor(routes: Route[]): Endpoint {
  const destination = (routes.find((route) => route.name === undefined) ?? routes[0] as Route).destination;
  if (destination.kind === 'network') return { address: '127.0.0.1', port: destination.port, family: 4 };
  const { endpoint } = destination;
  return { address: endpoint.family === 6 ? '::1' : '127.0.0.1', port: endpoint.port, family: endpoint.family };
}

function duration(name: string, value: string | undefined, fallbackMs: number): number {
  return value === undefined ? fallbackMs : parseDuration(`--${name}`, value);
}

const ENGINES = ['auto', 'sockmap', 'splice'] as const;

function engineKind(value: string | undefined): Config['engine'] {
  if (value === undefined) return 'auto';
  if (!(ENGINES as readonly string[]).includes(value)) throw usage(`--engine '${value}': not an engine; use one of ${ENGINES.join(', ')}`);
  return value as Config['engine'];
}

/** 4096, 64K, 1M, 2MiB: bytes (K, M, G: powers of 1024, as systemd reads sizes). */
function byteSize(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const m = /^(\d+)\s*([KMG]?)(i?B)?$/i.exec(value.trim());
  const bytes = m ? Number(m[1]) * 1024 ** ['', 'K', 'M', 'G'].indexOf((m[2] ?? '').toUpperCase()) : NaN;
  if (!(bytes >= 1)) throw usage(`--${name} '${value}': not a size; write bytes, e.g. 262144, 256K or 1M`);
  return bytes;
}

/** --proxy-protocol v1|v2 (or 1, 2; off, none) -> the header version, 0 for none. */
function proxyProtocol(value: string | undefined): 0 | 1 | 2 {
  const versions: Record<string, 0 | 1 | 2> = { v1: 1, '1': 1, v2: 2, '2': 2, off: 0, none: 0 };
  if (value === undefined) return 0;
  const version = versions[value.toLowerCase()];
  if (version === undefined) throw usage(`--proxy-protocol '${value}': not a PROXY protocol version; use v1 (text) or v2 (binary), as the service expects`);
  return version;
}

/** A duration where 0, "off" and "infinity" mean "none" (0). */
function offOrDuration(name: string, value: string | undefined, fallbackMs: number): number {
  if (value === 'off' || value === 'no') return 0;
  const ms = duration(name, value, fallbackMs);
  return ms === Infinity ? 0 : Math.round(ms);
}

export function readyExec(text: string | undefined): ReadyExec | undefined {
  if (text === undefined) return undefined;
  let argv: string[];
  try {
    argv = splitCommand(text);
  } catch (err) {
    throw usage(`--ready-exec '${text}': ${(err as Error).message}; quote the command as a shell would, e.g. --ready-exec 'pg_isready -h 127.0.0.1'`);
  }
  if (argv.length === 0) throw usage("--ready-exec is empty; give the command that exits 0 once the service is ready, e.g. 'pg_isready -h 127.0.0.1'");
  return { command: text, argv };
}

/** --ready tcp|health; health needs podman's inspect data. */
export function readyHealth(value: string | undefined, target: TargetSpec): boolean {
  if (value === undefined || value === 'tcp') return false;
  if (value !== 'health') throw usage(`--ready '${value}': not a readiness kind; use one of ${READY_KINDS.join(', ')} (and --ready-exec CMD for a command)`);
  if (target.kind !== 'container' || target.runtime !== 'podman') {
    throw usage("--ready health needs --container with podman (it reads podman's healthcheck status); use --ready-exec CMD for other targets");
  }
  return true;
}

export function buildConfig(raw: RawOptions): Config {
  const target = targetSpec(raw);
  const routes = parseRoutes(raw, target);
  const exitIdle = single('exit-idle-time', raw.exitIdleTime);
  const exitIdleTimeMs = exitIdle === undefined ? Infinity : parseDuration('--exit-idle-time', exitIdle);
  const listen = list(raw.listen).map((text) => parseEndpoint(text, { option: '--listen', portOnly: true, portZero: true }));
  const logLevel = single('log-level', raw.logLevel) ?? (raw.debug ? 'debug' : 'info');
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw usage(`--log-level '${logLevel}': not a log level; use one of ${LOG_LEVELS.join(', ')}`);
  }
  return {
    target,
    routes,
    listen,
    defaultListen: defaultListenFor(routes),
    readyTimeoutMs: duration('ready-timeout', single('ready-timeout', raw.readyTimeout), 60_000),
    readyExec: readyExec(single('ready-exec', raw.readyExec)),
    readyHealth: readyHealth(single('ready', raw.ready), target),
    exitIdleTimeMs: exitIdleTimeMs === Infinity ? undefined : exitIdleTimeMs,
    drainTimeoutMs: duration('drain-timeout', single('drain-timeout', raw.drainTimeout), 10_000),
    connectTimeoutMs: offOrDuration('connect-timeout', single('connect-timeout', raw.connectTimeout), 10_000),
    keepaliveMs: offOrDuration('keepalive', single('keepalive', raw.keepalive), 120_000),
    proxyProtocol: proxyProtocol(single('proxy-protocol', raw.proxyProtocol)),
    engine: engineKind(single('engine', raw.engine)),
    sockmapBulkBytes: byteSize('sockmap-bulk', single('sockmap-bulk', raw.sockmapBulk), 256 * 1024),
    sockmapAfter: positiveInt('sockmap-after', single('sockmap-after', raw.sockmapAfter), 4, 1_000_000, 0),
    connectionsMax: positiveInt('connections-max', single('connections-max', raw.connectionsMax), 4096, 1_000_000),
    backlog: positiveInt('backlog', single('backlog', raw.backlog), 128, 65535),
    threads: positiveInt('threads', single('threads', raw.threads), 1, 64),
    logLevel: logLevel as LogLevel,
    logConnections: raw.logConnections ?? false,
    debug: raw.debug ?? false,
  };
}

/** How the target is named in logs: "pid 4242", "netns blue", "container test-postgresql". */
export function describeTarget(target: TargetSpec): string {
  if (target.kind === 'pid') return `pid ${target.pid}`;
  return target.kind === 'netns' ? `netns ${target.name}` : `container ${target.name}`;
}
