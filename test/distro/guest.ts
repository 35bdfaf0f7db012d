// A booted Debian 13 guest for the distro tests: the cached rootfs of test/distro/rootfs.sh,
// booted with `systemd-nspawn -b` (systemd 257 as its PID 1), nsproxy installed at /usr/local
// (an `npm install -g --prefix` made by test/distro/run.sh, bind-mounted read-only).
//   - --volatile=overlay: the cached rootfs is the read-only lower layer, every write of a run
//     goes to a tmpfs and is gone at shutdown; several guests can boot from one rootfs at once
//     (SYSTEMD_NSPAWN_LOCK=0: nothing writes the rootfs itself).
//   - podman's storage cannot be on that overlayfs (no overlay over overlayfs): root's and the
//     rootless user's are bind-mounted from a scratch directory on disk.
//   - --private-network: the guest's ports (5432, 5050) and podman's firewall rules stay in a
//     network namespace of its own, with only lo: nothing collides with the host or another run.
//   - the host's cgroups are hybrid (cgroup v1 controllers): the guest gets a cgroup2 tree with
//     no controllers (SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1), so rootfs.sh's containers.conf says
//     cgroups = "disabled"; crun sets sysctls and uses keyrings, which nspawn's sandbox must allow.
// Commands run inside with nsenter into all the guest's namespaces, then `systemd-run --scope`,
// so that each one runs in a cgroup of the guest's own tree, as a login shell's would. That
// matters to podman: a process that only joined the guest's cgroup namespace sees its cgroup
// as "/.." and podman, restarting a container of a quadlet unit (--cgroups=split), would put
// conmon in "/sys/fs/cgroup/../runtime", i.e. /sys/fs/runtime: the "mkdir /sys/fs/runtime:
// operation not permitted" that `podman restart` failed with when called through bare nsenter.
// The rootless user's commands run the same way in a scope under its user-UID.slice.
import type {} from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Proc, runCommand, type RunResult } from '../helpers/procs';
import type { TestLike } from '../helpers/env';

export const GUEST_USER = 'lingeruser';
/** rootfs.sh's GUEST_UID */
export const GUEST_UID = 2000;
export const USER_HOME = '/home/lingeruser';
export const USER_RUNTIME = `/run/user/${GUEST_UID}`;
/** Where rootfs.sh's image tarball appears inside the guest. */
export const IMAGE_TAR = '/run/nsproxy-distro/image.tar';
const PATH_ENV = 'PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The cache directory of rootfs.sh and the npm prefix with nsproxy, as run.sh exports them. */
export function distroInputs(): { cache: string; prefix: string } | { problem: string } {
  const cache = process.env.NSPROXY_DISTRO_DIR ?? '';
  const prefix = process.env.NSPROXY_DISTRO_PREFIX ?? '';
  if (!cache || !fs.existsSync(path.join(cache, 'rootfs')) || !fs.existsSync(path.join(cache, 'image.tar'))) {
    return { problem: 'NSPROXY_DISTRO_DIR does not name a built rootfs; run the distro tests with `npm run test:distro`' };
  }
  if (!prefix || !fs.existsSync(path.join(prefix, 'bin', 'nsproxy'))) {
    return { problem: 'NSPROXY_DISTRO_PREFIX does not hold an npm install of nsproxy; run `npm run test:distro`' };
  }
  return { cache, prefix };
}

export interface ExecOpts {
  /** run as the rootless user, in a scope under its user slice, with its XDG_RUNTIME_DIR */
  user?: boolean;
  timeoutMs?: number;
  env?: Record<string, string>;
}

export class Guest {
  constructor(
    readonly name: string,
    readonly nspawn: Proc,
    /** PID of the guest's systemd in the host's PID namespace */
    readonly init: number,
    readonly scratch: string,
  ) {}

  /** A path inside the guest, as the host reaches it. */
  hostPath(p: string): string {
    return `/proc/${this.init}/root${p}`;
  }

  /** Runs a command inside the guest (see the header: a scope of the guest's own cgroup tree). */
  exec(cmd: string[], opts: ExecOpts = {}): Promise<RunResult> {
    const env = [PATH_ENV, 'LANG=C.UTF-8', ...Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`)];
    const scope = ['systemd-run', '--scope', '--quiet', '--collect'];
    if (opts.user) {
      scope.push(`--uid=${GUEST_USER}`, `--gid=${GUEST_USER}`, `--slice=user-${GUEST_UID}.slice`);
      env.push(`HOME=${USER_HOME}`, `USER=${GUEST_USER}`, `XDG_RUNTIME_DIR=${USER_RUNTIME}`, `DBUS_SESSION_BUS_ADDRESS=unix:path=${USER_RUNTIME}/bus`);
    } else {
      env.push('HOME=/root', 'USER=root');
    }
    const argv = ['-t', String(this.init), '-a', 'env', '-i', PATH_ENV, ...scope, '--', 'env', '-i', ...env, ...cmd];
    return runCommand('nsenter', argv, { timeoutMs: opts.timeoutMs ?? 120000 });
  }

  /** exec() that must exit 0; returns stdout. */
  async ok(cmd: string[], opts: ExecOpts = {}): Promise<string> {
    const r = await this.exec(cmd, opts);
    if (r.code !== 0) throw new Error(`in the guest${opts.user ? ` as ${GUEST_USER}` : ''}: ${cmd.join(' ')} failed (code ${r.code}, signal ${r.signal}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  systemctl(args: string[], user = false, timeoutMs = 120000): Promise<RunResult> {
    return this.exec(['systemctl', ...(user ? ['--user'] : []), '--no-pager', ...args], { user, timeoutMs });
  }

  /** `systemctl show -p` of one unit, as a record. */
  async show(unit: string, props: string[], user = false): Promise<Record<string, string>> {
    const r = await this.systemctl(['show', unit, ...props.map((p) => `-p${p}`)], user);
    if (r.code !== 0) throw new Error(`systemctl show ${unit}: ${r.stderr}`);
    const out: Record<string, string> = {};
    for (const l of r.stdout.split('\n')) {
      const i = l.indexOf('=');
      if (i > 0) out[l.slice(0, i)] = l.slice(i + 1);
    }
    return out;
  }

  /** Polls `show` until pred holds; throws with the last values otherwise. */
  async waitFor(unit: string, props: string[], pred: (r: Record<string, string>) => boolean, timeoutMs: number, what: string, user = false): Promise<Record<string, string>> {
    const t0 = Date.now();
    let last: Record<string, string> = {};
    while (Date.now() - t0 < timeoutMs) {
      last = await this.show(unit, props, user);
      if (pred(last)) return last;
      await sleep(200);
    }
    throw new Error(`${unit}: ${what}: not within ${timeoutMs} ms; last ${JSON.stringify(last)}`);
  }

  /** Message lines of a unit's journal (nsproxy writes one "msg key=value ..." line per event). */
  async journal(unit: string, user = false): Promise<string[]> {
    // (--user-unit would match the caller's own _UID, root's: name the field instead)
    const r = await this.exec(['journalctl', '--no-pager', '-o', 'cat', '-q', user ? `_SYSTEMD_USER_UNIT=${unit}` : `--unit=${unit}`]);
    return r.stdout.split('\n').filter((l) => l !== '');
  }

  /** Writes a file inside the guest (through /proc/INIT/root), owned by the user when asked. */
  writeFile(p: string, content: string, opts: { user?: boolean; mode?: number } = {}): void {
    const hp = this.hostPath(p);
    fs.mkdirSync(path.dirname(hp), { recursive: true });
    fs.writeFileSync(hp, content, { mode: opts.mode ?? 0o644 });
    if (opts.user) this.chownToUser(p);
  }

  /** mkdir -p inside the guest; every directory made below USER_HOME belongs to the user. */
  mkdir(p: string, opts: { user?: boolean } = {}): void {
    const parts = p.split('/').filter((x) => x);
    let cur = '';
    for (const part of parts) {
      cur += `/${part}`;
      if (!fs.existsSync(this.hostPath(cur))) {
        fs.mkdirSync(this.hostPath(cur));
        if (opts.user) this.chownToUser(cur);
      }
    }
  }

  chownToUser(p: string): void {
    fs.chownSync(this.hostPath(p), GUEST_UID, GUEST_UID);
  }

  readFile(p: string): string {
    return fs.readFileSync(this.hostPath(p), 'utf8');
  }

  /** A field of /proc/PID/status of a guest process (guest PID). */
  procStatus(pid: number, field: string): string {
    const m = new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(this.readFile(`/proc/${pid}/status`));
    return m ? m[1].trim() : '';
  }

  /** Powers the guest off (SIGTERM to nspawn, by PID), waits; SIGKILL after 60 s. */
  async stop(): Promise<{ code: number | null; signal: string | null; killed: boolean }> {
    return this.stopping ?? (this.stopping = this.powerOff());
  }

  private stopping: Promise<{ code: number | null; signal: string | null; killed: boolean }> | null = null;

  /** The last lines of the guest's console (systemd's boot and shutdown messages). */
  consoleTail(n = 40): string {
    return this.nspawn.stdout.lines.slice(-n).join('\n').replace(/\x1b\[[0-9;]*m/g, '');
  }

  private async powerOff(): Promise<{ code: number | null; signal: string | null; killed: boolean }> {
    let killed = false;
    if (this.nspawn.running) {
      this.nspawn.signal('SIGTERM');
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60000).unref());
      if ((await Promise.race([this.nspawn.exited, timer])) === 'timeout') {
        killed = true;
        this.nspawn.signal('SIGKILL');
      }
    }
    const e = await this.nspawn.closed;
    return { code: e.code, signal: e.signal, killed };
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Removes the scratch directories of runs whose test process is gone (an aborted run). */
function sweepStaleScratch(): void {
  for (const d of fs.readdirSync('/var/tmp')) {
    const m = /^nsproxy-distro-[a-z]+-(\d+)-/.exec(d);
    if (m && !fs.existsSync(`/proc/${m[1]}`)) fs.rmSync(path.join('/var/tmp', d), { recursive: true, force: true });
  }
}

/**
 * Boots a guest from the cached rootfs and waits until its system is up (running or
 * degraded); stops it and removes its scratch directory in teardown.
 */
export async function bootGuest(t: TestLike, role: string, cache: string, prefix: string): Promise<Guest> {
  const name = `nsproxy-${role}-${process.pid}`;
  sweepStaleScratch();
  const scratch = fs.mkdtempSync(path.join('/var/tmp', `nsproxy-distro-${role}-${process.pid}-`));
  const rootStorage = path.join(scratch, 'root-containers');
  const userStorage = path.join(scratch, 'user-containers');
  fs.mkdirSync(rootStorage, { mode: 0o700 });
  fs.mkdirSync(userStorage, { mode: 0o700 });
  fs.chownSync(userStorage, GUEST_UID, GUEST_UID);
  fs.mkdirSync('/run/systemd/nspawn', { recursive: true });

  const nspawnArgs = [
    '-q', '-D', path.join(cache, 'rootfs'), '-b', '-M', name,
    '--volatile=overlay', '--private-network', '--register=no', '--keep-unit',
    '--capability=all',
    // crun and podman: bpf (device filter), keyctl (session keyrings)
    '--system-call-filter=bpf keyctl add_key request_key',
    `--bind=${rootStorage}:/var/lib/containers`,
    `--bind=${userStorage}:${USER_HOME}/.local/share/containers`,
    `--bind-ro=${prefix}:/usr/local`,
    `--bind-ro=${cache}:/run/nsproxy-distro`,
  ];
  // A private mount namespace with a tmpfs on /run/systemd/nspawn: nspawn's runtime files
  // (propagation directories) vanish with it, nothing is left on the host.
  const script = 'mount -t tmpfs tmpfs /run/systemd/nspawn && exec systemd-nspawn "$@"';
  const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: '1', SYSTEMD_NSPAWN_API_VFS_WRITABLE: '1', SYSTEMD_NSPAWN_LOCK: '0' };
  const nspawn = new Proc(`systemd-nspawn ${name}`, 'unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', ...nspawnArgs], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let guest: Guest | null = null;
  t.teardown(async () => {
    if (guest) await guest.stop();
    else await nspawn.stop('SIGKILL');
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  const t0 = Date.now();
  let init = 0;
  while (init === 0) {
    if (!nspawn.running) throw new Error(`systemd-nspawn exited before the guest booted: ${nspawn.describe()}`);
    if (Date.now() - t0 > 60000) throw new Error(`no guest init after 60 s: ${nspawn.describe()}`);
    try {
      const kids = fs.readFileSync(`/proc/${nspawn.pid}/task/${nspawn.pid}/children`, 'utf8').trim().split(/\s+/).filter((x) => x).map(Number);
      init = kids.find((k) => fs.readFileSync(`/proc/${k}/comm`, 'utf8').trim() === 'systemd') ?? 0;
    } catch {
      /* not yet */
    }
    if (init === 0) await sleep(100);
  }
  guest = new Guest(name, nspawn, init, scratch);
  // the system bus appears a moment after systemd itself; then --wait waits for the boot
  let up: RunResult;
  for (;;) {
    up = await runCommand('nsenter', ['-t', String(init), '-a', 'env', '-i', PATH_ENV, 'systemctl', 'is-system-running', '--wait'], { timeoutMs: 120000 });
    if (up.stdout.trim() !== '' || Date.now() - t0 > 120000) break;
    await sleep(200);
  }
  const state = up.stdout.trim();
  if (state !== 'running' && state !== 'degraded') throw new Error(`the guest did not come up: is-system-running says "${state}" ${up.stderr}`);
  t.comment(`guest ${name} booted in ${Date.now() - t0} ms (${state}); nspawn PID ${nspawn.pid}, its systemd PID ${init}`);
  return guest;
}
