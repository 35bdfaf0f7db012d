// A real client and server: PostgreSQL (the host's binaries, bind-mounted) in a
// --network=none podman container, nsproxy --container in front of it, and
// pgbench -i then pgbench -S -c4 -j2 -T5 through nsproxy's host port. Zero errors
// and a positive TPS are required; the TPS figures are reported, not asserted.
import t from 'tap';
import { startNsproxy } from './helpers/nsproxy';
import { assertCleanStop, assertRunning, requireProduct } from './helpers/checks';
import { podmanEnv, requirePodman } from './helpers/podman';
import { assertPgbenchClean, parsePgbench, pgbench, requirePostgres, startPostgresContainer } from './helpers/postgres';

t.test('pgbench through nsproxy --container into PostgreSQL', async (t) => {
  if (!requireProduct(t)) return;
  if (!(await requirePodman(t))) return;
  if (!requirePostgres(t)) return;
  const pg = await startPostgresContainer(t);
  t.comment(`PostgreSQL ${pg.version} in container ${pg.name} (pid ${pg.pid}), --network=none`);

  const px = await startNsproxy(t, ['--container', pg.name, '--to', `127.0.0.1:${pg.port}`, '--listen', '127.0.0.1:0'], { env: podmanEnv() });
  const port = px.listening[0].port;

  const init = await pgbench(pg.bin, '127.0.0.1', port, ['-i', '-s', '1']);
  t.equal(init.code, 0, 'pgbench -i through nsproxy', { output: init.stdout + init.stderr });
  t.match(init.stderr + init.stdout, /done in/, 'pgbench -i finished');

  const run = await pgbench(pg.bin, '127.0.0.1', port, ['-c4', '-j2', '-T5', '-S']);
  const s = assertPgbenchClean(t, run, 'pgbench -c4 -j2 -T5 -S');
  t.ok((s.tps ?? 0) > 0, `TPS > 0`, { output: run.stdout + run.stderr });
  t.comment(`pgbench -S -c4 -j2 -T5 through nsproxy: ${s.tps} TPS (${s.processed} transactions)`);

  // the same, directly inside the netns, for comparison (reported only)
  const direct = parsePgbench(await pgbench(pg.bin, '127.0.0.1', pg.port, ['-c4', '-j2', '-T5', '-S'], { wrapper: ['nsenter', '-t', String(pg.pid), '-n'] }));
  t.comment(`pgbench -S -c4 -j2 -T5 directly (nsenter -n): ${direct.tps} TPS`);

  assertRunning(t, px);
  t.same(px.logs.filter((l) => l.level >= 40), [], 'no warnings or errors from nsproxy');
  await assertCleanStop(t, px);
});
