// PostgreSQL inside a podman container with no registry: the host's PostgreSQL
// binaries, libraries and share files bind-mounted read-only into the busybox
// image, running as the image's postgres user (uid 70) on a data directory that is
// a temp dir bind-mounted from the host. `initdb` then `exec postgres` in one
// container (PID 1 = postgres), listening on 127.0.0.1 only, fsync off.
// pgbench runs on the host: through nsproxy, or directly with `nsenter -t PID -n`.
import type {} from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { childEnv, type TestLike } from './env';
import { runCommand, type RunResult } from './procs';
import { PG_GID, PG_UID, libraryDirs } from './rootfs';
import { runContainer, sleep, waitForListenIn, type Container } from './podman';

const PG_ROOT = '/usr/lib/postgresql';

/** The bin dir of the host's PostgreSQL (15 preferred, else the newest), or what is missing. */
export function findPostgres(): { bin: string; version: string } | { problem: string } {
  let versions: string[] = [];
  try {
    versions = fs.readdirSync(PG_ROOT).filter((v) => fs.existsSync(path.join(PG_ROOT, v, 'bin', 'postgres')));
  } catch {
    /* none */
  }
  if (versions.length === 0) {
    return { problem: `no PostgreSQL server binaries under ${PG_ROOT}/*/bin; apt-get install postgresql-15 (or postgresql)` };
  }
  const v = versions.includes('15') ? '15' : versions.sort((a, b) => Number(b) - Number(a))[0];
  const bin = path.join(PG_ROOT, v, 'bin');
  for (const b of ['initdb', 'pgbench', 'pg_isready']) {
    if (!fs.existsSync(path.join(bin, b))) return { problem: `${path.join(bin, b)} is missing` };
  }
  return { bin, version: v };
}

/** Fails the test (never skips) when the host has no PostgreSQL binaries to mount. */
export function requirePostgres(t: tap.Test): boolean {
  const pg = findPostgres();
  if (!('problem' in pg)) return true;
  t.fail(`PostgreSQL is not usable: ${pg.problem}`);
  return false;
}

export interface PgContainer extends Container {
  port: number;
  /** host bin dir of the same PostgreSQL (pgbench, pg_isready) */
  bin: string;
  version: string;
}

const DATA = '/var/lib/postgresql/data';

/**
 * Starts PostgreSQL in a `--network=none` container and waits until it accepts
 * queries (pg_isready from inside its netns). Container and data dir are removed
 * in teardown.
 */
export async function startPostgresContainer(
  t: TestLike,
  opts: { name?: string; port?: number; network?: string; podmanArgs?: string[]; settings?: string[] } = {},
): Promise<PgContainer> {
  const pg = findPostgres();
  if ('problem' in pg) throw new Error(pg.problem);
  const port = opts.port ?? 5432;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsproxy-pg-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const data = path.join(tmp, 'data');
  fs.mkdirSync(data, { mode: 0o700 });
  fs.chownSync(data, PG_UID, PG_GID);
  fs.chmodSync(tmp, 0o755);

  const mounts: string[] = [];
  for (const d of libraryDirs([path.join(pg.bin, 'postgres'), path.join(pg.bin, 'initdb')])) mounts.push('-v', `${d}:${d}:ro`);
  for (const d of [PG_ROOT, '/usr/share/postgresql', '/usr/share/zoneinfo']) {
    if (fs.existsSync(d)) mounts.push('-v', `${d}:${d}:ro`);
  }
  mounts.push('-v', `${data}:${DATA}`);

  const b = pg.bin;
  const script =
    `[ -f ${DATA}/PG_VERSION ] || ${b}/initdb -D ${DATA} -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null || exit 1; ` +
    `exec ${b}/postgres -D ${DATA} -c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories= ` +
    '-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100' +
    (opts.settings ?? []).map((setting) => ` -c ${setting}`).join('');
  const c = await runContainer(t, {
    name: opts.name,
    network: opts.network,
    args: ['--user', `${PG_UID}:${PG_GID}`, '--shm-size', '256m', ...mounts, ...(opts.podmanArgs ?? [])],
    cmd: ['sh', '-c', script],
  });
  await waitForListenIn(c.pid, port, 60000, `postgres in ${c.name}`);
  await waitForPgReady(pg.bin, c.pid, port, 30000);
  return { ...c, port, bin: pg.bin, version: pg.version };
}

/** `nsenter -t PID -n CMD...`: a host program inside the container's netns only. */
export function inNetns(pid: number, cmd: string, args: string[], timeoutMs = 60000): Promise<RunResult> {
  return runCommand('nsenter', ['-t', String(pid), '-n', cmd, ...args], { timeoutMs });
}

/** Polls pg_isready on 127.0.0.1:port inside the netns of pid. */
export async function waitForPgReady(bin: string, pid: number, port: number, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  let last: RunResult | null = null;
  while (Date.now() - t0 < timeoutMs) {
    last = await inNetns(pid, path.join(bin, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres'], 10000);
    if (last.code === 0) return;
    await sleep(100);
  }
  throw new Error(`PostgreSQL in the netns of pid ${pid} not ready after ${timeoutMs} ms: pg_isready code ${last?.code} ${last?.stdout ?? ''}${last?.stderr ?? ''}`);
}

/** Runs host pgbench against host:port (PGCONNECT_TIMEOUT 10 s); `wrapper` e.g. ['nsenter', '-t', PID, '-n']. */
export function pgbench(bin: string, host: string, port: number, args: string[], opts: { wrapper?: string[]; timeoutMs?: number } = {}): Promise<RunResult> {
  const argv = [...(opts.wrapper ?? []), path.join(bin, 'pgbench'), '-h', host, '-p', String(port), '-U', 'postgres', ...args, 'postgres'];
  return runCommand(argv[0], argv.slice(1), { timeoutMs: opts.timeoutMs ?? 120000, env: childEnv({ PGCONNECT_TIMEOUT: '10' }) });
}

export interface PgbenchSummary {
  processed: number | null;
  /** "number of failed transactions: N" (pgbench >= 15), null when absent */
  failed: number | null;
  tps: number | null;
  /** stderr/stdout lines that look like errors (client aborts, connection failures) */
  errors: string[];
}

/** Parses pgbench's run summary. */
export function parsePgbench(r: RunResult): PgbenchSummary {
  const text = `${r.stdout}\n${r.stderr}`;
  const num = (re: RegExp): number | null => {
    const m = re.exec(text);
    return m ? Number(m[1]) : null;
  };
  const errors = text
    .split('\n')
    .filter((l) => /(error|abort|FATAL|could not|failed)/i.test(l) && !/number of failed transactions: 0 /.test(l));
  return {
    processed: num(/number of transactions actually processed: (\d+)/),
    failed: num(/number of failed transactions: (\d+)/),
    tps: num(/tps = ([\d.]+) \(without initial connection time\)/) ?? num(/tps = ([\d.]+)/),
    errors,
  };
}

/**
 * A pgbench run ended cleanly: exit 0, no failed transaction, no error line, transactions
 * processed. `what` names the run in the assertions. Returns the parsed summary.
 */
export function assertPgbenchClean(t: tap.Test, run: RunResult, what: string): PgbenchSummary {
  const s = parsePgbench(run);
  const output = { output: run.stdout + run.stderr };
  t.equal(run.code, 0, `${what} exits 0`, output);
  t.equal(s.failed, 0, 'number of failed transactions: 0', output);
  t.same(s.errors, [], 'no error lines in the pgbench output', output);
  t.ok((s.processed ?? 0) > 0, `transactions processed: ${s.processed}`, output);
  return s;
}
