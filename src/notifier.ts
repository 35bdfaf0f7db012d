// notifier.ts — what the daemon tells systemd: READY/RELOADING/STOPPING, STATUS= at most once a
// second, WATCHDOG=1 when the unit has WatchdogSec=. A lost notification is logged, never fatal.
import { errnoCode } from './errors';
import type { Logger } from './log';
import type { Native } from './native';
import { notify } from './systemd';

export class Notifier {
  private lastStatus = '';
  private watchdog?: NodeJS.Timeout;

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly native: Native,
    private readonly log: Logger,
    pid: number,
  ) {
    const usec = Number(env['WATCHDOG_USEC']);
    const forUs = env['WATCHDOG_PID'] === undefined || env['WATCHDOG_PID'] === String(pid);
    if (usec > 0 && forUs) {
      this.watchdog = setInterval(() => this.send({ WATCHDOG: 1 }), Math.max(1, Math.floor(usec / 2000)));
      this.watchdog.unref();
    }
  }

  send(state: Record<string, string | number>): void {
    try {
      notify(this.env, this.native, state);
    } catch (err) {
      this.log.warn({ code: errnoCode(err) }, `sd_notify failed: ${(err as Error).message}`);
    }
  }

  /**
   * RELOADING=1 with STATUS=: a container restart being followed, or a reload. systemd >= 253
   * wants MONOTONIC_USEC= (CLOCK_MONOTONIC, which process.hrtime reads) with it.
   */
  reloading(text: string): void {
    this.lastStatus = text;
    this.send({ RELOADING: 1, MONOTONIC_USEC: String(process.hrtime.bigint() / 1000n), STATUS: text });
  }

  /** STATUS=, only when it changed. */
  status(text: string, extra: Record<string, string | number> = {}): void {
    if (text === this.lastStatus && Object.keys(extra).length === 0) return;
    this.lastStatus = text;
    this.send({ ...extra, STATUS: text });
  }

  close(): void {
    if (this.watchdog) clearInterval(this.watchdog);
  }
}
