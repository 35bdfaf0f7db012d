// The networking lab's pieces inside a Debian 13 guest: the two local images (PostgreSQL 17 and
// the pgAdmin stand-in, from rootfs.sh's image.tar, tagged with the names the shipped quadlet
// files use, so quadlet's Image= lines resolve locally), the shipped files installed where
// systemd/README.md says, PostgreSQL's own clients, and nsproxy's journal lines.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunResult } from '../helpers/procs';
import { SHIPPED_DIR } from '../helpers/systemd-user';
import { IMAGE_TAR, USER_HOME, sleep, type Guest } from './guest';

export const PG_BIN = '/usr/lib/postgresql/17/bin';
/** What test-postgresql.container sets as POSTGRES_PASSWORD. */
export const PG_PASSWORD = 'password';


const IMAGES: Array<{ name: string; changes: string[] }> = [
  {
    name: 'docker.io/library/postgres:16',
    changes: [
      'ENTRYPOINT=["docker-entrypoint.sh"]',
      'CMD=["postgres"]',
      'ENV=PATH=/usr/lib/postgresql/17/bin:/usr/local/bin:/usr/bin:/bin',
      'ENV=PGDATA=/var/lib/postgresql/data',
      'ENV=LANG=C.UTF-8',
      'STOPSIGNAL=SIGINT',
    ],
  },
  {
    name: 'docker.io/dpage/pgadmin4:latest',
    changes: ['ENTRYPOINT=["pgadmin-standin.sh"]', 'ENV=PATH=/usr/lib/postgresql/17/bin:/usr/local/bin:/usr/bin:/bin', 'ENV=LANG=C.UTF-8'],
  },
];

/** `podman import`s both images into root's or the user's storage. */
export async function importImages(g: Guest, user: boolean): Promise<void> {
  for (const img of IMAGES) {
    await g.ok(['podman', 'import', '-q', ...img.changes.flatMap((c) => ['--change', c]), IMAGE_TAR, img.name], { user, timeoutMs: 180000 });
  }
}

/** Installs a file of systemd/ (relative path) at dest inside the guest, byte for byte. */
export function installShipped(g: Guest, rel: string, dest: string, user: boolean): void {
  if (user) g.mkdir(path.dirname(dest), { user: true });
  g.writeFile(dest, fs.readFileSync(path.join(SHIPPED_DIR, rel), 'utf8'), { user });
}

/** Where unit files and quadlet files go, for root (system manager) or the user. */
export function unitDirs(user: boolean): { units: string; quadlets: string } {
  return user
    ? { units: `${USER_HOME}/.config/systemd/user`, quadlets: `${USER_HOME}/.config/containers/systemd` }
    : { units: '/etc/systemd/system', quadlets: '/etc/containers/systemd' };
}

/** psql inside the guest to a host or socket directory, port 5432, with the quadlet's password. */
export function psql(g: Guest, host: string, sql: string): Promise<RunResult> {
  return g.exec([`${PG_BIN}/psql`, '-X', '-h', host, '-p', '5432', '-U', 'postgres', '-d', 'postgres', '-Atc', sql], {
    env: { PGPASSWORD: PG_PASSWORD, PGCONNECT_TIMEOUT: '90' },
    timeoutMs: 120000,
  });
}

export function pgbench(g: Guest, args: string[]): Promise<RunResult> {
  return g.exec([`${PG_BIN}/pgbench`, '-h', '127.0.0.1', '-p', '5432', '-U', 'postgres', ...args, 'postgres'], {
    env: { PGPASSWORD: PG_PASSWORD, PGCONNECT_TIMEOUT: '30' },
    timeoutMs: 180000,
  });
}

export interface LogLine {
  msg: string;
  fields: Record<string, string>;
}

/**
 * nsproxy's journal lines (with JOURNAL_STREAM it writes `msg key=value key="a b"`) parsed;
 * other lines of the unit's journal (systemd's own) come back with no fields.
 */
export function parseLog(lines: string[]): LogLine[] {
  return lines.map((l) => {
    const m = /^(.*?)(?:\s+([A-Za-z][\w.]*=.*))?$/.exec(l);
    const fields: Record<string, string> = {};
    const re = /([A-Za-z][\w.]*)=("(?:[^"\\]|\\.)*"|\S*)/g;
    let f: RegExpExecArray | null;
    while ((f = re.exec(m?.[2] ?? '')) !== null) fields[f[1]] = f[2].startsWith('"') ? (JSON.parse(f[2]) as string) : f[2];
    return { msg: (m?.[1] ?? l).trim(), fields };
  });
}

/**
 * A unit's parsed journal once `pred` holds for it (journald takes a moment to store what a
 * service wrote); after timeoutMs, the journal as it is, for the assertion to show.
 */
export async function journalWhen(g: Guest, unit: string, user: boolean, pred: (lines: LogLine[]) => boolean, timeoutMs = 30000): Promise<LogLine[]> {
  const t0 = Date.now();
  for (;;) {
    const lines = parseLog(await g.journal(unit, user));
    if (pred(lines) || Date.now() - t0 > timeoutMs) return lines;
    await sleep(250);
  }
}

export function count(lines: LogLine[], msg: string): number {
  return lines.filter((l) => l.msg === msg).length;
}
