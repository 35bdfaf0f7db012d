// Child processes for the integration tests: spawn, collect output as lines,
// wait for a line, stop BY PID and wait for the exit. Every process and every
// namespace the tests create is registered here, so that an aborted test run
// (tap timeout, uncaught error) still kills and deletes them on exit.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { childEnv } from './env';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const livePids = new Set<number>();
const liveNetns = new Set<string>();

/** Remember a namespace name for emergency clean-up (see cleanupOnExit). */
export function registerNetns(name: string): void {
  liveNetns.add(name);
}
export function unregisterNetns(name: string): void {
  liveNetns.delete(name);
}

function cleanupOnExit(): void {
  for (const pid of livePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const name of liveNetns) {
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
}
process.on('exit', cleanupOnExit);
// tap announces a test-file timeout over IPC, then SIGALRMs and SIGKILLs us: clean
// up on the announcement, while we still can (tap has unref'd the channel already).
process.on('message', (m: unknown) => {
  if (m !== null && typeof m === 'object' && (m as { tapAbort?: unknown }).tapAbort === 'timeout') cleanupOnExit();
});

/** Collects a stream as lines; lets callers wait for a line that matches. */
export class LineCollector {
  readonly lines: string[] = [];
  private partial = '';
  private ended = false;
  private waiters: Array<{ pred: (l: string) => boolean; resolve: (l: string) => void; reject: (e: Error) => void }> = [];

  constructor(stream: Readable | null) {
    if (!stream) {
      this.ended = true;
      return;
    }
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      this.partial += d;
      let nl: number;
      while ((nl = this.partial.indexOf('\n')) >= 0) {
        this.push(this.partial.slice(0, nl));
        this.partial = this.partial.slice(nl + 1);
      }
    });
    stream.on('end', () => this.end());
    stream.on('error', () => this.end());
  }

  get text(): string {
    return this.lines.join('\n') + (this.partial ? `\n${this.partial}` : '');
  }

  private push(line: string): void {
    this.lines.push(line);
    for (const w of [...this.waiters]) {
      if (w.pred(line)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  }

  private end(): void {
    if (this.ended) return;
    if (this.partial) this.push(this.partial);
    this.partial = '';
    this.ended = true;
    for (const w of this.waiters.splice(0)) w.reject(new Error('stream ended before a matching line appeared'));
  }

  /** Resolves with the first line (already seen from index `from` on, or future) matching pred. */
  waitFor(pred: (l: string) => boolean, timeoutMs: number, what: string, from = 0): Promise<string> {
    const seen = this.lines.slice(from).find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    if (this.ended) return Promise.reject(new Error(`waiting for ${what}: stream already ended`));
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const w = {
        pred,
        resolve: (l: string) => {
          clearTimeout(timer);
          resolve(l);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(new Error(`waiting for ${what}: ${e.message}`));
        },
      };
      this.waiters.push(w);
    });
  }
}

/** A spawned process with its output collected line by line. */
export class Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly stdout: LineCollector;
  readonly stderr: LineCollector;
  readonly exited: Promise<ExitInfo>;
  /** Resolves once the process exited and its stdout/stderr are closed (or 2 s after the exit). */
  readonly closed: Promise<ExitInfo>;
  private exitInfo: ExitInfo | null = null;

  constructor(
    readonly label: string,
    command: string,
    args: string[],
    opts: { env?: NodeJS.ProcessEnv; cwd?: string; stdio?: Array<'pipe' | 'ignore' | 'inherit' | number> } = {},
  ) {
    this.child = spawn(command, args, {
      env: opts.env ?? childEnv(),
      cwd: opts.cwd,
      stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'],
    });
    if (this.child.pid === undefined) {
      // spawn failed synchronously (ENOENT is reported through 'error')
      this.pid = -1;
    } else {
      this.pid = this.child.pid;
      livePids.add(this.pid);
    }
    this.stdout = new LineCollector(this.child.stdout);
    this.stderr = new LineCollector(this.child.stderr);
    this.exited = new Promise<ExitInfo>((resolve) => {
      this.child.once('exit', (code, signal) => {
        livePids.delete(this.pid);
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      this.child.once('error', (e) => {
        livePids.delete(this.pid);
        this.stderr.lines.push(`spawn error: ${e.message}`);
        this.exitInfo = { code: null, signal: null };
        resolve(this.exitInfo);
      });
    });
    const streamsClosed = new Promise<void>((resolve) => {
      this.child.once('close', () => resolve());
      this.child.once('error', () => resolve());
    });
    this.closed = this.exited.then(
      (info) =>
        new Promise<ExitInfo>((resolve) => {
          const timer = setTimeout(() => resolve(info), 2000);
          void streamsClosed.then(() => {
            clearTimeout(timer);
            resolve(info);
          });
        }),
    );
  }

  get running(): boolean {
    return this.exitInfo === null;
  }

  get exit(): ExitInfo | null {
    return this.exitInfo;
  }

  /** Sends a signal by PID (never by name); no-op when the process is gone. */
  signal(sig: NodeJS.Signals): void {
    if (!this.running || this.pid <= 0) return;
    try {
      process.kill(this.pid, sig);
    } catch {
      /* raced with the exit */
    }
  }

  /** SIGTERM (or `sig`), wait up to graceMs, then SIGKILL; resolves with the exit. */
  async stop(sig: NodeJS.Signals = 'SIGTERM', graceMs = 10000): Promise<ExitInfo> {
    if (this.running) {
      this.signal(sig);
      const timer = new Promise<'timeout'>((r) => {
        const h = setTimeout(() => r('timeout'), graceMs);
        void this.exited.then(() => clearTimeout(h));
      });
      if ((await Promise.race([this.exited, timer])) === 'timeout') {
        this.signal('SIGKILL');
      }
    }
    return this.closed;
  }

  describe(): string {
    const e = this.exitInfo;
    const status = e === null ? 'running' : `exited code=${e.code} signal=${e.signal}`;
    return `${this.label} (pid ${this.pid}, ${status})\n--- stdout:\n${this.stdout.text}\n--- stderr:\n${this.stderr.text}`;
  }
}

/** Waits for a line on stdout, failing early (with the process's output) if it exits first. */
export async function waitForStdoutLine(
  p: Proc,
  pred: (l: string) => boolean,
  timeoutMs: number,
  what: string,
  from = 0,
): Promise<string> {
  const exitedFirst = p.closed.then(() => {
    const seen = p.stdout.lines.slice(from).find(pred);
    if (seen !== undefined) return seen;
    throw new Error(`${what}: process exited first: ${p.describe()}`);
  });
  try {
    return await Promise.race([p.stdout.waitFor(pred, timeoutMs, what, from), exitedFirst]);
  } catch (e) {
    const err = e as Error;
    if (err.message.includes('process exited first')) throw err;
    throw new Error(`${err.message}: ${p.describe()}`);
  }
}

export interface RunResult extends ExitInfo {
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a command to completion (SIGKILL after timeoutMs) and collects its output. */
export async function runCommand(
  command: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
): Promise<RunResult> {
  const p = new Proc(command, command, args, { env: opts.env, cwd: opts.cwd });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.signal('SIGKILL');
  }, opts.timeoutMs ?? 20000);
  const info = await p.closed;
  clearTimeout(timer);
  return { ...info, stdout: p.stdout.text, stderr: p.stderr.text, timedOut };
}

/** Runs a command that must succeed; throws with its stderr otherwise. */
export async function mustRun(command: string, args: string[]): Promise<string> {
  const r = await runCommand(command, args, { timeoutMs: 20000 });
  if (r.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (code ${r.code}, signal ${r.signal}): ${r.stderr}`);
  }
  return r.stdout;
}
