// daemon.ts — the lifecycle: open the target and the listeners, start the engine, report
// readiness, log what the engine reports, stop cleanly on SIGTERM/SIGINT.
import { formatEndpoint } from './address';
import type { Config } from './config';
import { errnoCode, EXIT_OK, NsproxyError } from './errors';
import { openListeners, type HostListener } from './listeners';
import type { Logger } from './log';
import type { EngineEvent, Native } from './native';
import { notify, takePassedSockets } from './systemd';
import { openTarget, type Target } from './target';

export interface DaemonDeps {
  native: Native;
  log: Logger;
  env: NodeJS.ProcessEnv;
  pid: number;
  closeFd: (fd: number) => void;
  /** resolves with the signal's name when the daemon should stop */
  stopSignal: () => Promise<string>;
}

/** Pipe size asked of the kernel: fewer splice calls per megabyte than the 64 KiB default. */
const PIPE_SIZE = 256 * 1024;

function enterFailure(target: Target, err: unknown): NsproxyError {
  const code = errnoCode(err);
  const hint =
    code === 'EPERM'
      ? 'entering it needs CAP_SYS_ADMIN over its user namespace: run nsproxy as root (rootless targets are not supported yet)'
      : 'check that the target still exists';
  return new NsproxyError('NSPROXY_ERR_ENTER_NETNS', `cannot enter the network namespace of ${target.description} (${(err as Error).message}); ${hint}`, { cause: err });
}

function eventLogger(log: Logger, listeners: HostListener[], to: string): (events: EngineEvent[]) => void {
  return (events) => {
    for (const event of events) {
      const listener = listeners[event.listener]?.address;
      switch (event.type) {
        case 'opened':
          log.debug({ id: event.id, peer: event.peer, listener }, 'connection opened');
          break;
        case 'closed':
          log.debug({ id: event.id, bytesIn: event.bytesIn, bytesOut: event.bytesOut, durationMs: event.durationMs, code: event.code }, 'connection closed');
          break;
        case 'connect-failed':
          log.warn({ id: event.id, to, code: event.code, syscall: event.syscall, listener }, 'connect failed');
          break;
        case 'accept-failed':
          log.error({ code: event.code, syscall: event.syscall, listener }, 'accept failed');
          break;
      }
    }
  };
}

export async function runDaemon(config: Config, deps: DaemonDeps): Promise<number> {
  const { native, log, env } = deps;
  const to = formatEndpoint(config.to);
  const sendNotify = (state: Record<string, string | number>) => {
    try {
      notify(env, native, state);
    } catch (err) {
      log.warn({ code: errnoCode(err) }, `sd_notify failed: ${(err as Error).message}`);
    }
  };

  const target = openTarget(config.target, native, deps.closeFd);
  try {
    const passed = takePassedSockets(env, deps.pid, native, deps.closeFd);
    if (passed.ignored) log.warn(passed.ignored);
    const listeners = openListeners(config, passed.sockets, native, deps.closeFd);
    const limits = native.raiseNofileLimit();

    const engine = new native.Engine(
      {
        netnsFd: target.netnsFd,
        threads: config.threads,
        connectionsMax: config.connectionsMax,
        pipeSize: PIPE_SIZE,
        reportConnections: log.isLevelEnabled('debug'),
      },
      eventLogger(log, listeners, to),
    );
    for (const listener of listeners) engine.addListener(listener.fd, config.to.address, config.to.port);
    try {
      engine.start();
    } catch (err) {
      engine.stop();
      throw enterFailure(target, err);
    }

    for (const listener of listeners) {
      log.info({ address: listener.address, source: listener.source, fd: listener.fd, name: listener.name }, 'listening');
    }
    log.info({ target: target.description, to, connectionsMax: config.connectionsMax, threads: config.threads, nofile: limits.soft }, 'ready');
    sendNotify({ READY: 1, STATUS: `forwarding ${listeners.map((l) => l.address).join(', ')} to ${to} in ${target.description}` });

    const signal = await deps.stopSignal();
    sendNotify({ STOPPING: 1, STATUS: `stopping on ${signal}` });
    const stats = engine.stats();
    engine.stop();
    log.info({ signal, ...stats }, 'stopped');
    return EXIT_OK;
  } finally {
    deps.closeFd(target.netnsFd);
  }
}
