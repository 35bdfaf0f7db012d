// runc containers from a bundle, the "runc bundle" pattern: a busybox rootfs,
// `runc spec` edited (terminal false, read-only root, our process, host binaries
// bind-mounted read-only), `runc run ID` in the foreground as a child of the test
// (so runc reaps the container's process and its stdio is ours), `runc state ID`
// for the PID, lo brought up from the host with `nsenter -t PID -n` (the default
// spec gives no CAP_NET_ADMIN). Teardown: `runc kill ID KILL; runc delete -f ID`.
import type {} from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { NODE, SERVER_JS, type TestLike } from './env';
import { Proc, mustRun, runCommand, waitForStdoutLine } from './procs';
import { findStaticBusybox, libraryDirs, makeBusyboxRootfs } from './rootfs';
import { fixtureServerCmd, sleep } from './podman';
import type { ServerMode } from './namespaces';

/** null when runc can run containers here, else what is missing. */
export async function runcAvailable(): Promise<string | null> {
  const r = await runCommand('runc', ['--version'], { timeoutMs: 20000 });
  if (r.code !== 0) return `runc not usable (${r.stderr.trim() || `exit ${r.code}`}); apt-get install runc (.ci/run installs it)`;
  const bb = findStaticBusybox();
  if ('problem' in bb) return bb.problem;
  if (process.getuid?.() !== 0) return 'the runc tests need root';
  return null;
}

/** Fails the test (never skips: CI installs runc) when runc cannot run containers. */
export async function requireRunc(t: tap.Test): Promise<boolean> {
  const problem = await runcAvailable();
  if (problem === null) return true;
  t.fail(`runc is not usable: ${problem}`);
  return false;
}

export interface RuncContainer {
  id: string;
  pid: number;
  bundle: string;
  /** --root given to runc (undefined: runc's default, /run/runc for root) */
  root?: string;
  /** the foreground `runc run` process; the container's stdout/stderr are its */
  proc: Proc;
}

export interface RuncOpts {
  id?: string;
  /** runc --root DIR (a state dir of its own) */
  root?: string;
  /** process.args */
  args: string[];
  /** host paths (files or directories) bind-mounted read-only at the same path */
  binds?: Array<string | { source: string; destination: string }>;
  /** wait for this stdout line from the container's process (e.g. 'listening') */
  waitForLine?: string;
}

const live = new Map<string, string | undefined>();

function runcArgv(root: string | undefined, args: string[]): string[] {
  return root ? ['--root', root, ...args] : args;
}

function cleanupOnExit(): void {
  for (const [id, root] of live) {
    try {
      execFileSync('runc', runcArgv(root, ['delete', '-f', id]), { stdio: 'ignore', timeout: 20000 });
    } catch {
      /* best effort */
    }
  }
}
process.on('exit', cleanupOnExit);
process.on('message', (m: unknown) => {
  if (m !== null && typeof m === 'object' && (m as { tapAbort?: unknown }).tapAbort === 'timeout') cleanupOnExit();
});

let counter = 0;
let swept = false;

/** Once per process: deletes runc containers nsproxy-t-<pid>-... (default root) whose test process is gone. */
async function sweepStale(): Promise<void> {
  if (swept) return;
  swept = true;
  const r = await runCommand('runc', ['list', '--format', 'json'], { timeoutMs: 20000 });
  if (r.code !== 0) return;
  const list = (JSON.parse(r.stdout || 'null') ?? []) as Array<{ id: string }>;
  for (const { id } of list) {
    const m = /^nsproxy-t-(\d+)-/.exec(id);
    if (m && Number(m[1]) !== process.pid && !fs.existsSync(`/proc/${m[1]}`)) {
      await runCommand('runc', ['delete', '-f', id], { timeoutMs: 20000 });
    }
  }
}

/** `runc [--root R] state ID` parsed (throws when runc fails). */
export async function runcState(id: string, root?: string): Promise<{ pid: number; status: string }> {
  const out = await mustRun('runc', runcArgv(root, ['state', id]));
  const s = JSON.parse(out) as { pid: number; status: string };
  return { pid: s.pid, status: s.status };
}

/** Creates a bundle and runs it; the container is killed and deleted in teardown. */
export async function runRuncContainer(t: TestLike, opts: RuncOpts): Promise<RuncContainer> {
  const bb = findStaticBusybox();
  if ('problem' in bb) throw new Error(bb.problem);
  await sweepStale();
  const id = opts.id ?? `nsproxy-t-${process.pid}-${++counter}-runc`;
  const bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'nsproxy-runc-'));
  t.teardown(() => fs.rmSync(bundle, { recursive: true, force: true }));
  const rootfs = path.join(bundle, 'rootfs');
  makeBusyboxRootfs(rootfs, bb.path);
  await mustRun('runc', ['spec', '--bundle', bundle]);

  const cfgPath = path.join(bundle, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as {
    process: { terminal: boolean; args: string[]; cwd: string };
    root: { path: string; readonly: boolean };
    hostname?: string;
    mounts: Array<{ destination: string; type: string; source: string; options: string[] }>;
    linux: { namespaces: Array<{ type: string }> };
  };
  cfg.process.terminal = false;
  cfg.process.args = opts.args;
  cfg.process.cwd = '/';
  cfg.root = { path: 'rootfs', readonly: true };
  cfg.hostname = id.slice(-63);
  if (!cfg.linux.namespaces.some((n) => n.type === 'network')) throw new Error('runc spec has no network namespace');
  for (const b of opts.binds ?? []) {
    const { source, destination } = typeof b === 'string' ? { source: b, destination: b } : b;
    // the mount point must exist in the (read-only) rootfs
    const mp = path.join(rootfs, destination);
    if (fs.statSync(source).isDirectory()) fs.mkdirSync(mp, { recursive: true });
    else {
      fs.mkdirSync(path.dirname(mp), { recursive: true });
      fs.writeFileSync(mp, '');
    }
    cfg.mounts.push({ destination, type: 'bind', source, options: ['rbind', 'ro', 'nosuid', 'nodev'] });
  }
  fs.writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));

  live.set(id, opts.root);
  const proc = new Proc(`runc run ${id}`, 'runc', runcArgv(opts.root, ['run', '--bundle', bundle, id]), { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(async () => {
    await runCommand('runc', runcArgv(opts.root, ['kill', id, 'KILL']), { timeoutMs: 20000 });
    await proc.stop('SIGKILL', 10000);
    const r = await runCommand('runc', runcArgv(opts.root, ['delete', '-f', id]), { timeoutMs: 20000 });
    live.delete(id);
    if (r.code !== 0 && !/does not exist|not exist/.test(r.stderr)) throw new Error(`runc delete -f ${id} failed: ${r.stderr.trim()}`);
  });

  // the container exists once `runc state` knows it as running
  const t0 = Date.now();
  let pid = 0;
  for (;;) {
    const r = await runCommand('runc', runcArgv(opts.root, ['state', id]), { timeoutMs: 20000 });
    if (r.code === 0) {
      const s = JSON.parse(r.stdout) as { pid: number; status: string };
      if (s.status === 'running' && s.pid > 0) {
        pid = s.pid;
        break;
      }
    }
    if (!proc.running) throw new Error(`runc run ${id} exited: ${proc.describe()}`);
    if (Date.now() - t0 > 20000) throw new Error(`runc container ${id} not running after 20 s: ${proc.describe()}`);
    await sleep(50);
  }
  if (fs.readlinkSync(`/proc/${pid}/ns/net`) === fs.readlinkSync('/proc/self/ns/net')) {
    throw new Error(`runc container ${id} (pid ${pid}) is in the host netns`);
  }
  await mustRun('nsenter', ['-t', String(pid), '-n', 'ip', 'link', 'set', 'lo', 'up']);
  if (opts.waitForLine !== undefined) {
    const want = opts.waitForLine;
    await waitForStdoutLine(proc, (l) => l === want, 20000, `"${want}" from runc container ${id}`);
  }
  return { id, pid, bundle, root: opts.root, proc };
}

/** The fixture server (`node test/fixtures/server.js`, host node bind-mounted) in a runc container. */
export function runcServerContainer(t: TestLike, mode: ServerMode, listens: string[], opts: { id?: string; root?: string } = {}): Promise<RuncContainer> {
  const binds: RuncOpts['binds'] = [
    ...libraryDirs([NODE]),
    { source: NODE, destination: '/usr/bin/node' },
    { source: path.dirname(SERVER_JS), destination: '/fixtures' },
  ];
  return runRuncContainer(t, { ...opts, args: fixtureServerCmd(mode, listens), binds, waitForLine: 'listening' });
}
