// A registry-free container root filesystem: busybox-static with its applet links
// (about 2 MB), plus the host directories that a host binary (node, postgres) needs
// to run inside it, found with ldd and bind-mounted read-only by the callers.
// Used by podman.ts (`podman import` of a tarball) and runc.ts (a bundle's rootfs/).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { runCommand } from './procs';

/** Bump when the layout written by makeBusyboxRootfs changes (invalidates the cached image). */
const LAYOUT_VERSION = 2;

/** The container user PostgreSQL runs as (an entry in the rootfs /etc/passwd). */
export const PG_UID = 70;
export const PG_GID = 70;

const BUSYBOX_PATHS = ['/bin/busybox', '/usr/bin/busybox', '/sbin/busybox', '/usr/sbin/busybox'];

/** True when the ELF file at p has no program interpreter (PT_INTERP): statically linked. */
function isStaticElf(p: string): boolean {
  const fd = fs.openSync(p, 'r');
  try {
    const h = Buffer.alloc(64);
    fs.readSync(fd, h, 0, 64, 0);
    if (h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2 || h[5] !== 1) return false; // ELF64 little-endian only
    const phoff = Number(h.readBigUInt64LE(32));
    const phentsize = h.readUInt16LE(54);
    const phnum = h.readUInt16LE(56);
    const ph = Buffer.alloc(phentsize * phnum);
    fs.readSync(fd, ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) {
      if (ph.readUInt32LE(i * phentsize) === 3 /* PT_INTERP */) return false;
    }
    return true;
  } finally {
    fs.closeSync(fd);
  }
}

/** The host's statically linked busybox (apt: busybox-static), or an explanation of what is missing. */
export function findStaticBusybox(): { path: string } | { problem: string } {
  const found = BUSYBOX_PATHS.filter((p) => fs.existsSync(p));
  if (found.length === 0) {
    return { problem: `busybox not found (looked in ${BUSYBOX_PATHS.join(', ')}); install busybox-static` };
  }
  for (const p of found) {
    if (isStaticElf(fs.realpathSync(p))) return { path: fs.realpathSync(p) };
  }
  return { problem: `${found.join(', ')} is dynamically linked; the container rootfs needs a static one: install busybox-static` };
}

/** Identifies the rootfs content: the busybox binary and the layout version. */
export function rootfsVersion(busybox: string): string {
  const h = crypto.createHash('sha256');
  h.update(`layout ${LAYOUT_VERSION}\n`);
  h.update(fs.readFileSync(busybox));
  return h.digest('hex').slice(0, 16);
}

const LIB_DIRS = ['lib', 'lib32', 'lib64', 'libx32'];

/**
 * Writes a busybox rootfs into dir (which must not exist or be empty):
 * /bin/busybox + one symlink per applet, /etc/passwd with root and postgres (uid 70),
 * /tmp 1777, and /lib* mirroring the host (symlinks into /usr on a merged-/usr host),
 * so that host library directories bind-mounted at their own paths resolve.
 */
export function makeBusyboxRootfs(dir: string, busybox: string): void {
  for (const d of ['bin', 'sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'root', 'var/lib/postgresql', 'usr/bin', 'usr/sbin', 'usr/lib', 'usr/share']) {
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  }
  fs.copyFileSync(busybox, path.join(dir, 'bin', 'busybox'));
  fs.chmodSync(path.join(dir, 'bin', 'busybox'), 0o755);
  const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s !== '' && s !== 'busybox' && !s.includes('/'));
  for (const a of applets) {
    const link = path.join(dir, 'bin', a);
    if (!fs.existsSync(link)) fs.symlinkSync('busybox', link);
  }
  fs.writeFileSync(
    path.join(dir, 'etc', 'passwd'),
    `root:x:0:0:root:/root:/bin/sh\npostgres:x:${PG_UID}:${PG_GID}:PostgreSQL:/var/lib/postgresql:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n`,
  );
  fs.writeFileSync(path.join(dir, 'etc', 'group'), `root:x:0:\npostgres:x:${PG_GID}:\nnogroup:x:65534:\n`);
  fs.writeFileSync(path.join(dir, 'etc', 'hosts'), '127.0.0.1 localhost\n::1 localhost\n');
  fs.chmodSync(path.join(dir, 'tmp'), 0o1777);
  fs.chmodSync(path.join(dir, 'var/lib/postgresql'), 0o755);
  for (const l of LIB_DIRS) {
    const host = `/${l}`;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(host);
    } catch {
      continue;
    }
    const inRootfs = path.join(dir, l);
    if (st.isSymbolicLink()) {
      const target = fs.readlinkSync(host); // e.g. usr/lib64
      fs.symlinkSync(target, inRootfs);
      fs.mkdirSync(path.resolve(dir, target.replace(/^\/+/, '')), { recursive: true });
    } else if (st.isDirectory()) {
      fs.mkdirSync(inRootfs, { recursive: true });
    }
  }
}

/**
 * The host directories to bind-mount (read-only, at the same path) so that the given
 * host binaries run inside a busybox rootfs: the real directories of every shared
 * library and of the program interpreter that ldd reports.
 */
export function libraryDirs(binaries: string[]): string[] {
  const dirs = new Set<string>();
  for (const bin of binaries) {
    let out: string;
    try {
      out = execFileSync('ldd', [bin], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch {
      continue; // static binary ("not a dynamic executable")
    }
    for (const line of out.split('\n')) {
      const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
      if (!m) continue;
      // the directory as ldd names it, resolved (e.g. /lib/x86_64-linux-gnu -> /usr/lib/x86_64-linux-gnu)
      dirs.add(fs.realpathSync(path.dirname(m[1])));
      // and, for the interpreter named by a path through a symlinked dir (/lib64/ld-linux...),
      // the directory as it appears once /lib64 -> usr/lib64 is followed
      const viaLink = path.dirname(m[1]);
      const first = `/${viaLink.split('/')[1]}`;
      try {
        if (fs.lstatSync(first).isSymbolicLink()) {
          dirs.add(path.join('/', fs.readlinkSync(first).replace(/^\/+/, ''), viaLink.slice(first.length)));
        }
      } catch {
        /* not there */
      }
    }
  }
  return [...dirs].filter((d) => fs.existsSync(d)).sort();
}

/** The busybox rootfs made in `dir`/rootfs and packed as `dir`/rootfs.tar (numeric owners), for podman import. */
export async function busyboxRootfsTar(dir: string, busybox: string): Promise<string> {
  const rootfs = path.join(dir, 'rootfs');
  makeBusyboxRootfs(rootfs, busybox);
  const tar = path.join(dir, 'rootfs.tar');
  const tr = await runCommand('tar', ['--numeric-owner', '-C', rootfs, '-cf', tar, '.'], { timeoutMs: 60000 });
  if (tr.code !== 0) throw new Error(`tar of the busybox rootfs failed: ${tr.stderr}`);
  return tar;
}
