// readiness.ts — wait until the target is ready before nsproxy accepts anything: meanwhile
// clients wait in the kernel backlog. Readiness is a list of checks, each retried with backoff
// until it passes, in order, within one deadline: the --to port accepts a TCP connection
// (probed from inside the namespace, below), then --ready-exec (ready-exec.ts), then podman's
// health status (ready-health.ts).
import { formatEndpoint, type Endpoint } from './address';
import { formatDuration } from './duration';
import { NsproxyError } from './errors';
import type { Native } from './native';

export interface ReadyCheck {
  /** 'tcp', 'exec', 'health': the `check` field of the log lines */
  kind: string;
  /** what is waited for, for STATUS= and logs: "127.0.0.1:5432 in container x to accept a connection" */
  waitingFor: string;
  /** the --to address for a tcp check (the `to` field of the log lines) */
  to?: string;
  /** One attempt: null when it passed, else why not (short). Throws an NsproxyError when waiting
   * cannot help. `budgetMs` is what is left of the deadline. */
  attempt(budgetMs: number): Promise<string | null>;
  /** the message when the deadline passes, given the last reason */
  timeoutMessage(timeout: string, last: string): string;
}

export interface Progress {
  check: ReadyCheck;
  attempt: number;
  elapsedMs: number;
  lastError: string;
}

const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 1000;
const PROBE_TIMEOUT_MS = 1000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once every check passed, in order; throws NSPROXY_ERR_NOT_READY at the deadline. */
export async function waitUntilReady(
  checks: ReadyCheck[],
  options: { timeoutMs: number; onProgress: (progress: Progress) => void; cancelled?: () => boolean },
): Promise<{ attempts: number; elapsedMs: number }> {
  const started = Date.now();
  let attempts = 0;
  for (const check of checks) {
    let delay = FIRST_DELAY_MS;
    for (;;) {
      attempts++;
      const failure = await check.attempt(Math.max(1, options.timeoutMs - (Date.now() - started)));
      if (failure === null) break;
      const elapsedMs = Date.now() - started;
      if (options.cancelled?.()) throw new NsproxyError('NSPROXY_ERR_NOT_READY', 'stopped while waiting for the target; nothing to do');
      if (elapsedMs >= options.timeoutMs) {
        throw new NsproxyError('NSPROXY_ERR_NOT_READY', check.timeoutMessage(formatDuration(options.timeoutMs), failure));
      }
      options.onProgress({ check, attempt: attempts, elapsedMs, lastError: failure });
      await sleep(Math.min(delay, Math.max(0, options.timeoutMs - elapsedMs)));
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  }
  return { attempts, elapsedMs: Date.now() - started };
}

/** Probe failures that waiting cannot cure: say so at once instead of at --ready-timeout. */
const PERMANENT = new Set(['EAFNOSUPPORT', 'EPROTONOSUPPORT', 'EACCES', 'EPERM', 'EINVAL']);

/** The --to port accepts a TCP connection, probed from inside the namespace. */
export function tcpCheck(native: Native, namespace: { netnsFd: number; usernsFd?: number }, endpoint: Endpoint, where: string): ReadyCheck {
  const to = formatEndpoint(endpoint);
  return {
    kind: 'tcp',
    to,
    waitingFor: `${to} in ${where} to accept a connection`,
    async attempt(budgetMs) {
      const failure = await native.probeTcp(namespace.netnsFd, namespace.usernsFd ?? -1, endpoint.address, endpoint.port, Math.min(PROBE_TIMEOUT_MS, budgetMs));
      if (failure === null) return null;
      if (failure.syscall === 'setns' || PERMANENT.has(failure.code)) {
        throw new NsproxyError(
          'NSPROXY_ERR_NOT_READY',
          `cannot probe ${to} in ${where}: ${failure.syscall} ${failure.code}; check the --to address (is that address family enabled in there?) and nsproxy's rights over the namespace`,
        );
      }
      return `${failure.syscall} ${failure.code}`;
    },
    timeoutMessage: (timeout, last) =>
      `${to} in ${where} did not accept a connection within ${timeout} (last: ${last}); check that the service inside listens there (nsproxy check shows what does), or raise --ready-timeout`,
  };
}
