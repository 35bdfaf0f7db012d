// Running the product: `node dist/main.js ...` as a daemon (startNsproxy) or to
// completion for start-up failures (runNsproxy). stdout is pino JSON lines.
import { MAIN_JS, NODE, REPO_ROOT, childEnv, type TestLike } from './env';
import { Proc, runCommand, waitForStdoutLine, type RunResult } from './procs';

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export interface Listening {
  /** as logged, e.g. `127.0.0.1:40123` or `[::1]:40123` */
  address: string;
  host: string;
  port: number;
  source: unknown;
  fd: unknown;
  name: unknown;
}

/** Splits `127.0.0.1:80` / `[::1]:80` into host and port (NaN port when malformed). */
export function parseAddress(address: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:[\]]+):(\d+)$/.exec(address);
  if (!m) return { host: address, port: NaN };
  return { host: m[1], port: Number(m[2]) };
}

export interface SpawnNsproxyOpts {
  /** extra environment variables (the base environment is cleaned, see childEnv) */
  env?: Record<string, string>;
  /** command words before `node dist/main.js`, e.g. ['systemd-socket-activate', '-l', '127.0.0.1:5000'] */
  wrapper?: string[];
  /** how long to wait for the `ready` line (default 30 s) */
  readyTimeoutMs?: number;
  /** the dist/main.js to run (another path to the same build, e.g. one an ordinary user can reach) */
  mainJs?: string;
}

export class Nsproxy {
  readonly proc: Proc;
  private readyPromise: Promise<LogLine> | null = null;

  constructor(
    t: TestLike,
    readonly args: string[],
    private readonly opts: SpawnNsproxyOpts = {},
  ) {
    const wrapper = opts.wrapper ?? [];
    const argv = [...wrapper, NODE, opts.mainJs ?? MAIN_JS, ...args];
    this.proc = new Proc(`nsproxy ${args.join(' ')}`, argv[0], argv.slice(1), { env: childEnv(opts.env ?? {}), cwd: REPO_ROOT });
    t.teardown(async () => {
      if (this.proc.running) await this.proc.stop('SIGKILL', 5000);
    });
  }

  get pid(): number {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.proc.running;
  }

  /** All stdout lines that parsed as JSON objects with numeric level and string msg. */
  get logs(): LogLine[] {
    const out: LogLine[] = [];
    for (const l of this.proc.stdout.lines) {
      const x = parseLog(l);
      if (x) out.push(x);
    }
    return out;
  }

  /** stdout lines that are not pino JSON (the contract says there are none). */
  get nonJsonLines(): string[] {
    return this.proc.stdout.lines.filter((l) => l.trim() !== '' && parseLog(l) === null);
  }

  get stderr(): string {
    return this.proc.stderr.text;
  }

  /** The `listening` lines so far. */
  get listening(): Listening[] {
    return this.logs
      .filter((l) => l.msg === 'listening')
      .map((l) => {
        const address = String(l.address);
        return { address, ...parseAddress(address), source: l.source, fd: l.fd, name: l.name };
      });
  }

  /** Resolves with the first log line matching pred (already logged or future). */
  async waitForLog(pred: (l: LogLine) => boolean, timeoutMs = 30000, what = 'a matching log line'): Promise<LogLine> {
    const line = await waitForStdoutLine(
      this.proc,
      (l) => {
        const x = parseLog(l);
        return x !== null && pred(x);
      },
      timeoutMs,
      what,
    );
    return parseLog(line) as LogLine;
  }

  /** Resolves with the `ready` line; rejects (with all output) if the process exits first. */
  ready(): Promise<LogLine> {
    if (!this.readyPromise) {
      this.readyPromise = this.waitForLog((l) => l.msg === 'ready', this.opts.readyTimeoutMs ?? 30000, 'the "ready" log line');
      this.readyPromise.catch(() => undefined);
    }
    return this.readyPromise;
  }

  /** SIGTERM, wait for the exit; returns the exit code (null when killed by a signal). */
  async stop(graceMs = 20000): Promise<number | null> {
    const info = await this.proc.stop('SIGTERM', graceMs);
    return info.code;
  }

  describe(): string {
    return this.proc.describe();
  }
}

function parseLog(line: string): LogLine | null {
  if (!line.startsWith('{')) return null;
  try {
    const x = JSON.parse(line) as unknown;
    if (x && typeof x === 'object' && typeof (x as LogLine).level === 'number' && typeof (x as LogLine).msg === 'string') {
      return x as LogLine;
    }
  } catch {
    /* not JSON */
  }
  return null;
}

/** Spawns nsproxy without waiting (socket activation starts it on the first connection). */
export function spawnNsproxy(t: TestLike, args: string[], opts: SpawnNsproxyOpts = {}): Nsproxy {
  return new Nsproxy(t, args, opts);
}

/** Spawns nsproxy and waits for `ready`; the listening addresses are then in `.listening`. */
export async function startNsproxy(t: TestLike, args: string[], opts: SpawnNsproxyOpts = {}): Promise<Nsproxy> {
  const px = spawnNsproxy(t, args, opts);
  await px.ready();
  return px;
}

/** Runs nsproxy to completion (start-up failures); SIGKILL after timeoutMs. */
export function runNsproxy(args: string[], env: Record<string, string> = {}, timeoutMs = 20000): Promise<RunResult> {
  return runCommand(NODE, [MAIN_JS, ...args], { env: childEnv(env), timeoutMs, cwd: REPO_ROOT });
}

/** Runs `sh -c SCRIPT sh ARGS...` with a clean env (for LISTEN_PID=$$ tricks); SIGKILL after timeoutMs. */
export function runShell(script: string, args: string[], env: Record<string, string> = {}, timeoutMs = 20000): Promise<RunResult> {
  return runCommand('sh', ['-c', script, 'sh', ...args], { env: childEnv(env), timeoutMs, cwd: REPO_ROOT });
}

/** The non-empty lines of a stderr text. */
export function stderrLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.trim() !== '');
}

export { NODE, MAIN_JS };
