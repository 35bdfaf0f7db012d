// @ts-check
// procs.js — child processes of the benchmark: spawn, collect output lines, wait for a line,
// measure a process tree (CPU, fds, memory) from /proc, stop a tree BY PID. Every process, the
// namespace and the temp dir are registered for clean-up, which also runs on SIGINT/SIGTERM,
// on an uncaught error and on exit.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** @type {Set<number>} root PIDs of live process trees */
const livePids = new Set();
/** @type {Array<() => void>} synchronous clean-up steps (namespaces, dirs), run last-in first-out */
const cleanups = [];
let cleanedUp = false;

/** Synchronous, idempotent: kill every tree we started, then the registered steps. */
function cleanupAll() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const pid of livePids) killTreeSync(pid, 'SIGKILL');
  livePids.clear();
  while (cleanups.length) {
    const step = /** @type {() => void} */ (cleanups.pop());
    try {
      step();
    } catch {
      /* best effort */
    }
  }
}

/** @param {() => void} step */
function onCleanup(step) {
  cleanups.push(step);
}

function installExitHandlers() {
  process.on('exit', cleanupAll);
  for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}: cleaning up\n`);
      cleanupAll();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

/**
 * Fields of /proc/PID/stat after the command name.
 * @param {number} pid
 * @returns {string[] | null} index 0 is field 3 (state)
 */
function statFields(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/**
 * PID and all its live descendants (a snapshot of /proc).
 * @param {number} root
 * @returns {number[]}
 */
function processTree(root) {
  /** @type {Map<number, number[]>} */
  const children = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (!f) continue;
    const ppid = Number(f[1]);
    let list = children.get(ppid);
    if (!list) children.set(ppid, (list = []));
    list.push(Number(name));
  }
  const out = [];
  const todo = [root];
  // A snapshot of /proc is not a tree when a PID is reused while we read it (a child of X, then
  // a new process with X's old PID): visit each PID once, or the walk could go round forever.
  const seen = new Set();
  while (todo.length) {
    const pid = /** @type {number} */ (todo.pop());
    if (seen.has(pid) || !fs.existsSync(`/proc/${pid}`)) continue;
    seen.add(pid);
    out.push(pid);
    for (const c of children.get(pid) || []) todo.push(c);
  }
  return out;
}

/**
 * CPU seconds used by a tree: utime+stime of every live member plus cutime+cstime (the
 * children it has reaped). Sampled before and after a workload; the difference is the work.
 * @param {number} root
 */
function treeCpuSeconds(root) {
  let ticks = 0;
  for (const pid of processTree(root)) {
    const f = statFields(pid);
    if (f) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  return ticks / CLK_TCK;
}

/**
 * @typedef {object} MachineCpu seconds since boot, all CPUs summed
 * @property {number} busy user + nice + system + irq + softirq + steal: everything but idle and iowait
 * @property {number} user user + nice (guest time is already in them)
 * @property {number} system
 * @property {number} irq
 * @property {number} softirq
 * @property {number} steal
 */

/**
 * The whole machine's CPU time from /proc/stat's "cpu" line. Sampled before and after a
 * workload, the difference includes what a process's own utime/stime hides: softirq work done
 * on behalf of others and kernel workers (where a sockmap redirect runs).
 * @returns {MachineCpu}
 */
function machineCpu() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq = 0, softirq = 0, steal = 0] = f;
  const t = (/** @type {number} */ x) => x / CLK_TCK;
  return { busy: t(user + nice + system + irq + softirq + steal), user: t(user + nice), system: t(system), irq: t(irq), softirq: t(softirq), steal: t(steal) };
}

/**
 * after − before, field by field.
 * @param {MachineCpu} a
 * @param {MachineCpu} b
 * @returns {MachineCpu}
 */
function machineCpuDelta(a, b) {
  const r = (/** @type {number} */ x) => Math.round(x * 100) / 100;
  return { busy: r(b.busy - a.busy), user: r(b.user - a.user), system: r(b.system - a.system), irq: r(b.irq - a.irq), softirq: r(b.softirq - a.softirq), steal: r(b.steal - a.steal) };
}

/**
 * Open fds, RSS and PSS (KiB) of a tree, and how many processes it has.
 * @param {number} root
 */
function treeFootprint(root) {
  let fds = 0;
  let rssKiB = 0;
  let pssKiB = 0;
  const pids = processTree(root);
  for (const pid of pids) {
    try {
      fds += fs.readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      /* gone */
    }
    try {
      const roll = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      const rss = /^Rss:\s+(\d+) kB/m.exec(roll);
      const pss = /^Pss:\s+(\d+) kB/m.exec(roll);
      if (rss) rssKiB += Number(rss[1]);
      if (pss) pssKiB += Number(pss[1]);
    } catch {
      /* gone */
    }
  }
  return { fds, rssKiB, pssKiB, processes: pids.length };
}

/**
 * Threads of a tree: the Threads: lines of /proc/PID/status, summed.
 * @param {number} root
 */
function treeThreads(root) {
  let threads = 0;
  for (const pid of processTree(root)) {
    try {
      const m = /^Threads:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) threads += Number(m[1]);
    } catch {
      /* gone */
    }
  }
  return threads;
}

/**
 * @param {number} pid
 * @param {NodeJS.Signals} signal
 */
function killTreeSync(pid, signal) {
  let tree = [];
  try {
    tree = processTree(pid);
  } catch {
    tree = [pid];
  }
  for (const p of tree) {
    try {
      process.kill(p, signal);
    } catch {
      /* already gone */
    }
  }
}

/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A sleep that does not keep the process alive: for the losing side of a Promise.race.
 * @param {number} ms
 */
const timeout = (ms) => new Promise((r) => setTimeout(r, ms).unref());

/**
 * Lines of a stream, kept (the last `keep` of them) and awaitable.
 */
class Lines {
  /**
   * @param {import('node:stream').Readable | null} stream
   * @param {number} keep
   */
  constructor(stream, keep = 200) {
    /** @type {string[]} */
    this.lines = [];
    this.keep = keep;
    this.partial = '';
    this.ended = false;
    /** @type {Array<{pred: (l: string) => boolean, resolve: (l: string) => void}>} */
    this.waiters = [];
    /** @type {Array<() => void>} */
    this.endWaiters = [];
    if (!stream) {
      this.ended = true;
      return;
    }
    stream.setEncoding('utf8');
    stream.on('data', (/** @type {string} */ chunk) => {
      const parts = (this.partial + chunk).split('\n');
      this.partial = /** @type {string} */ (parts.pop());
      for (const l of parts) this.push(l);
    });
    stream.on('end', () => {
      if (this.partial) this.push(this.partial);
      this.partial = '';
      this.ended = true;
      for (const w of this.endWaiters) w();
    });
  }

  /** @param {string} line */
  push(line) {
    this.lines.push(line);
    if (this.lines.length > this.keep) this.lines.splice(0, this.lines.length - this.keep);
    this.waiters = this.waiters.filter((w) => {
      if (w.pred(line)) {
        w.resolve(line);
        return false;
      }
      return true;
    });
  }

  /**
   * Resolves with the first line (already seen or to come) that matches.
   * @param {(l: string) => boolean} pred
   * @param {number} timeoutMs
   * @param {string} what for the error message
   * @returns {Promise<string>}
   */
  waitFor(pred, timeoutMs, what) {
    const seen = this.lines.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const waiter = {
        pred,
        /** @param {string} l */
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      this.waiters.push(waiter);
    });
  }

  tail(n = 15) {
    return this.lines.slice(-n).join('\n');
  }
}

/**
 * @typedef {object} Proc
 * @property {import('node:child_process').ChildProcess} child
 * @property {number} pid
 * @property {string} name
 * @property {Lines} out
 * @property {Lines} err
 * @property {Promise<{code: number|null, signal: string|null}>} exited
 * @property {{code: number|null, signal: string|null} | null} exitInfo
 */

/**
 * Spawn a tracked process (stdin a pipe unless told otherwise; stdout and stderr collected).
 * @param {string} name for messages
 * @param {string} cmd
 * @param {string[]} args
 * @param {{env?: NodeJS.ProcessEnv, cwd?: string, stdin?: 'pipe'|'ignore'}} [opts]
 * @returns {Proc}
 */
function start(name, cmd, args, opts = {}) {
  const child = spawn(cmd, args, {
    env: opts.env || childEnv(),
    cwd: opts.cwd,
    stdio: [opts.stdin || 'ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) {
    throw new Error(`cannot start ${name} (${cmd}): not found or not executable`);
  }
  const pid = child.pid;
  livePids.add(pid);
  /** @type {Proc} */
  const proc = {
    child,
    pid,
    name,
    out: new Lines(child.stdout),
    err: new Lines(child.stderr),
    exitInfo: null,
    exited: new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        livePids.delete(pid);
        proc.exitInfo = { code, signal };
        resolve({ code, signal });
      });
    }),
  };
  child.on('error', () => {
    /* reported through exit */
  });
  return proc;
}

/**
 * Stop a tree: `signal` to the root (and its descendants), SIGKILL to what is left after
 * `graceMs`, then wait for the root's exit.
 * @param {Proc} proc
 * @param {{signal?: NodeJS.Signals, graceMs?: number, treeSignal?: boolean}} [opts]
 */
async function stop(proc, opts = {}) {
  const signal = opts.signal || 'SIGTERM';
  const graceMs = opts.graceMs ?? 3000;
  if (proc.exitInfo) {
    killTreeSync(proc.pid, 'SIGKILL'); // orphans of a dead root are re-parented: best effort
    return proc.exitInfo;
  }
  const tree = processTree(proc.pid);
  if (opts.treeSignal === false) {
    try {
      process.kill(proc.pid, signal);
    } catch {
      /* gone */
    }
  } else {
    for (const p of tree) {
      try {
        process.kill(p, signal);
      } catch {
        /* gone */
      }
    }
  }
  const done = await Promise.race([proc.exited.then(() => true), timeout(graceMs).then(() => false)]);
  // descendants that outlived the root (socat's per-connection children) and a stuck root
  for (const p of tree) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  if (!done) killTreeSync(proc.pid, 'SIGKILL');
  return proc.exited;
}

/**
 * Run a command to completion, collecting its output.
 * @param {string} cmd
 * @param {string[]} args
 * @param {{timeoutMs?: number, env?: NodeJS.ProcessEnv, input?: string}} [opts]
 * @returns {Promise<{code: number|null, signal: string|null, stdout: string, stderr: string, timedOut: boolean}>}
 */
function run(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: opts.env || childEnv(), stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const pid = child.pid;
    if (pid !== undefined) livePids.add(pid);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d) => (stderr += d));
    if (opts.input !== undefined && child.stdin) child.stdin.end(opts.input);
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          if (pid !== undefined) killTreeSync(pid, 'SIGKILL');
        }, opts.timeoutMs)
      : null;
    child.on('error', (err) => {
      stderr += String(err.message);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (pid !== undefined) livePids.delete(pid);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** The environment for children: ours without systemd's socket-passing and notify variables. */
function childEnv() {
  const env = { ...process.env };
  for (const k of ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'LISTEN_PIDFDID', 'NOTIFY_SOCKET', 'JOURNAL_STREAM']) delete env[k];
  return env;
}

/**
 * Is something listening on 127.0.0.1:port (TCP) in the netns of `pid` (or ours)?
 * @param {number} port
 * @param {number | 'self'} pid
 */
function isListening(port, pid = 'self') {
  const want = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  try {
    const table = fs.readFileSync(`/proc/${pid}/net/tcp`, 'utf8');
    return table.split('\n').some((l) => {
      const f = l.trim().split(/\s+/);
      return f[1] === want && f[3] === '0A';
    });
  } catch {
    return false;
  }
}

/**
 * @param {number} port
 * @param {number | 'self'} pid
 * @param {number} timeoutMs
 * @param {string} what
 * @param {Proc} [proc] fail early if it exits
 */
async function waitListening(port, pid, timeoutMs, what, proc) {
  const deadline = Date.now() + timeoutMs;
  while (!isListening(port, pid)) {
    if (proc && proc.exitInfo) throw new Error(`${what} exited (${JSON.stringify(proc.exitInfo)}) before listening on port ${port}:\n${proc.err.tail()}\n${proc.out.tail()}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} to listen on 127.0.0.1:${port}`);
    await sleep(20);
  }
}

module.exports = {
  CLK_TCK,
  installExitHandlers,
  onCleanup,
  cleanupAll,
  processTree,
  treeCpuSeconds,
  machineCpu,
  machineCpuDelta,
  treeFootprint,
  treeThreads,
  killTreeSync,
  start,
  stop,
  run,
  sleep,
  timeout,
  childEnv,
  isListening,
  waitListening,
  Lines,
};
