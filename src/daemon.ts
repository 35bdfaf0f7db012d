// daemon.ts — the lifecycle: open the target and the listeners, start the engine paused, wait
// until the target is ready, forward; follow a container across restarts; reload on SIGHUP;
// exit when idle; drain on SIGTERM/SIGINT. The engine moves the bytes; this file only decides
// what and when.
import { formatEndpoint, type Endpoint } from './address';
import type { Config } from './config';
import { connectionLogger } from './connection-log';
import { formatDuration } from './duration';
import { errnoCode, EXIT_OK, NsproxyError } from './errors';
import { openListeners, type HostListener } from './listeners';
import type { Logger } from './log';
import type { Engine } from './native';
import { Notifier } from './notifier';
import { execCheck } from './ready-exec';
import { healthCheck } from './ready-health';
import { tcpCheck, waitUntilReady, type ReadyCheck } from './readiness';
import { resolveDestination, routeListeners } from './routes';
import { statusLine } from './status';
import { takePassedSockets } from './systemd';
import { closeTarget, isTransient, openTarget, type Target, type TargetDeps } from './target';

export interface DaemonDeps extends TargetDeps {
  log: Logger;
  pid: number;
  /** calls back with the signal's name whenever the daemon is asked to stop */
  onStopSignal: (handler: (signal: string) => void) => void;
  /** calls back whenever the daemon is asked to reload (SIGHUP) */
  onReloadSignal: (handler: () => void) => void;
}

/** Pipe size asked of the kernel: fewer splice calls per megabyte than the 64 KiB default. */
const PIPE_SIZE = 256 * 1024;
const RETRY_RESOLVE_MS = 250;
const DRAIN_POLL_MS = 100;

/** TCP keepalive from --keepalive: probes after `idle`, every idle/4, reset after 4 unanswered. */
export function keepaliveOptions(idleMs: number): { keepaliveIdleS: number; keepaliveIntervalS: number; keepaliveCount: number } {
  const idle = Math.ceil(idleMs / 1000);
  return { keepaliveIdleS: idle, keepaliveIntervalS: Math.max(1, Math.ceil(idle / 4)), keepaliveCount: idle > 0 ? 4 : 0 };
}

type StopReason = { kind: 'signal'; signal: string } | { kind: 'idle'; idleMs: number } | { kind: 'fatal'; error: NsproxyError };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function enterFailure(target: Target, err: unknown): NsproxyError {
  const hint =
    errnoCode(err) === 'EPERM'
      ? 'entering it needs CAP_SYS_ADMIN over its user namespace: run nsproxy as root, or as the user who owns the container'
      : 'check that the target still exists';
  return new NsproxyError('NSPROXY_ERR_ENTER_NETNS', `cannot enter the network namespace of ${target.description} (${(err as Error).message}); ${hint}`, { cause: err });
}

class Daemon {
  private target!: Target;
  private engine!: Engine;
  private listeners: HostListener[] = [];
  private endpoints: Endpoint[] = [];
  private readonly notifier: Notifier;
  private stopReason?: StopReason;
  private wakeStop: () => void = () => undefined;
  private watch?: { close(): void };
  /** a container restart or a reload is switching targets: not accepting meanwhile */
  private following = false;
  /** READY=1 was sent once; a SIGHUP before that is handled right after */
  private forwarding = false;
  private reloadPending = false;
  private skipDrain = false;  // a second signal: stop now

  constructor(
    private readonly config: Config,
    private readonly deps: DaemonDeps,
  ) {
    this.notifier = new Notifier(deps.env, deps.native, deps.log, deps.pid);
  }

  private get log(): Logger {
    return this.deps.log;
  }

  async run(): Promise<number> {
    const { native, log } = this.deps;
    // From the start: SIGHUP's default action would end the process (status 129).
    this.deps.onReloadSignal(() => void this.onReload());
    this.target = await openTarget(this.config.target, this.deps);
    try {
      const passed = takePassedSockets(this.deps.env, this.deps.pid, native, this.deps.closeFd);
      if (passed.ignored) log.warn(passed.ignored);
      this.listeners = openListeners(this.config, passed.sockets, native, this.deps.closeFd);
      const destinations = routeListeners(this.listeners, this.config.routes);
      this.endpoints = destinations.map((destination) => resolveDestination(destination, this.target));
      const limits = native.raiseNofileLimit();

      this.engine = new native.Engine(
        {
          netnsFd: this.target.netnsFd,
          usernsFd: this.target.usernsFd ?? -1,
          threads: this.config.threads,
          connectionsMax: this.config.connectionsMax,
          pipeSize: PIPE_SIZE,
          connectTimeoutMs: this.config.connectTimeoutMs,
          proxyProtocol: this.config.proxyProtocol,
          engine: this.config.engine,
          sockmapBulkBytes: this.config.sockmapBulkBytes,
          sockmapAfter: this.config.sockmapAfter,
          ...keepaliveOptions(this.config.keepaliveMs),
          reportConnections: this.config.logConnections || log.isLevelEnabled('debug'),
          startPaused: true,
        },
        connectionLogger(log, this.listeners, () => this.endpoints, this.config.logConnections),
      );
      this.listeners.forEach((listener, i) => this.engine.addListener(listener.fd, this.endpoints[i]!.address, this.endpoints[i]!.port));
      try {
        this.engine.start();
      } catch (err) {
        this.engine.stop();
        throw enterFailure(this.target, err);
      }

      this.deps.onStopSignal((signal) => this.requestStop({ kind: 'signal', signal }));
      try {
        await this.waitReady();
      } catch (err) {
        // Asked to stop before the target ever answered: that is a clean stop, not a failure.
        if (this.stopReason?.kind === 'signal') return await this.shutdown(this.stopReason);
        this.engine.stop();
        throw err;
      }
      for (const listener of this.listeners) {
        log.info({ address: listener.address, source: listener.source, fd: listener.fd, name: listener.name }, 'listening');
      }
      const inUse = this.engine.engineInUse();
      if (inUse.why) (this.config.engine === 'sockmap' ? log.warn : log.info).call(log, { engine: this.config.engine, why: inUse.why }, `engine ${this.config.engine} not available; using splice`);
      log.info({ target: this.target.description, targetPid: this.target.pid, to: this.describeEndpoints(), engine: inUse.engine, connectionsMax: this.config.connectionsMax, threads: this.config.threads, nofile: limits.soft }, 'ready');
      this.notifier.status(this.forwardingPrefix(), { READY: 1 });
      this.engine.setAccepting(true);  // after the log and READY=1: nobody sees traffic before them
      this.forwarding = true;
      this.watchTarget();
      if (this.reloadPending) void this.onReload();

      const reason = await this.lifetime();
      return await this.shutdown(reason);
    } finally {
      this.watch?.close();
      this.notifier.close();
      closeTarget(this.target, this.deps.closeFd);
    }
  }

  private describeEndpoints(): string {
    return [...new Set(this.endpoints.map(formatEndpoint))].join(', ');
  }

  private forwardingPrefix(): string {
    return `forwarding ${this.listeners.map((l) => l.address).join(', ')} to ${this.describeEndpoints()} in ${this.target.description}`;
  }

  private requestStop(reason: StopReason): void {
    if (this.stopReason?.kind === 'signal' && reason.kind === 'signal') {
      this.log.info({ signal: reason.signal }, 'second signal: not waiting for open connections');
      this.skipDrain = true;
    }
    this.stopReason ??= reason;
    this.wakeStop();
  }

  /** What readiness means for this target: the --to ports accept, then --ready-exec, then health. */
  private readyChecks(target: Target): ReadyCheck[] {
    const unique = [...new Map(this.endpoints.map((e) => [formatEndpoint(e), e])).values()];
    const checks = unique.map((endpoint) => tcpCheck(this.deps.native, target, endpoint, target.description));
    if (this.config.readyExec) checks.push(execCheck(this.deps.native, target, this.config.readyExec, this.deps.env));
    if (this.config.readyHealth && this.config.target.kind === 'container') checks.push(healthCheck(this.config.target, target, this.deps.env));
    return checks;
  }

  /** Waits until the target is ready; STATUS= and the log say what for. */
  private async waitReady(): Promise<void> {
    let lastReport = 0;
    const result = await waitUntilReady(this.readyChecks(this.target), {
      timeoutMs: this.config.readyTimeoutMs,
      cancelled: () => this.stopReason !== undefined,
      onProgress: (progress) => {
        if (Date.now() - lastReport < 1000) return;
        lastReport = Date.now();
        const { check } = progress;
        this.log.info({ check: check.kind, to: check.to, waitingFor: check.waitingFor, attempt: progress.attempt, elapsedMs: progress.elapsedMs, lastError: progress.lastError }, 'waiting for target');
        this.notifier.status(`waiting for ${check.waitingFor} (attempt ${progress.attempt}, ${formatDuration(progress.elapsedMs)}; last: ${progress.lastError})`);
      },
    });
    const checks = ['tcp', ...(this.config.readyExec ? ['exec'] : []), ...(this.config.readyHealth ? ['health'] : [])];
    this.log.info({ to: this.describeEndpoints(), checks, attempts: result.attempts, elapsedMs: result.elapsedMs }, 'target ready');
  }

  private watchTarget(): void {
    if (this.target.pidfd === undefined) return;
    this.watch = new this.deps.native.FdWatch(this.target.pidfd, () => void this.onTargetExit());
  }

  private async onTargetExit(): Promise<void> {
    const pid = this.target.pid;
    this.watch?.close();
    this.watch = undefined;
    if (this.stopReason) return;
    if (this.config.target.kind !== 'container') {
      this.log.error({ targetPid: pid }, 'target exited');
      this.requestStop({ kind: 'fatal', error: new NsproxyError('NSPROXY_ERR_TARGET_EXITED', `target ${this.target.description} exited; nsproxy ends with it (use --container to follow a container across restarts)`) });
      return;
    }
    this.log.warn({ targetPid: pid }, 'target exited');
    await this.switchTarget('restart');
  }

  /** SIGHUP: resolve the target again, refresh addresses, wait until it is ready. */
  private async onReload(): Promise<void> {
    if (this.stopReason) return;
    if (this.following) {
      // a restart being followed does all a reload would; one more afterwards is not needed
      this.log.info('reload requested while the target is being resolved again; nothing more to do');
      return;
    }
    if (!this.forwarding) {
      this.reloadPending = true;  // still starting: reload once ready
      return;
    }
    this.log.info({ target: this.target.description }, 'reloading');
    await this.switchTarget('reload');
  }

  /**
   * The container restarted, or a reload: stop accepting, find the target's (new) process and
   * namespace, move the engine there if it changed, wait until it is ready, resume. Failing that
   * within --ready-timeout is fatal, as at start.
   */
  private async switchTarget(why: 'restart' | 'reload'): Promise<void> {
    try {
      await this.follow(why);
    } catch (err) {
      if (this.stopReason) return;
      const error = err instanceof NsproxyError ? err : new NsproxyError('NSPROXY_ERR_INTERNAL', (err as Error).message, { cause: err });
      this.log.error({ code: error.code }, error.message);
      this.requestStop({ kind: 'fatal', error });
    }
  }

  private async follow(why: 'restart' | 'reload'): Promise<void> {
    const startedAt = Date.now();
    this.following = true;
    this.engine.setAccepting(false);
    const waiting = why === 'restart' ? `${this.target.description} exited; waiting for it to come back` : `reloading: resolving ${this.target.description} again`;
    this.notifier.reloading(waiting);
    const destinations = routeListeners(this.listeners, this.config.routes);
    let next: Target | undefined;
    let endpoints: Endpoint[] = [];
    while (!next) {
      try {
        const candidate = await openTarget(this.config.target, this.deps);
        try {
          endpoints = destinations.map((destination) => resolveDestination(destination, candidate));
        } catch (err) {
          closeTarget(candidate, this.deps.closeFd);
          throw err;
        }
        next = candidate;
      } catch (err) {
        if (this.stopReason) return;
        if (!isTransient(err) || Date.now() - startedAt >= this.config.readyTimeoutMs) throw err;
        await sleep(RETRY_RESOLVE_MS);
      }
    }
    const moved = this.deps.native.fdInode(next.netnsFd) !== this.deps.native.fdInode(this.target.netnsFd);
    if (moved) {
      try {
        this.engine.enterNetns(next.netnsFd, next.usernsFd ?? -1);
      } catch (err) {
        closeTarget(next, this.deps.closeFd);
        throw enterFailure(next, err);
      }
    }
    this.watch?.close();
    this.watch = undefined;
    closeTarget(this.target, this.deps.closeFd);
    this.target = next;
    this.endpoints = endpoints;
    endpoints.forEach((endpoint, i) => this.engine.setTarget(i, endpoint.address, endpoint.port));
    this.watchTarget();
    await this.waitReady();
    if (this.stopReason) return;
    // Said before the first connection is accepted, so a log reader never sees traffic first.
    if (why === 'restart') {
      this.log.info({ targetPid: this.target.pid, downtimeMs: Date.now() - startedAt }, 'target restarted');
    } else {
      this.log.info({ targetPid: this.target.pid, to: this.describeEndpoints(), namespaceChanged: moved, pausedMs: Date.now() - startedAt }, 'reloaded');
    }
    this.notifier.status(this.forwardingPrefix(), { READY: 1 });
    this.following = false;
    this.engine.setAccepting(true);
  }

  /** Ticks once a second (faster for short idle times) until something asks to stop. */
  private async lifetime(): Promise<StopReason> {
    const idleMs = this.config.exitIdleTimeMs;
    const tickMs = idleMs === undefined ? 1000 : Math.max(100, Math.min(1000, idleMs / 4));
    let lastBusy = Date.now();
    let lastTotal = 0;
    const stopped = new Promise<void>((resolve) => (this.wakeStop = resolve));
    const ticker = setInterval(() => {
      const stats = this.engine.stats();
      if (stats.active > 0 || stats.total !== lastTotal || this.following) lastBusy = Date.now();
      lastTotal = stats.total;
      if (!this.following) this.notifier.status(statusLine(this.forwardingPrefix(), stats, this.engine.engineInUse().engine));
      if (idleMs !== undefined && Date.now() - lastBusy >= idleMs) this.requestStop({ kind: 'idle', idleMs: Date.now() - lastBusy });
    }, tickMs);
    if (this.stopReason === undefined) await stopped;
    clearInterval(ticker);
    return this.stopReason as StopReason;
  }

  private async shutdown(reason: StopReason): Promise<number> {
    this.notifier.send({ STOPPING: 1, STATUS: reason.kind === 'signal' ? `stopping on ${reason.signal}` : reason.kind === 'idle' ? 'idle, exiting' : reason.error.message });
    this.engine.setAccepting(false);
    if (reason.kind === 'idle') this.log.info({ idleMs: reason.idleMs }, 'idle, exiting');
    if (reason.kind === 'signal') {
      const deadline = Date.now() + this.config.drainTimeoutMs;
      if (this.engine.stats().active > 0 && this.config.drainTimeoutMs > 0) {
        this.log.info({ active: this.engine.stats().active, drainTimeoutMs: this.config.drainTimeoutMs }, 'draining');
      }
      while (this.engine.stats().active > 0 && Date.now() < deadline && !this.skipDrain) await sleep(DRAIN_POLL_MS);
    }
    const stats = this.engine.stats();
    this.engine.stop();
    this.log.info({ reason: reason.kind, signal: reason.kind === 'signal' ? reason.signal : undefined, ...stats }, 'stopped');
    if (reason.kind === 'fatal') throw reason.error;
    return EXIT_OK;
  }
}

export function runDaemon(config: Config, deps: DaemonDeps): Promise<number> {
  return new Daemon(config, deps).run();
}
