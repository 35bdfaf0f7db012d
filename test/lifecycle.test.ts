// The daemon's lifecycle without a container runtime: readiness before accepting, idle exit,
// draining on SIGTERM, a --pid target that exits, --ready-timeout, named routes for named
// systemd sockets, and what systemd is told (STATUS= counters, WATCHDOG=1).
import t from 'tap';

import { spawnActivated } from './helpers/activation';
import { assertCleanStop, assertHashOk, assertOneStderrLine, requireProduct } from './helpers/checks';
import { echoPingPong, freePort, hashRoundTrip, halfCloseRequest } from './helpers/client';
import { childEnv, NODE, SERVER_JS } from './helpers/env';
import { makeNetns, startServerInNetns, startUnshareServer } from './helpers/namespaces';
import { runNsproxy, spawnNsproxy, startNsproxy } from './helpers/nsproxy';
import { randomSeed } from './helpers/payload';
import { Proc, waitForStdoutLine } from './helpers/procs';
import { notifyReceiver, datagrams } from './helpers/notify';

t.test('readiness: a client that connects before the service listens waits, and gets its answer', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  const port = await freePort();
  const px = spawnNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', `127.0.0.1:${port}`]);
  await px.waitForLog((l) => l.msg === 'waiting for target', 20000);
  // nsproxy listens (the kernel completes handshakes) but does not accept until the target answers
  const answer = halfCloseRequest(port, 'hello', { preamble: 'reply-after-eof\n' });
  const server = new Proc('delayed server', 'ip', ['netns', 'exec', ns, 'sh', '-c', 'sleep 2; exec "$0" "$@"', NODE, SERVER_JS, '--mode', 'multi', '--listen', '127.0.0.1:7000'], { env: childEnv() });
  t.teardown(() => server.stop('SIGTERM', 5000));
  const reply = await answer;
  t.equal(reply.error, null, 'no error: nothing was refused');
  t.equal(reply.data.toString(), 'GOT:hello', 'the early client got its answer');
  const ready = px.logs.find((l) => l.msg === 'target ready');
  t.ok(ready, 'a "target ready" line');
  t.ok(Number(ready?.attempts) > 1, `it took several probes (${String(ready?.attempts)})`);
  await assertCleanStop(t, px);
});

t.test('--ready-timeout: nothing ever listens -> exit 1 naming what was probed where', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  const r = await runNsproxy(['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0', '--ready-timeout', '1500ms'], {}, 20000);
  assertOneStderrLine(t, r, 1);
  t.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:7000 in netns ${ns} did not accept a connection within 1\\.5 s \\(last: connect ECONNREFUSED\\)`));
});

t.test('SIGTERM while waiting for the target: a clean stop (exit 0), not a failure', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  const px = spawnNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0']);
  await px.waitForLog((l) => l.msg === 'waiting for target', 20000);
  px.proc.signal('SIGTERM');
  const exit = await px.proc.exited;
  t.equal(exit.code, 0, 'exit 0');
  t.equal(px.stderr, '', 'nothing on stderr');
  t.match(px.logs.find((l) => l.msg === 'stopped'), { reason: 'signal', signal: 'SIGTERM' }, '"stopped" on SIGTERM');
});

t.test('--exit-idle-time: exits 0 when idle, but never while a connection is open', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'echo', ['127.0.0.1:7000']);
  const px = await startNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0', '--exit-idle-time', '1s']);
  const port = px.listening[0]!.port;
  // hold a connection open for well over the idle time, talking now and then
  const messages = Array.from({ length: 6 }, (_, i) => `ping ${i}\n`);
  const talk = await echoPingPong(port, '127.0.0.1', messages, '', 30000, { gapMs: 400 });
  t.equal(talk.final.error, null, 'the long connection worked');
  t.same(talk.replies, messages, 'every message echoed');
  t.notOk(px.logs.some((l) => l.msg === 'idle, exiting'), 'did not exit while the connection was open');
  const exit = await px.proc.exited;
  t.equal(exit.code, 0, 'exit 0 once idle');
  t.ok(px.logs.some((l) => l.msg === 'idle, exiting'), 'logged "idle, exiting"');
});

t.test('SIGTERM drains: an open connection keeps working until it ends, then exit 0', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'multi', ['127.0.0.1:7000']);
  const px = await startNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0']);
  const port = px.listening[0]!.port;
  const messages = Array.from({ length: 5 }, (_, i) => `during drain ${i}\n`);
  const talk = echoPingPong(port, '127.0.0.1', messages, 'echo\n', 30000, { gapMs: 300 });
  await px.waitForLog((l) => l.msg === 'connection opened' || l.msg === 'ready', 10000);
  await new Promise((resolve) => setTimeout(resolve, 200));
  px.proc.signal('SIGTERM');
  await px.waitForLog((l) => l.msg === 'draining', 10000);
  const result = await talk;
  t.equal(result.final.error, null, 'no error on the draining connection');
  t.same(result.replies, messages, 'all messages echoed during the drain');
  const exit = await px.proc.exited;
  t.equal(exit.code, 0, 'exit 0 after the drain');
  t.match(px.logs.find((l) => l.msg === 'draining'), { active: 1 }, 'draining names the open connection');
});

t.test('--drain-timeout: a connection that never ends is closed at the deadline, exit 0', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'echo', ['127.0.0.1:7000']);
  const px = await startNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0', '--drain-timeout', '1s']);
  const port = px.listening[0]!.port;
  const talk = echoPingPong(port, '127.0.0.1', ['hi\n'], '', 30000, { holdOpen: true });
  await new Promise((resolve) => setTimeout(resolve, 300));
  px.proc.signal('SIGTERM');
  const exit = await px.proc.exited;
  t.equal(exit.code, 0, 'exit 0');
  const result = await talk;
  t.same(result.replies, ['hi\n'], 'the connection worked before the stop');
  t.ok(result.final.eof || result.final.error !== null, 'the client saw its connection end');
  t.equal(result.final.timedOut, false, 'it did not have to time out');
});

t.test('--pid: the target process exits -> nsproxy exits 1 with a clear line', async (t) => {
  if (!requireProduct(t)) return;
  const server = await startUnshareServer(t, 'echo', ['127.0.0.1:7000']);
  const px = await startNsproxy(t, ['--pid', String(server.pid), '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0']);
  await server.stop();
  const exit = await px.proc.exited;
  t.equal(exit.code, 1, 'exit 1');
  t.ok(px.logs.some((l) => l.msg === 'target exited' && l.level === 50), 'error log "target exited"');
  t.match(px.stderr, new RegExp(`^nsproxy: target pid ${server.pid} exited; `), 'one stderr line says so');
});

t.test('named systemd sockets go to their own --to NAME=...', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'hash', ['127.0.0.1:7000']);
  await startServerInNetns(t, ns, 'reply-after-eof', ['127.0.0.1:7001']);
  const [a, b] = [await freePort(), await freePort()];
  const px = await spawnActivated(t, [`127.0.0.1:${a}`, `127.0.0.1:${b}`], ['hash', 'reply'], ['--netns', ns, '--to', 'hash=127.0.0.1:7000', '--to', 'reply=127.0.0.1:7001']);
  const first = hashRoundTrip(a, '127.0.0.1', 256 * 1024, randomSeed('named-'));
  await px.ready();
  assertHashOk(t, await first, 'socket "hash" reached the hash server');
  const reply = await halfCloseRequest(b, 'hello');
  t.equal(reply.data.toString(), 'GOT:hello', 'socket "reply" reached the reply server');
  await assertCleanStop(t, px);
});

t.test('a named socket without a --to for it is a configuration error', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  const port = await freePort();
  const px = await spawnActivated(t, [`127.0.0.1:${port}`], ['db'], ['--netns', ns, '--to', 'web=127.0.0.1:80']);
  const client = hashRoundTrip(port, '127.0.0.1', 1, randomSeed('x')).catch(() => undefined);
  const exit = await px.proc.exited;
  await client;
  t.equal(exit.code, 2, 'exit 2');
  t.match(px.stderr, /socket 'db' \(fd 3\) has no --to; add --to db=ADDR:PORT/);
});

t.test('systemd hears STATUS= with live counters, and WATCHDOG=1', async (t) => {
  if (!requireProduct(t)) return;
  const address = `@nsproxy-status-${process.pid}-${Date.now()}`;
  const receiver = await notifyReceiver(t, address);
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'hash', ['127.0.0.1:7000']);
  const px = await startNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0'], { env: { NOTIFY_SOCKET: address, WATCHDOG_USEC: '200000' } });
  assertHashOk(t, await hashRoundTrip(px.listening[0]!.port, '127.0.0.1', 100_000, randomSeed('st-')));
  await waitForStdoutLine(receiver, (l) => /1 total, 1\d\d\.\d kB in, 1\d\d\.\d kB out/.test(l), 10000, 'a STATUS= with the counters');
  t.ok(datagrams(receiver).some((d) => /^STATUS=forwarding 127\.0\.0\.1:\d+ to 127\.0\.0\.1:7000 in netns \S+; 0 active, 1 total, /.test(d)), 'STATUS= names the route and counts the connection');
  t.ok(datagrams(receiver).filter((d) => d === 'WATCHDOG=1').length >= 2, 'WATCHDOG=1 keeps coming');
  await assertCleanStop(t, px);
});
