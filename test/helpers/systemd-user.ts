// A real `systemd --user` manager for a rootless test user, on a machine whose PID 1 is not
// systemd. Three things make that work:
//   - systemd refuses to run as a user instance unless /run/systemd/system exists: an empty
//     directory is bind-mounted over /run/systemd in a private mount namespace (unshare -m),
//     so nothing outside the manager sees it;
//   - it needs a cgroup2 directory of its own that it may write (as user@.service gets with
//     Delegate=yes): nsproxy-test-sd-<pid>-<user> under the cgroup2 mount, chowned to the
//     user; the starting shell moves itself there before it execs the manager;
//   - XDG_RUNTIME_DIR=/run/user/UID (rootless-podman.ts makes it) is its %t and holds its
//     private socket, which `systemctl --user` uses (there is no session bus).
// Services inherit the manager's stdout (DefaultStandardOutput=inherit in ~/.config/systemd/
// user.conf): nsproxy's JSON log lines arrive in `manager.output`, there being no journal.
//
// One manager per test process (tap runs two test files at once: each uses its own user,
// so cgroup directories, runtime directories and unit directories never collide). Teardown
// stops the units, the manager (by PID), kills what is left in the cgroup, removes the cgroup
// directories, the unit files it installed and the manager's runtime directory.
import type {} from 'tap';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { NODE, REPO_ROOT, type TestLike } from './env';
import { Proc, runCommand, type RunResult } from './procs';
import { quietPodman, removeUserContainers, ROOTLESS_IMAGE, ensureUserImage, trackUserContainer, userPodman, userPodmanOk, type RootlessUser } from './rootless-podman';

const SYSTEMD = ['/lib/systemd/systemd', '/usr/lib/systemd/systemd'];
const CGROUP_PREFIX = 'nsproxy-test-sd-';
/** Where the shipped unit files live, and the nsproxy path they name. */
export const SHIPPED_DIR = path.join(REPO_ROOT, 'systemd');
export const SHIPPED_NSPROXY = '/usr/local/bin/nsproxy';

/** The mount point of the cgroup2 hierarchy (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid systems). */
export function cgroup2Mount(): string | null {
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (right?.split(' ')[0] === 'cgroup2') return left.split(' ')[4] ?? null;
  }
  return null;
}

/** What is missing for a user manager here, or null. */
export function userManagerProblem(): string | null {
  if (!SYSTEMD.some((p) => fs.existsSync(p))) return `systemd not found (${SYSTEMD.join(', ')}); apt-get install systemd`;
  if (cgroup2Mount() === null) return 'no cgroup2 hierarchy is mounted; systemd --user needs one for its delegated cgroup';
  return null;
}

/** Fails (never skips) when no user manager can run here. */
export function requireUserManager(t: tap.Test): boolean {
  const problem = userManagerProblem();
  if (problem === null) return true;
  t.fail(`systemd --user cannot run: ${problem}`);
  return false;
}

/** PIDs in a cgroup directory and all below it. */
function cgroupPids(dir: string): number[] {
  const pids: number[] = [];
  const walk = (d: string): void => {
    try {
      for (const l of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l.trim()) pids.push(Number(l));
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
    } catch {
      /* removed meanwhile */
    }
  };
  walk(dir);
  return pids;
}

/** Kills everything in a cgroup subtree (cgroup.kill, else SIGKILL by PID) and removes its directories. */
function destroyCgroupSync(dir: string): void {
  if (!fs.existsSync(dir)) return;
  try {
    fs.writeFileSync(path.join(dir, 'cgroup.kill'), '1');
  } catch {
    for (const pid of cgroupPids(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  const deadline = Date.now() + 5000;
  while (cgroupPids(dir).length > 0 && Date.now() < deadline) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
  removeCgroupDirs(dir);
}

function removeCgroupDirs(dir: string): void {
  const rm = (d: string): void => {
    try {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) rm(path.join(d, e.name));
      fs.rmdirSync(d);
    } catch {
      /* busy or gone: reported by the caller's checks */
    }
  };
  rm(dir);
}

/**
 * Kills the user managers (and everything they started) of earlier test processes that are
 * gone, e.g. SIGKILLed by a tap timeout: their delegated cgroups, then the directories.
 * startUserManager does it too; call it first when a stale manager could hold something the
 * test checks before (a port).
 */
export function sweepStaleUserManagers(): string[] {
  const root = cgroup2Mount();
  return root === null ? [] : sweepStaleCgroups(root);
}

/** Removes the cgroup directories of earlier test processes that are gone (an aborted run). */
function sweepStaleCgroups(root: string): string[] {
  const swept: string[] = [];
  for (const e of fs.readdirSync(root)) {
    const m = new RegExp(`^${CGROUP_PREFIX}(\\d+)-`).exec(e);
    if (!m || Number(m[1]) === process.pid || fs.existsSync(`/proc/${m[1]}`)) continue;
    destroyCgroupSync(path.join(root, e));
    swept.push(e);
  }
  return swept;
}

let managerStarted = false;
let liveCgroup: string | null = null;

process.on('exit', () => {
  if (liveCgroup) destroyCgroupSync(liveCgroup);
});
process.on('message', (m: unknown) => {
  if (m !== null && typeof m === 'object' && (m as { tapAbort?: unknown }).tapAbort === 'timeout' && liveCgroup) destroyCgroupSync(liveCgroup);
});

export interface ManagerShutdown {
  /** processes still in the cgroup after the manager exited (killed then) */
  leftoverPids: Array<{ pid: number; comm: string }>;
  managerExit: { code: number | null; signal: NodeJS.Signals | null };
  cgroupRemoved: boolean;
  problems: string[];
}

export interface LogLine {
  level: number;
  msg: string;
  pid?: number;
  [k: string]: unknown;
}

export class UserManager {
  private readonly installed = new Set<string>();
  private readonly units = new Set<string>();
  private readonly containers = new Set<string>();
  private shutdownResult: Promise<ManagerShutdown> | null = null;

  constructor(
    readonly ru: RootlessUser,
    readonly proc: Proc,
    readonly cgroup: string,
    readonly unitDir: string,
    /** the wrapper script that stands in for /usr/local/bin/nsproxy */
    readonly nsproxyBin: string,
  ) {}

  get pid(): number {
    return this.proc.pid;
  }

  /** The manager's output: its own messages and every service's stdout/stderr. */
  get output(): string[] {
    return this.proc.stdout.lines.concat(this.proc.stderr.lines);
  }

  /** nsproxy's (pino) JSON log lines in the output, of one process if pid is given. */
  logs(pid?: number): LogLine[] {
    const out: LogLine[] = [];
    for (const l of this.output) {
      if (!l.startsWith('{')) continue;
      try {
        const x = JSON.parse(l) as LogLine;
        if (typeof x.level === 'number' && typeof x.msg === 'string' && (pid === undefined || x.pid === pid)) out.push(x);
      } catch {
        /* not ours */
      }
    }
    return out;
  }

  /** Waits until a log line matching pred appears (of any process). */
  async waitForLog(pred: (l: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.logs().find(pred);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; output:\n${this.output.slice(-40).join('\n')}`);
      await sleep(50);
    }
  }

  /** `systemctl --user ARGS` as the user (never throws). */
  systemctl(args: string[], timeoutMs = 60000): Promise<RunResult> {
    const argv = [...this.ru.asUserEnv, 'systemctl', '--user', '--no-pager', ...args];
    return runCommand(argv[0] as string, argv.slice(1), { timeoutMs, cwd: '/' });
  }

  async systemctlOk(args: string[], timeoutMs = 60000): Promise<string> {
    const r = await this.systemctl(args, timeoutMs);
    if (r.code !== 0) throw new Error(`systemctl --user ${args.join(' ')} failed (code ${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** `systemctl --user show -p A,B UNIT` as a record (journalctl-free status reading); unit '' = the manager. */
  async show(unit: string, props: string[]): Promise<Record<string, string>> {
    const out = await this.systemctlOk(['show', '-p', props.join(','), ...(unit ? [unit] : [])]);
    const rec: Record<string, string> = {};
    for (const line of out.split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) rec[line.slice(0, i)] = line.slice(i + 1);
    }
    return rec;
  }

  /** Polls `show` until pred holds; returns the last record. */
  async waitFor(unit: string, props: string[], pred: (r: Record<string, string>) => boolean, timeoutMs: number, what: string): Promise<Record<string, string>> {
    const deadline = Date.now() + timeoutMs;
    let last: Record<string, string> = {};
    for (;;) {
      last = await this.show(unit, props);
      if (pred(last)) return last;
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${unit}: ${what}; last ${JSON.stringify(last)}; output:\n${this.output.slice(-30).join('\n')}`);
      }
      await sleep(100);
    }
  }

  /**
   * Writes a unit file or drop-in (`NAME` or `UNIT.d/NAME.conf`) into ~/.config/systemd/user,
   * owned by the user; removed at shutdown. Call daemonReload() after.
   */
  install(name: string, content: string): string {
    const file = path.join(this.unitDir, name);
    this.mkdirAsUser(path.dirname(file));
    fs.writeFileSync(file, content, { mode: 0o644 });
    fs.chownSync(file, this.ru.uid, this.ru.gid);
    this.installed.add(file);
    if (!name.includes('/')) this.units.add(name);
    return file;
  }

  /** Removes `file` (any path) at shutdown, like the files install() writes. */
  adopt(file: string): void {
    this.installed.add(file);
  }

  /** Removes an installed file (and its drop-in directory when empty). */
  uninstall(name: string): void {
    const file = path.join(this.unitDir, name);
    fs.rmSync(file, { force: true });
    this.installed.delete(file);
    const dir = path.dirname(file);
    if (dir !== this.unitDir && fs.existsSync(dir) && fs.readdirSync(dir).length === 0) fs.rmdirSync(dir);
  }

  /** A shipped file from systemd/ with /usr/local/bin/nsproxy replaced by the wrapper, and `more` replacements. */
  shipped(name: string, more: Array<[string, string]> = []): string {
    let text = fs.readFileSync(path.join(SHIPPED_DIR, name), 'utf8');
    if (text.includes(SHIPPED_NSPROXY)) text = text.split(SHIPPED_NSPROXY).join(this.nsproxyBin);
    for (const [from, to] of more) {
      if (!text.includes(from)) throw new Error(`${name} does not contain ${JSON.stringify(from)}`);
      text = text.split(from).join(to);
    }
    return text;
  }

  /** install(name, shipped(name, more)). */
  installShipped(name: string, more: Array<[string, string]> = []): string {
    return this.install(name, this.shipped(name, more));
  }

  daemonReload(): Promise<string> {
    return this.systemctlOk(['daemon-reload']);
  }

  private mkdirAsUser(dir: string): void {
    const missing: string[] = [];
    for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) {
      fs.mkdirSync(d, { mode: 0o755 });
      fs.chownSync(d, this.ru.uid, this.ru.gid);
    }
  }

  /**
   * A container unit as `podman generate systemd --new` writes it (quadlet needs podman >= 4.4):
   * `podman create` with the given options, generate, remove the container, install as `unit`.
   */
  async installContainerUnit(unit: string, container: string, args: string[], cmd: string[]): Promise<string> {
    await ensureUserImage(this.ru);
    trackUserContainer(this.ru, container);
    this.containers.add(container);
    await userPodman(this.ru, ['rm', '-f', '-t', '0', '--ignore', container]);
    await userPodmanOk(this.ru, ['create', '--name', container, '--network=none', ...args, ROOTLESS_IMAGE, ...cmd]);
    const r = await userPodman(this.ru, ['generate', 'systemd', '--new', '--name', container]);
    await userPodmanOk(this.ru, ['rm', container]);
    if (r.code !== 0 || !r.stdout.includes('ExecStart=')) {
      throw new Error(`podman generate systemd --new --name ${container} failed (code ${r.code}): ${quietPodman(r.stderr)}`);
    }
    return this.install(unit, r.stdout);
  }

  /**
   * Stops every unit it installed, then the manager (SIGTERM by PID), kills whatever is left
   * in its cgroup, removes the cgroup directories, the containers of its container units,
   * the installed files and the manager's runtime directory. Idempotent; teardown calls it too.
   */
  shutdown(): Promise<ManagerShutdown> {
    if (!this.shutdownResult) this.shutdownResult = this.doShutdown();
    return this.shutdownResult;
  }

  private async doShutdown(): Promise<ManagerShutdown> {
    const problems: string[] = [];
    if (this.proc.running && this.units.size > 0) {
      const r = await this.systemctl(['stop', ...this.units], 90000);
      if (r.code !== 0) problems.push(`systemctl --user stop failed: ${r.stderr.trim()}`);
    }
    const exit = await this.proc.stop('SIGTERM', 30000);
    const leftoverPids = cgroupPids(this.cgroup).map((pid) => ({ pid, comm: comm(pid) }));
    destroyCgroupSync(this.cgroup);
    const cgroupRemoved = !fs.existsSync(this.cgroup);
    if (!cgroupRemoved) problems.push(`cgroup ${this.cgroup} could not be removed`);
    liveCgroup = null;
    if (this.containers.size > 0) {
      try {
        await removeUserContainers(this.ru, [...this.containers]);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    for (const f of this.installed) fs.rmSync(f, { force: true });
    this.installed.clear();
    for (const d of fs.existsSync(this.unitDir) ? fs.readdirSync(this.unitDir) : []) {
      const p = path.join(this.unitDir, d);
      if (d.endsWith('.d') && fs.statSync(p).isDirectory() && fs.readdirSync(p).length === 0) fs.rmdirSync(p);
    }
    fs.rmSync(path.join(this.ru.xdg, 'systemd'), { recursive: true, force: true });
    return { leftoverPids, managerExit: { code: exit.code, signal: exit.signal }, cgroupRemoved, problems };
  }
}

function comm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Starts `systemd --user` for ru (see the file comment) and waits until `systemctl --user`
 * answers. Shutdown is registered on `t` (pass the root test).
 */
export async function startUserManager(t: TestLike, ru: RootlessUser): Promise<UserManager> {
  if (managerStarted) throw new Error('one systemd --user manager per test process: reuse the first one');
  managerStarted = true;
  const systemd = SYSTEMD.find((p) => fs.existsSync(p));
  const cg2 = cgroup2Mount();
  if (!systemd || !cg2) throw new Error(userManagerProblem() ?? 'no systemd');
  for (const s of sweepStaleCgroups(cg2)) t.comment(`removed the cgroup of an aborted run: ${s}`);

  const cgroup = path.join(cg2, `${CGROUP_PREFIX}${process.pid}-${ru.name}`);
  fs.mkdirSync(cgroup);
  liveCgroup = cgroup;
  for (const f of ['', 'cgroup.procs', 'cgroup.threads', 'cgroup.subtree_control']) fs.chownSync(path.join(cgroup, f), ru.uid, ru.gid);

  const fakeRun = path.join(ru.scratch, 'fake-run-systemd');
  fs.mkdirSync(path.join(fakeRun, 'system'), { recursive: true });
  const bin = path.join(ru.scratch, 'bin');
  fs.mkdirSync(bin, { recursive: true, mode: 0o755 });
  const nsproxyBin = path.join(bin, 'nsproxy');
  fs.writeFileSync(nsproxyBin, `#!/bin/sh\n# stands in for ${SHIPPED_NSPROXY} in the shipped units\nexec '${NODE}' '${ru.mainJs}' "$@"\n`, { mode: 0o755 });

  // a stale private socket of an aborted manager would look like a ready one
  fs.rmSync(path.join(ru.xdg, 'systemd'), { recursive: true, force: true });
  const unitDir = path.join(ru.home, '.config', 'systemd', 'user');
  // Services write to the manager's stdout (there is no journal). In user.conf, not as
  // --default-standard-output= on the command line: daemon-reload re-reads the configuration
  // files and forgets command-line defaults (systemd 252: services then get the journal, i.e.
  // /dev/null here).
  const userConf = path.join(ru.home, '.config', 'systemd', 'user.conf');
  for (const d of [path.join(ru.home, '.config'), path.dirname(userConf)]) {
    if (!fs.existsSync(d)) {
      fs.mkdirSync(d, { mode: 0o755 });
      fs.chownSync(d, ru.uid, ru.gid);
    }
  }
  fs.writeFileSync(userConf, '# written by test/helpers/systemd-user.ts\n[Manager]\nDefaultStandardOutput=inherit\nDefaultStandardError=inherit\n', { mode: 0o644 });
  fs.chownSync(userConf, ru.uid, ru.gid);

  const script = 'fake=$1; cg=$2; shift 2; mount --bind "$fake" /run/systemd && echo $$ >"$cg/cgroup.procs" && exec "$@"';
  const proc = new Proc(`systemd --user (${ru.name})`, 'unshare', [
    '-m', '--propagation', 'private', 'sh', '-c', script, 'sh', fakeRun, cgroup,
    ...ru.asUserEnv, systemd, '--user',
  ], { cwd: '/' });
  const mgr = new UserManager(ru, proc, cgroup, unitDir, nsproxyBin);
  mgr.adopt(userConf);
  t.teardown(async () => {
    const s = await mgr.shutdown();
    for (const p of s.problems) t.comment(`user manager teardown: ${p}`);
  });

  const deadline = Date.now() + 30000;
  const socket = path.join(ru.xdg, 'systemd', 'private');
  for (;;) {
    if (!proc.running) throw new Error(`systemd --user exited: ${proc.describe()}`);
    if (fs.existsSync(socket)) {
      const r = await mgr.systemctl(['show', '-p', 'Version']);
      if (r.code === 0 && r.stdout.startsWith('Version=')) break;
    }
    if (Date.now() > deadline) throw new Error(`systemd --user did not answer within 30 s: ${proc.describe()}`);
    await sleep(100);
  }
  return mgr;
}

/**
 * Throws a clear error when a host port that a shipped socket unit needs is taken.
 * host '::' falls back to 0.0.0.0 on a machine without IPv6.
 */
export async function requireFreePort(port: number, host: string): Promise<void> {
  const attempt = (h: string): Promise<NodeJS.ErrnoException | null> =>
    new Promise((resolve) => {
      const srv = net.createServer();
      srv.once('error', (e: NodeJS.ErrnoException) => resolve(e));
      srv.listen({ host: h, port, exclusive: true }, () => srv.close(() => resolve(null)));
    });
  let err = await attempt(host);
  if (err && host === '::' && (err.code === 'EAFNOSUPPORT' || err.code === 'EADDRNOTAVAIL')) err = await attempt('0.0.0.0');
  if (err) throw new Error(`port ${host}:${port} (ListenStream= of a shipped socket unit) is not free (${err.code}); stop what listens there`);
}
