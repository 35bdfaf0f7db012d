// An ordinary user for the rootless tests, and the commands to act as it. `setpriv` changes
// uid/gid and execs (the PID stays the one we spawned, so we stop processes by it), and a uid
// change from root drops every capability: what runs is as unprivileged as a lingering user.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { MAIN_JS, NODE, REPO_ROOT, SERVER_JS, childEnv, type TestLike } from './env';
import { TestServer } from './namespaces';
import { mustRun, Proc, runCommand, waitForStdoutLine } from './procs';

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  /** `setpriv ... --` prefix that runs a command as this user, with no capabilities */
  asUser: string[];
  /** paths to the build and the fixture server that this user can read */
  mainJs: string;
  serverJs: string;
}

/** The user `name`, created once (with a home) if missing; useradd is serialized across test files. */
async function ensureUser(name: string): Promise<{ uid: number; gid: number }> {
  await mustRun('flock', ['/run/lock/nsproxy-test-users.lock', 'sh', '-c', `id -u ${name} >/dev/null 2>&1 || useradd -m -s /bin/sh ${name}`]);
  const uid = Number((await mustRun('id', ['-u', name])).trim());
  const gid = Number((await mustRun('id', ['-g', name])).trim());
  return { uid, gid };
}

/**
 * Where the user can reach the repository: REPO_ROOT itself, or, when a parent directory is
 * closed to others (a clone under /root), a bind mount of it under /run that goes in teardown.
 */
async function reachableRepo(t: TestLike, asUser: string[]): Promise<string> {
  const direct = await runCommand(asUser[0] as string, [...asUser.slice(1), 'test', '-r', MAIN_JS]);
  if (direct.code === 0) return REPO_ROOT;
  const mount = fs.mkdtempSync('/run/nsproxy-test-repo-');
  fs.chmodSync(mount, 0o755);
  await mustRun('mount', ['--bind', REPO_ROOT, mount]);
  t.teardown(async () => {
    await mustRun('umount', [mount]);
    fs.rmdirSync(mount);
  });
  return mount;
}

export async function testUser(t: TestLike, name = 'nsproxy-test'): Promise<TestUser> {
  const { uid, gid } = await ensureUser(name);
  const asUser = ['setpriv', '--reuid', String(uid), '--regid', String(gid), '--init-groups', '--reset-env', '--'];
  const repo = await reachableRepo(t, asUser);
  return {
    name,
    uid,
    gid,
    asUser,
    mainJs: path.join(repo, path.relative(REPO_ROOT, MAIN_JS)),
    serverJs: path.join(repo, path.relative(REPO_ROOT, SERVER_JS)),
  };
}

/**
 * The fixture server as `user`, in a user namespace and network namespace of its own
 * (`unshare -Urn`): the ownership shape of a rootless podman container.
 */
export async function startUserNsServer(t: TestLike, user: TestUser, mode: string, listens: string[]): Promise<TestServer> {
  const args = [user.serverJs, '--mode', mode, ...listens.flatMap((l) => ['--listen', l])];
  const proc = new Proc(
    `server ${mode} as ${user.name} in unshare -Urn`,
    'setpriv',
    ['--pdeathsig', 'KILL', ...user.asUser.slice(1), 'unshare', '-Urn', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', NODE, ...args],
    { env: childEnv(), cwd: '/' },
  );
  const server = new TestServer(proc);
  t.teardown(() => server.stop());
  await waitForStdoutLine(proc, (l) => l === 'listening', 20000, `"listening" from ${proc.label}`);
  return server;
}

/** Effective capabilities of a process, from /proc/PID/status (hex). */
export function capEff(pid: number): string {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('CapEff:'));
  return (line ?? '').split(/\s+/)[1] ?? '';
}

/** PIDs of the processes whose parent is `pid` (any of its threads). */
export function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return children;
}

/** The short name of a process (/proc/PID/comm), '' if it is gone. */
export function commOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Running (a zombie waiting for a parent that does not reap it counts as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
