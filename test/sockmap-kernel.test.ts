// Sockmap groundwork (issue 9), part 1: what the kernel does at each edge of a sockmap connection,
// on real sockets in two network namespaces (native/test/sockmap_probe, native/SOCKMAP.md).
// These assert kernel facts the engine design relies on: if a kernel changes one, this fails.
import t from 'tap';
import * as os from 'node:os';
import { setUpProbe, type Probe } from './helpers/sockmap-probe';

let probe: Probe;

t.before(async () => {
  probe = await setUpProbe(t);
});

t.test('sockmap is available to root here', async (t) => {
  const a = await probe.available();
  t.equal(a.available, true, `available (${a.reason})`);
});

t.test('facts: keys, handover, FIN, epoll/FIONREAD, removal', async (t) => {
  const r = await probe.run('facts');
  t.equal(r.pass, true, 'every fact held', r);
  t.equal(r.cookies_distinct_across_namespaces, true, 'socket cookies are unique across namespaces: keys cannot collide');
  t.equal(r.no_poke_bytes_stall, true, 'bytes that arrived before insertion wait for the next segment');
  t.equal(r.poke_delivers_early_bytes_up, true, 'the poke after insertion sends them');
  t.equal(r.insert_after_fin_refused_eopnotsupp, true, 'a socket that received a FIN cannot join (EOPNOTSUPP): splice it');
  t.equal(r.redirected_fin_breaks_peer, true, 'redirecting a bare FIN sets EPIPE on the peer');
  t.equal(r.passed_fin_behind_queued_bytes_breaks_source, true, 'passing it breaks the source when its psock queues bytes');
  t.equal(r.dropped_fin_behind_queued_bytes_source_ok, true, 'dropping it (the production program) breaks nothing');
  t.equal(r.epollin_waiter_woken_for_nothing, true, `EPOLLIN waiters are woken though nothing is readable (${r.epollin_waiter_wakeups_per_message} wake-ups/message)`);
  t.equal(r.epollrdhup_waiter_sleeps_while_data_flows, true, 'an EPOLLRDHUP-only waiter sleeps while data flows');
  t.equal(r.fionread_zero_while_redirecting, true, 'FIONREAD says 0 while the program redirects');
  t.equal(r.remove_with_queued_bytes_loses_them, true, `Remove() with bytes queued loses them (${r.remove_lost} bytes)`);
});

t.test('resets: what the other side sees', async (t) => {
  const r = await probe.run('resets');
  t.equal(r.pass, true, 'every expectation held', r);
  t.equal(r.server_resets_drain_victim_got_everything, true, 'draining the psock before the RST delivers every byte');
  t.ok(Number(r.server_resets_now_victim_received) < Number(r.server_resets_now_redirected_before_reset), 'resetting at once loses what the psock held');
});

t.test('backpressure: a receiver that does not read, 1 GiB offered', async (t) => {
  const freeGiB = os.freemem() / 2 ** 30;
  if (freeGiB < 4) {
    t.comment(`only ${freeGiB.toFixed(1)} GiB free: the sockmap run would hold 1 GiB in the kernel; skipped`);
    return;
  }
  const sockmap = await probe.run('backpressure', ['--engine', 'sockmap', '--bytes', String(2 ** 30), '--seconds', '40'], 180000);
  t.equal(sockmap.intact, true, 'sockmap: every byte arrives once the receiver reads');
  t.ok(Number(sockmap.max_pending_mib) > 512, `sockmap: no backpressure, the psock holds ${sockmap.max_pending_mib} MiB`);
  const migrated = await probe.run('backpressure', ['--engine', 'sockmap', '--migrate-above', String(4 << 20), '--bytes', String(2 ** 30), '--seconds', '40'], 180000);
  t.equal(migrated.intact, true, 'sockmap, moved to splice above 4 MiB of backlog: intact');
  t.ok(Number(migrated.sent_mib) < 96, `sockmap, moved to splice above 4 MiB: the sender blocks after ${migrated.sent_mib} MiB`);
  const splice = await probe.run('backpressure', ['--engine', 'splice', '--bytes', String(2 ** 30), '--seconds', '40'], 180000);
  t.equal(splice.intact, true, 'splice: intact');
  t.ok(Number(splice.sent_mib) < 64, `splice: the sender blocks after ${splice.sent_mib} MiB`);
});
