// Sockmap groundwork (issue 9), part 2: the rules found in part 1, under stress, through the probe's
// proxy between two network namespaces, every byte checked (SHA-256 and exact compare). The naive
// variants run too, to show the checks catch what the rules prevent (native/SOCKMAP.md).
import t from 'tap';
import { proxyStats, setUpProbe, type Probe } from './helpers/sockmap-probe';

let probe: Probe;

t.before(async () => {
  probe = await setUpProbe(t);
});

t.test('(a) handover: bytes race the insertion, nothing stuck or reordered', async (t) => {
  const r = await probe.run('handover', ['--conns', '1000', '--delay-max-us', '300']);
  t.equal(r.pass, true, `1000 connections intact both ways (${r.first_problem})`, r);
  const bare = await probe.run('handover', ['--conns', '100', '--delay-max-us', '300', '--no-poke', '--timeout-ms', '500']);
  t.ok(Number(bare.stuck) > 0, `without the poke, ${bare.stuck} of 100 get stuck (the check catches it)`);
});

t.test('(b) FIN: data then FIN at once both ways, 500 connections', async (t) => {
  const r = await probe.run('fin', ['--conns', '500', '--concurrency', '32']);
  t.equal(r.pass, true, `all intact (${r.first_problem})`, r);
  const s = proxyStats(r);
  t.equal(s.fallbacks, 0, 'every connection went through sockmap');
  t.comment(`FINs that had to wait for the psock: ${s.fin_waited}, largest backlog ${s.fin_max_pending} bytes`);
  const naive = await probe.run('fin', ['--conns', '500', '--concurrency', '32', '--naive']);
  t.comment(`naive shutdown(peer) on EPOLLRDHUP: ${naive.ok} intact, ${naive.corrupt} truncated, ${naive.error} errors (recorded)`);
});

t.test('(d) migration to user space in mid-stream', async (t) => {
  const r = await probe.run('migrate', ['--mode', 'pause', '--conns', '150', '--max-bytes', '2000000', '--after-max-us', '20000'], 200000);
  t.equal(r.pass, true, `Pause, drain, recv/send: 150 connections intact (${r.first_problem})`, r);
  // A connection whose stream ends before its random migration time is not migrated (on a busy
  // machine, a few): most must be.
  t.ok(Number(proxyStats(r).migrations) >= 100, `${proxyStats(r).migrations} of 150 migrated mid-stream`);
  const stop = await probe.run('migrate', ['--mode', 'stop', '--conns', '150', '--max-bytes', '2000000', '--after-max-us', '20000'], 200000);
  t.equal(stop.pass, true, `Stop, drain, Remove, splice: 150 connections intact (${stop.first_problem})`, stop);
  const flap = await probe.run('flap', ['--seconds', '15', '--map-max-us', '300', '--rate-mbps', '300'], 120000);
  t.equal(flap.pass, true, `one stream moved to user space and back ${flap.round_trips_to_user_space} times (Stop/Resume): intact both ways, or a loss Stop() reported that is exactly the far end's one gap (${flap.up_how}${flap.down_how}${flap.problem})`, flap);
  t.comment(`guarded detaches: ${JSON.stringify(flap.loss_reported)} bytes reported lost`);
  // Without the guard the race drops bytes within a few hundred detaches here: each loss must be
  // reported, to the byte (the probe ends the stream at the first report and checks the far end).
  const bare = await probe.run('flap', ['--seconds', '8', '--map-max-us', '300', '--rate-mbps', '300', '--bare-stop'], 60000);
  t.equal(bare.pass, true, `unguarded detaches: every byte the kernel dropped was reported (${JSON.stringify(bare.loss_reported)} reported; far ends: ${bare.up_how || 'intact'} / ${bare.down_how || 'intact'}${bare.problem})`, bare);
  const unsafe = await probe.run('migrate', ['--mode', 'unsafe', '--conns', '150', '--max-bytes', '4000000', '--after-max-us', '20000'], 200000);
  // How many break depends on the backlog at the Remove(), hence on the machine's load: recorded
  // only (sockmap-kernel's remove_with_queued_bytes_loses_them shows the loss deterministically).
  t.comment(`Remove() then splice broke ${Number(unsafe.corrupt) + Number(unsafe.stuck) + Number(unsafe.error)} of 150`);
});
