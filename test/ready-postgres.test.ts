// Readiness that knows the service, with real PostgreSQL in podman: `podman restart` while
// clients keep connecting through nsproxy. PostgreSQL opens its port before it serves; a
// client let through in between gets "FATAL: the database system is starting up".
//   - control: nsproxy with the plain TCP probe. The window is there, and clients hit it
//     (the numbers are reported; at least one such error is required, so that the detector is
//     known to work on this machine);
//   - nsproxy --ready-exec 'pg_isready -h 127.0.0.1 -p 5432' (run inside the container as its
//     user): no "starting up" error at all, in a pgbench -C run and in a loop of session
//     starts, and the new session starts after the restart all succeed.
// Each restart is a crash (podman restart -t 0: SIGKILL, then crash recovery, which is what
// makes the window wide) under a write load, so PostgreSQL has WAL to replay.
import t from 'tap';
import * as path from 'node:path';
import { spawnNsproxy, type Nsproxy } from './helpers/nsproxy';
import { assertRunning, requireProduct } from './helpers/checks';
import { podmanEnv, podmanOk, requirePodman, sleep } from './helpers/podman';
import { assertPgbenchClean, parsePgbench, pgbench, requirePostgres, startPostgresContainer, type PgContainer } from './helpers/postgres';
import type { RunResult } from './helpers/procs';
import { sessionLoops, tally, type SessionResult } from './helpers/pg-connect';

// PostgreSQL 15 says "starting up" before recovery and "not yet accepting connections" during it.
const STARTING = /the database system is (starting up|not yet accepting connections)/;

interface Round {
  sessions: SessionResult[];
  /** session starts begun after nsproxy saw the container exit (and paused) */
  afterExit: SessionResult[];
  /** when nsproxy logged "target exited" and "target restarted" */
  exitedAt: number;
  restartedAt: number;
  bench: RunResult;
  benchStarting: number;
}

/**
 * Session-start loops throughout; a crash restart (podman restart -t 0: SIGKILL, then crash
 * recovery); a pgbench -C run (a new connection per transaction) begun while the container is
 * down, so that all its connections meet PostgreSQL's start-up.
 */
async function restartUnderLoad(t: tap.Test, pg: PgContainer, px: Nsproxy, port: number): Promise<Round> {
  const exitedBefore = px.logs.filter((l) => l.msg === 'target exited').length;
  const restartedBefore = px.logs.filter((l) => l.msg === 'target restarted').length;
  const loops = sessionLoops('127.0.0.1', port, 6);
  await sleep(2000);
  const restart = podmanOk(['restart', '-t', '0', pg.name]);
  const exited = await px.waitForLog(() => px.logs.filter((l) => l.msg === 'target exited').length > exitedBefore, 60000, '"target exited"');
  const exitedAt = Date.parse(exited.time as string);
  const bench = pgbench(pg.bin, '127.0.0.1', port, ['-C', '-c4', '-j2', '-T6', '-n'], { timeoutMs: 90000 });
  await restart;
  await px.waitForLog(() => px.logs.filter((l) => l.msg === 'target restarted').length > restartedBefore, 60000, '"target restarted"');
  const restartedAt = Date.parse(String(px.logs.filter((l) => l.msg === 'target restarted').pop()?.time));
  await sleep(3000);
  const sessions = await loops.stop();
  const run = await bench;
  const output = run.stdout + run.stderr;
  t.comment(`session starts: ${JSON.stringify(tally(sessions))}`);
  return {
    sessions,
    // +100 ms: until nsproxy's engine has actually paused (it learns of the exit through the
    // pidfd, logs, then pauses), a client accepted meanwhile goes to the dead namespace
    afterExit: sessions.filter((r) => r.startedAt > exitedAt + 100),
    exitedAt,
    restartedAt,
    bench: run,
    benchStarting: output.split('\n').filter((l) => STARTING.test(l)).length,
  };
}

async function setUp(t: tap.Test, extra: string[]): Promise<{ pg: PgContainer; px: Nsproxy; port: number } | null> {
  if (!requireProduct(t) || !(await requirePodman(t)) || !requirePostgres(t)) return null;
  // checkpoints far apart: after the crash there is WAL to replay (crash recovery)
  const pg = await startPostgresContainer(t, { settings: ['checkpoint_timeout=3600', 'max_wal_size=4GB'] });
  const px = spawnNsproxy(t, ['--container', pg.name, '--to', `127.0.0.1:${pg.port}`, '--listen', '127.0.0.1:0', ...extra], { env: podmanEnv() });
  await px.ready();
  const port = px.listening[0]?.port as number;
  const init = await pgbench(pg.bin, '127.0.0.1', port, ['-i', '-s', '4']);
  t.equal(init.code, 0, 'pgbench -i through nsproxy', { output: init.stdout + init.stderr });
  return { pg, px, port };
}

t.test('control: the TCP probe lets clients in while PostgreSQL is starting up', async (t) => {
  const s = await setUp(t, []);
  if (!s) return;
  // How wide the window is depends on how long crash recovery takes, which varies with the
  // machine and its disk cache: up to three crashes, until clients hit it.
  let hits = 0;
  for (let attempt = 1; attempt <= 3 && hits === 0; attempt++) {
    const round = await restartUnderLoad(t, s.pg, s.px, s.port);
    const starting = round.sessions.filter((r) => STARTING.test(r.error ?? '')).length;
    const failed = parsePgbench(round.bench);
    t.comment(`TCP probe, crash ${attempt}: ${starting} of ${round.sessions.length} session starts (${round.afterExit.length} begun after the crash) were refused as starting up; the pgbench -C run begun during the restart printed ${round.benchStarting} such errors, exit ${round.bench.code}, ${failed.processed} transactions`);
    hits = starting + round.benchStarting;
  }
  t.ok(hits > 0, 'the window exists and clients hit it: the detector works here');
  assertRunning(t, s.px);
});

t.test('--ready-exec pg_isready: no "starting up" error across a crash restart', async (t) => {
  const pg = path.join('/usr/lib/postgresql', '15', 'bin', 'pg_isready');
  const s = await setUp(t, ['--ready-exec', `${pg} -q -h 127.0.0.1 -p 5432`]);
  if (!s) return;
  const round = await restartUnderLoad(t, s.pg, s.px, s.port);
  const starting = round.sessions.filter((r) => STARTING.test(r.error ?? ''));
  t.comment(`--ready-exec: ${starting.length} of ${round.sessions.length} session starts (${round.afterExit.length} begun after the crash) were refused as starting up; the pgbench -C run begun during the restart printed ${round.benchStarting} such errors`);
  t.equal(starting.length, 0, 'no session start was refused as starting up', { tally: tally(round.sessions) });
  t.ok(round.afterExit.length > 0, `session starts were attempted while the container was down (${round.afterExit.length})`);
  const failed = round.afterExit.filter((r) => !r.ok).map((r) => ({ error: r.error, startedMs: r.startedAt - round.exitedAt, endedMs: r.endedAt - round.exitedAt }));
  t.same(failed, [], 'every session start begun after the crash succeeded (it waited in the backlog)', { restartedMs: round.restartedAt - round.exitedAt });
  t.equal(round.benchStarting, 0, 'pgbench printed no starting-up error');
  const bench = assertPgbenchClean(t, round.bench, 'pgbench -C -c4 -j2 -T6 begun during the restart');
  t.comment(`pgbench -C begun during the restart: ${bench.processed} transactions, ${bench.tps} TPS`);
  // Whether nsproxy had to wait for it depends on how fast PostgreSQL recovers; that it ran after
  // the restart does not: each "target ready" names the checks that passed.
  const ready = s.px.logs.filter((l) => l.msg === 'target ready');
  t.ok(ready.length >= 2 && ready.every((l) => Array.isArray(l.checks) && (l.checks as string[]).includes('exec')), `--ready-exec was among the checks at start and after the restart (${ready.length} "target ready" lines)`);
  const exec = s.px.logs.filter((l) => l.msg === 'waiting for target' && l.check === 'exec');
  t.comment(`nsproxy logged "waiting for target" for --ready-exec ${exec.length} times (at most one a second)`);
  assertRunning(t, s.px);
});
