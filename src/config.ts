// config.ts — turns the parsed command line into one validated Config, or a one-line error.
import { parseEndpoint, type Endpoint } from './address';
import { NsproxyError } from './errors';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type TargetSpec = { kind: 'pid'; pid: number } | { kind: 'netns'; path: string; name: string };

export interface Config {
  target: TargetSpec;
  to: Endpoint;
  /** --listen endpoints; empty means "systemd's sockets, or the default" */
  listen: Endpoint[];
  /** used when there is no --listen and no socket from systemd: 127.0.0.1:<port of --to> */
  defaultListen: Endpoint;
  connectionsMax: number;
  backlog: number;
  threads: number;
  logLevel: LogLevel;
  debug: boolean;
}

/** The options as yargs hands them over: strings, kept raw so that we word the errors. */
export interface RawOptions {
  pid?: string | string[];
  netns?: string | string[];
  to?: string | string[];
  listen?: string | string[];
  connectionsMax?: string | string[];
  backlog?: string | string[];
  threads?: string | string[];
  logLevel?: string | string[];
  debug?: boolean;
}

function usage(message: string): NsproxyError {
  return new NsproxyError('NSPROXY_ERR_USAGE', message);
}

function single(name: string, value: string | string[] | undefined): string | undefined {
  if (Array.isArray(value)) {
    if (value.length > 1) throw usage(`--${name} given ${value.length} times; give it once`);
    return value[0];
  }
  return value;
}

function list(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function positiveInt(name: string, value: string | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw usage(`--${name} '${value}': not a whole number from 1 to ${max}; e.g. --${name} ${fallback}`);
  }
  return Number(value);
}

function targetSpec(raw: RawOptions): TargetSpec {
  const pid = single('pid', raw.pid);
  const netns = single('netns', raw.netns);
  if (pid !== undefined && netns !== undefined) {
    throw usage('--pid and --netns both given; name the target namespace once, with one of them');
  }
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
  throw usage('no target namespace; give --pid PID or --netns NAME|PATH (see nsproxy --help)');
}

export function buildConfig(raw: RawOptions): Config {
  const target = targetSpec(raw);
  const toText = single('to', raw.to);
  if (toText === undefined) throw usage('--to is missing; give the address inside the namespace, e.g. --to 127.0.0.1:5432');
  const to = parseEndpoint(toText, { option: '--to' });
  const listen = list(raw.listen).map((text) => parseEndpoint(text, { option: '--listen', portOnly: true, portZero: true }));
  const logLevel = single('log-level', raw.logLevel) ?? (raw.debug ? 'debug' : 'info');
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw usage(`--log-level '${logLevel}': not a log level; use one of ${LOG_LEVELS.join(', ')}`);
  }
  return {
    target,
    to,
    listen,
    defaultListen: { address: to.family === 6 ? '::1' : '127.0.0.1', port: to.port, family: to.family },
    connectionsMax: positiveInt('connections-max', single('connections-max', raw.connectionsMax), 4096, 1_000_000),
    backlog: positiveInt('backlog', single('backlog', raw.backlog), 128, 65535),
    threads: positiveInt('threads', single('threads', raw.threads), 1, 64),
    logLevel: logLevel as LogLevel,
    debug: raw.debug ?? false,
  };
}

/** How the target is named in logs: "pid 4242", "netns blue". */
export function describeTarget(target: TargetSpec): string {
  return target.kind === 'pid' ? `pid ${target.pid}` : `netns ${target.name}`;
}
