// connection-log.ts — the engine's events as log lines. Failures are always logged; with
// --log-connections every connection gets one info line when it ends ("connection": client
// address, listener, target, bytes each way, duration, how it ended), and at debug level the
// raw opened/closed events are logged too.
import { formatEndpoint, type Endpoint } from './address';
import type { HostListener } from './listeners';
import type { Logger } from './log';
import type { EngineEvent } from './native';

/** How a connection ended, in the `end` field: "closed", "reset (recv ECONNRESET)", "connect failed (ECONNREFUSED)". */
export function endOf(event: EngineEvent, connectFailure?: string): string {
  if (connectFailure) return `connect failed (${connectFailure})`;
  if (!event.code) return event.reset ? 'reset (stopped)' : 'closed';
  const how = event.code === 'ECONNRESET' || event.code === 'EPIPE' ? 'reset' : 'error';
  return `${how} (${event.syscall ?? '?'} ${event.code})`;
}

export function connectionLogger(
  log: Logger,
  listeners: HostListener[],
  endpoints: () => Endpoint[],
  logConnections: boolean,
): (events: EngineEvent[]) => void {
  // what 'opened' and 'connect-failed' said, until the connection's 'closed'
  const open = new Map<number, { client?: string; connectFailure?: string }>();
  return (events) => {
    for (const event of events) {
      const listener = listeners[event.listener]?.address;
      switch (event.type) {
        case 'opened':
          log.debug({ id: event.id, peer: event.peer, listener }, 'connection opened');
          if (logConnections) open.set(event.id, { ...open.get(event.id), client: event.peer });
          break;
        case 'closed': {
          log.debug({ id: event.id, bytesIn: event.bytesIn, bytesOut: event.bytesOut, durationMs: event.durationMs, reset: event.reset, code: event.code, syscall: event.syscall }, 'connection closed');
          if (!logConnections) break;
          const seen = open.get(event.id);
          open.delete(event.id);
          const to = endpoints()[event.listener];
          log.info(
            {
              id: event.id,
              client: seen?.client ?? 'unknown',
              listener,
              to: to && formatEndpoint(to),
              bytesIn: event.bytesIn,
              bytesOut: event.bytesOut,
              durationMs: event.durationMs === undefined ? undefined : Math.round(event.durationMs * 10) / 10,
              end: endOf(event, seen?.connectFailure),
            },
            'connection',
          );
          break;
        }
        case 'connect-failed': {
          const to = endpoints()[event.listener];
          log.warn({ id: event.id, to: to && formatEndpoint(to), code: event.code, syscall: event.syscall, listener }, 'connect failed');
          if (logConnections) open.set(event.id, { ...open.get(event.id), connectFailure: event.code ?? 'error' });
          break;
        }
        case 'accept-failed':
          log.error({ code: event.code, syscall: event.syscall, listener, count: event.count }, 'accept failed');
          break;
        case 'sockmap-loss':
          // The kernel race in native/sockmap.h (Stop()): rare, and the connection is reset so that
          // neither end takes a stream with a hole for a whole one.
          log.warn({ id: event.id, listener, lostBytes: event.count }, 'the kernel dropped bytes as this connection left sockmap; both sides reset');
          break;
        case 'helper-restarted':
          log.warn({ helperPid: event.pid || undefined, code: event.code, syscall: event.syscall }, event.pid ? 'helper died; a new one takes over' : 'helper could not be started; retrying');
          break;
      }
    }
  };
}
