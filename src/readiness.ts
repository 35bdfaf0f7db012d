// readiness.ts — wait until the target accepts a TCP connection, probed from inside its netns,
// with backoff, before nsproxy accepts anything: meanwhile clients wait in the kernel backlog.
import { formatEndpoint, type Endpoint } from './address';
import { formatDuration } from './duration';
import { NsproxyError } from './errors';
import type { Native } from './native';

export interface Progress {
  endpoint: string;
  attempt: number;
  elapsedMs: number;
  lastError?: string;
}

const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 1000;
const PROBE_TIMEOUT_MS = 1000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Probe failures that waiting cannot cure: say so at once instead of at --ready-timeout. */
const PERMANENT = new Set(['EAFNOSUPPORT', 'EPROTONOSUPPORT', 'EACCES', 'EPERM', 'EINVAL']);

/** Resolves once every endpoint accepted a connection; throws NSPROXY_ERR_NOT_READY at the deadline. */
export async function waitUntilReady(
  native: Native,
  namespace: { netnsFd: number; usernsFd?: number },
  endpoints: Endpoint[],
  options: { timeoutMs: number; where: string; onProgress: (progress: Progress) => void; cancelled?: () => boolean },
): Promise<{ attempts: number; elapsedMs: number }> {
  const started = Date.now();
  let attempts = 0;
  for (const endpoint of endpoints) {
    let delay = FIRST_DELAY_MS;
    for (;;) {
      attempts++;
      const remaining = options.timeoutMs - (Date.now() - started);
      const timeout = Math.max(1, Math.min(PROBE_TIMEOUT_MS, remaining));
      const failure = await native.probeTcp(namespace.netnsFd, namespace.usernsFd ?? -1, endpoint.address, endpoint.port, timeout);
      if (failure === null) break;
      const elapsedMs = Date.now() - started;
      if (options.cancelled?.()) throw new NsproxyError('NSPROXY_ERR_NOT_READY', 'stopped while waiting for the target; nothing to do');
      if (failure.syscall === 'setns' || PERMANENT.has(failure.code)) {
        throw new NsproxyError(
          'NSPROXY_ERR_NOT_READY',
          `cannot probe ${formatEndpoint(endpoint)} in ${options.where}: ${failure.syscall} ${failure.code}; check the --to address (is that address family enabled in there?) and nsproxy's rights over the namespace`,
        );
      }
      if (elapsedMs >= options.timeoutMs) {
        throw new NsproxyError(
          'NSPROXY_ERR_NOT_READY',
          `${formatEndpoint(endpoint)} in ${options.where} did not accept a connection within ${formatDuration(options.timeoutMs)} (last: ${failure.syscall} ${failure.code}); check that the service inside listens there, or raise --ready-timeout`,
        );
      }
      options.onProgress({ endpoint: formatEndpoint(endpoint), attempt: attempts, elapsedMs, lastError: failure.code });
      await sleep(Math.min(delay, Math.max(0, options.timeoutMs - elapsedMs)));
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  }
  return { attempts, elapsedMs: Date.now() - started };
}
