// Rootless podman for an ordinary test user, with no registry: subordinate uid/gid ranges,
// an XDG_RUNTIME_DIR at /run/user/UID (as logind would make it), a containers.conf the user
// can read (runc, ulimits within the hard limits), the busybox image imported into the
// user's own image store, containers that are removed in teardown (and on exit if a test is
// aborted), and the user's rootless "pause" process stopped by its PID at the end.
//
// Each test file that uses this takes a user of its own (distinct image store, runtime dir and
// pause process): tap runs two test files at once, and podman keeps per-user state.
import type {} from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { NODE, childEnv, type TestLike } from './env';
import { containersConfText } from './podman';
import { runCommand, type RunResult } from './procs';
import { findStaticBusybox, busyboxRootfsTar, rootfsVersion } from './rootfs';
import { alive, testUser, type TestUser } from './users';

export const ROOTLESS_IMAGE = 'localhost/nsproxy-test-busybox:latest';
const IMAGE_LABEL = 'nsproxy.test.rootfs';
const USERS_LOCK = '/run/lock/nsproxy-test-users.lock';
const SUBID_START = 100000;
const SUBID_COUNT = 65536;

export interface RootlessUser extends TestUser {
  home: string;
  /** XDG_RUNTIME_DIR: /run/user/UID (podman's run root and the user manager's %t) */
  xdg: string;
  /** the containers.conf in CONTAINERS_CONF */
  containersConf: string;
  /** a root-owned scratch directory (mode 755) for files the user must read; removed in teardown */
  scratch: string;
  /** the environment podman and nsproxy need, as VAR=value words for env(1) */
  envWords: string[];
  /** command words that run what follows as the user, in its home, with envWords set */
  asUserEnv: string[];
}

function passwdHome(name: string): string {
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  const home = line?.split(':')[5];
  if (!home) throw new Error(`no home directory for ${name} in /etc/passwd`);
  return home;
}

/** `NAME:START:COUNT` in /etc/subuid (or subgid), after the highest range there; serialized with useradd. */
async function ensureSubordinateIds(name: string): Promise<void> {
  const script =
    'for f in /etc/subuid /etc/subgid; do ' +
    '  touch "$f"; grep -q "^$NAME:" "$f" && continue; ' +
    '  start=$(awk -F: -v min="$START" \'BEGIN{m=min} NF==3 && $2+$3>m {m=$2+$3} END{print m}\' "$f"); ' +
    '  echo "$NAME:$start:$COUNT" >>"$f"; ' +
    'done';
  const r = await runCommand('flock', [USERS_LOCK, 'sh', '-c', script], {
    env: childEnv({ NAME: name, START: String(SUBID_START), COUNT: String(SUBID_COUNT) }),
  });
  if (r.code !== 0) throw new Error(`adding subordinate id ranges for ${name} failed: ${r.stderr}`);
}

/** What is missing on this machine for rootless podman, or null. */
export function rootlessProblem(): string | null {
  for (const [bin, pkg] of [['/usr/bin/podman', 'podman'], ['/usr/bin/newuidmap', 'uidmap'], ['/usr/bin/newgidmap', 'uidmap'], ['/usr/sbin/runc', 'runc']] as const) {
    const alt = bin.replace('/usr/sbin/', '/usr/bin/');
    if (!fs.existsSync(bin) && !fs.existsSync(alt)) return `${bin} not found; apt-get install ${pkg} (.ci/run installs it)`;
  }
  const bb = findStaticBusybox();
  if ('problem' in bb) return bb.problem;
  if (process.getuid?.() !== 0) return 'the rootless container tests need root to create their user and its subordinate ids';
  return null;
}

/** Fails the test (never skips: CI installs everything) when rootless podman cannot work here. */
export function requireRootless(t: tap.Test): boolean {
  const problem = rootlessProblem();
  if (problem === null) return true;
  t.fail(`rootless podman is not usable: ${problem}`);
  return false;
}

/**
 * The ordinary user `name` (created if missing) made ready for rootless podman. Long-lived
 * things (the scratch dir, the pause process, the user's containers) are cleaned up in
 * `t`'s teardown: pass the root test.
 */
export async function rootlessUser(t: TestLike, name: string): Promise<RootlessUser> {
  const user = await testUser(t, name);
  await ensureSubordinateIds(name);
  const home = passwdHome(name);
  fs.mkdirSync('/run/user', { recursive: true, mode: 0o755 });
  const xdg = `/run/user/${user.uid}`;
  fs.mkdirSync(xdg, { recursive: true });
  fs.chownSync(xdg, user.uid, user.gid);
  fs.chmodSync(xdg, 0o700);

  // scratch dirs of aborted runs (their test process is gone) go first
  for (const e of fs.readdirSync(os.tmpdir())) {
    const m = /^nsproxy-rootless-(\d+)-/.exec(e);
    if (m && Number(m[1]) !== process.pid && !fs.existsSync(`/proc/${m[1]}`)) fs.rmSync(path.join(os.tmpdir(), e), { recursive: true, force: true });
  }
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), `nsproxy-rootless-${process.pid}-${name}-`));
  fs.chmodSync(scratch, 0o755);
  const containersConf = path.join(scratch, 'containers.conf');
  fs.writeFileSync(containersConf, containersConfText('test/helpers/rootless-podman.ts'), { mode: 0o644 });
  const envWords = [`XDG_RUNTIME_DIR=${xdg}`, `CONTAINERS_CONF=${containersConf}`];
  const ru: RootlessUser = {
    ...user,
    home,
    xdg,
    containersConf,
    scratch,
    envWords,
    asUserEnv: [...user.asUser, 'env', '-C', home, ...envWords],
  };
  registerUser(ru);
  // LIFO: this runs after every teardown registered later (containers, the manager)
  t.teardown(async () => {
    await stopPauseProcess(ru);
    unregisterUser(ru);
    fs.rmSync(scratch, { recursive: true, force: true });
    // like a logout: the runtime dir goes (podman's run root, the manager's sockets); the
    // test users are the tests' own, so this one was made by this run or an aborted one
    fs.rmSync(xdg, { recursive: true, force: true });
  });
  return ru;
}

/** Runs `podman ARGS` as the user (never throws). */
export function userPodman(ru: RootlessUser, args: string[], timeoutMs = 60000): Promise<RunResult> {
  return runCommand(ru.asUserEnv[0] as string, [...ru.asUserEnv.slice(1), 'podman', ...args], { timeoutMs, cwd: '/' });
}

/** `podman ARGS` as the user; stdout, or an error with stderr. podman's "/ is not a shared mount" warning is dropped. */
export async function userPodmanOk(ru: RootlessUser, args: string[], timeoutMs = 60000): Promise<string> {
  const r = await userPodman(ru, args, timeoutMs);
  if (r.code !== 0) {
    throw new Error(`podman ${args.join(' ')} as ${ru.name} failed (code ${r.code}${r.timedOut ? ', timed out' : ''}): ${quietPodman(r.stderr)}`);
  }
  return r.stdout;
}

/** podman's stderr without the warning every rootless call prints on a machine whose / is not shared. */
export function quietPodman(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.includes('is not a shared mount'))
    .join('\n')
    .trim();
}

/**
 * Makes sure ROOTLESS_IMAGE is in the user's image store and holds the current busybox rootfs
 * (a label carries the version, as in podman.ts). Serialized per user with flock.
 */
export async function ensureUserImage(ru: RootlessUser): Promise<void> {
  const bb = findStaticBusybox();
  if ('problem' in bb) throw new Error(bb.problem);
  const version = rootfsVersion(bb.path);
  const current = async (): Promise<boolean> => {
    const r = await userPodman(ru, ['image', 'inspect', '--format', `{{index .Labels "${IMAGE_LABEL}"}}`, ROOTLESS_IMAGE]);
    return r.code === 0 && r.stdout.trim() === version;
  };
  if (await current()) return;
  const dir = fs.mkdtempSync(path.join(ru.scratch, 'rootfs-'));
  fs.chmodSync(dir, 0o755);
  try {
    const tar = await busyboxRootfsTar(dir, bb.path);
    fs.chmodSync(tar, 0o644);
    const r = await userPodman(ru, ['import', '-q', '--change', `LABEL ${IMAGE_LABEL}=${version}`, tar, ROOTLESS_IMAGE], 120000);
    if (r.code !== 0) throw new Error(`podman import as ${ru.name} failed (code ${r.code}): ${quietPodman(r.stderr)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (!(await current())) throw new Error(`${ROOTLESS_IMAGE} of ${ru.name} does not carry label ${IMAGE_LABEL}=${version} after the import`);
}

/** PID of the user's rootless pause process (podman's holder of the user namespace), or null. */
export function pausePid(ru: RootlessUser): number | null {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(path.join(ru.xdg, 'libpod', 'tmp', 'pause.pid'), 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return null;
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return new RegExp(`\nUid:\t${ru.uid}\t`).test(status) ? pid : null;
}

/** SIGKILLs the pause process by its PID (it ignores SIGTERM) and waits until it is gone. */
export async function stopPauseProcess(ru: RootlessUser): Promise<void> {
  const pid = pausePid(ru);
  if (pid === null) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  const deadline = Date.now() + 5000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/** The user's subordinate uid range from /etc/subuid: [first, first + count). */
export function subuidRange(ru: RootlessUser): [number, number] | null {
  const line = fs.readFileSync('/etc/subuid', 'utf8').split('\n').find((l) => l.startsWith(`${ru.name}:`));
  if (!line) return null;
  const [, first, count] = line.split(':');
  return [Number(first), Number(first) + Number(count)];
}

/**
 * Live processes that belong to the user: its own uid, or (inside its containers) one of its
 * subordinate uids. What a test leaves behind shows up here.
 */
export function userProcesses(ru: RootlessUser): Array<{ pid: number; uid: number; comm: string }> {
  const range = subuidRange(ru);
  const out: Array<{ pid: number; uid: number; comm: string }> = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const status = fs.readFileSync(`/proc/${e}/status`, 'utf8');
      const uid = Number(/\nUid:\t(\d+)/.exec(status)?.[1]);
      const mine = uid === ru.uid || (range !== null && uid >= range[0] && uid < range[1]);
      if (mine && alive(Number(e))) out.push({ pid: Number(e), uid, comm: (/^Name:\t(.*)$/m.exec(status)?.[1] ?? '?') });
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * userProcesses(), once it is empty or `ms` have passed: a removed container's conmon, and the
 * `podman container cleanup` it runs, exit on their own shortly after `podman rm` returns.
 */
export async function userProcessesAfter(ru: RootlessUser, ms: number): Promise<Array<{ pid: number; uid: number; comm: string }>> {
  const deadline = Date.now() + ms;
  let left = userProcesses(ru);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = userProcesses(ru);
  }
  return left;
}

// ---------------------------------------------------------------------------
// containers

/** Containers per user that an aborted run must still remove (see cleanupOnExit). */
const liveUsers = new Map<string, { ru: RootlessUser; containers: Set<string> }>();

function registerUser(ru: RootlessUser): void {
  if (!liveUsers.has(ru.name)) liveUsers.set(ru.name, { ru, containers: new Set() });
}
function unregisterUser(ru: RootlessUser): void {
  liveUsers.delete(ru.name);
}

function cleanupOnExit(): void {
  for (const { ru, containers } of liveUsers.values()) {
    const argv = [...ru.asUserEnv, 'podman', 'rm', '-f', '-t', '0', '--ignore', ...containers];
    try {
      if (containers.size > 0) execFileSync(argv[0] as string, argv.slice(1), { stdio: 'ignore', timeout: 30000, cwd: '/' });
    } catch {
      /* best effort */
    }
    const pid = pausePid(ru);
    try {
      if (pid !== null) process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
process.on('exit', cleanupOnExit);
process.on('message', (m: unknown) => {
  if (m !== null && typeof m === 'object' && (m as { tapAbort?: unknown }).tapAbort === 'timeout') cleanupOnExit();
});

/** Remembers a container of the user for the clean-up of an aborted run (see removeUserContainers). */
export function trackUserContainer(ru: RootlessUser, name: string): void {
  liveUsers.get(ru.name)?.containers.add(name);
}

/** Registers `podman rm -f -t0 NAME` (as the user) for teardown, and for an aborted run. */
export function removeUserContainerOnTeardown(t: TestLike, ru: RootlessUser, name: string): void {
  liveUsers.get(ru.name)?.containers.add(name);
  t.teardown(async () => {
    if (!liveUsers.get(ru.name)?.containers.has(name)) return; // removed (and checked) by the test
    const r = await userPodman(ru, ['rm', '-f', '-t', '0', '--ignore', name]);
    liveUsers.get(ru.name)?.containers.delete(name);
    if (r.code !== 0) t.comment(`podman rm -f ${name} as ${ru.name} failed: ${quietPodman(r.stderr)}`);
  });
}

/**
 * `podman rm -f` of the user's containers now, and no more in teardown: a test that checks
 * that nothing is left calls this first (a podman call in teardown would start the user's
 * pause process again).
 */
export async function removeUserContainers(ru: RootlessUser, names: string[]): Promise<void> {
  await userPodmanOk(ru, ['rm', '-f', '-t', '0', '--ignore', ...names]);
  for (const n of names) liveUsers.get(ru.name)?.containers.delete(n);
}

/**
 * Removes containers of the user left by an earlier, aborted run: the given names, and
 * nsproxy-t-<pid>-... names whose test process is gone.
 */
export async function sweepUserContainers(ru: RootlessUser, names: string[]): Promise<string[]> {
  const r = await userPodman(ru, ['ps', '-a', '--format', '{{.Names}}']);
  const stale = r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((n) => {
      if (names.includes(n)) return true;
      const m = /^nsproxy-t-(\d+)-/.exec(n);
      return m !== null && Number(m[1]) !== process.pid && !fs.existsSync(`/proc/${m[1]}`);
    });
  if (stale.length > 0) await userPodman(ru, ['rm', '-f', '-t', '0', '--ignore', ...stale]);
  return stale;
}

export interface UserContainer {
  name: string;
  /** State.Pid after the start (0 for a created container) */
  pid: number;
}

/** `podman run -d` (or `create`) as the user, --network=none, ROOTLESS_IMAGE; removed in teardown. */
export async function runUserContainer(
  t: TestLike,
  ru: RootlessUser,
  opts: { name: string; args?: string[]; cmd: string[]; createOnly?: boolean },
): Promise<UserContainer> {
  await ensureUserImage(ru);
  removeUserContainerOnTeardown(t, ru, opts.name);
  await userPodmanOk(ru, [
    ...(opts.createOnly ? ['create'] : ['run', '-d']),
    '--name', opts.name,
    '--network=none',
    ...(opts.args ?? []),
    ROOTLESS_IMAGE,
    ...opts.cmd,
  ]);
  return { name: opts.name, pid: opts.createOnly ? 0 : await userContainerPid(ru, opts.name) };
}

/** State.Pid of a running container of the user (0 when not running). */
export async function userContainerPid(ru: RootlessUser, name: string): Promise<number> {
  const out = await userPodmanOk(ru, ['inspect', '--type', 'container', '--format', '{{.State.Pid}}', name]);
  return Number(out.trim());
}

/** `-v` options that run `node /fixtures/server.js` inside the busybox image (paths the user can read). */
export function userFixtureMounts(ru: RootlessUser, libraryDirs: string[]): string[] {
  const mounts: string[] = [];
  for (const d of libraryDirs) mounts.push('-v', `${d}:${d}:ro`);
  mounts.push('-v', `${NODE}:/usr/bin/node:ro`);
  mounts.push('-v', `${path.dirname(ru.serverJs)}:/fixtures:ro`);
  return mounts;
}
