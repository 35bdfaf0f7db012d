// --pid: forward into the netns of a process (`unshare -n`, like a container's
// /proc/PID/ns/net), checked with SHA-256 both ways and an interactive echo.
import t from 'tap';
import * as crypto from 'node:crypto';
import { startUnshareServer } from './helpers/namespaces';
import { startNsproxy } from './helpers/nsproxy';
import { echoPingPong, freePort, halfCloseRequest, hashRoundTrip } from './helpers/client';
import { randomSeed } from './helpers/payload';
import { assertCleanStop, assertHashOk, requireProduct } from './helpers/checks';

const MiB = 1024 * 1024;
const TARGET_PORT = 5432; // inside a fresh namespace every port is free

t.test('--pid of an unshare -n process, --listen 127.0.0.1:0', async (t) => {
  if (!requireProduct(t)) return;
  const server = await startUnshareServer(t, 'multi', [`127.0.0.1:${TARGET_PORT}`]);
  const px = await startNsproxy(t, ['--pid', String(server.pid), '--to', `127.0.0.1:${TARGET_PORT}`, '--listen', '127.0.0.1:0']);

  const listening = px.listening;
  t.equal(listening.length, 1, 'one listening line');
  const l = listening[0];
  t.equal(l.host, '127.0.0.1', 'listening on 127.0.0.1');
  t.ok(Number.isInteger(l.port) && l.port > 0, `port 0 became the kernel's choice (${l.address})`);
  t.equal(l.source, 'listen', 'source is listen');
  const ready = await px.ready();
  t.equal(ready.level, 30, 'ready is an info line');
  t.equal(ready.to, `127.0.0.1:${TARGET_PORT}`, 'ready names the target');

  await t.test('hash round trip, 1 MiB each way', async (t) => {
    const r = await hashRoundTrip(l.port, '127.0.0.1', MiB, randomSeed('pid-'), { preamble: 'hash\n' });
    assertHashOk(t, r);
  });

  await t.test('hash round trip, asymmetric sizes', async (t) => {
    const r = await hashRoundTrip(l.port, '127.0.0.1', 3 * MiB + 7, randomSeed('pid-'), { preamble: 'hash\n', upBytes: 12345 });
    assertHashOk(t, r);
    const r0 = await hashRoundTrip(l.port, '127.0.0.1', 0, randomSeed('pid-'), { preamble: 'hash\n', upBytes: 0 });
    assertHashOk(t, r0, 'empty round trip');
  });

  await t.test('echo: interactive ping-pong, then half-close', async (t) => {
    const msgs = ['ping\n', 'pong\n', 'x'.repeat(100000), 'last\n'];
    const r = await echoPingPong(l.port, '127.0.0.1', msgs, 'echo\n');
    t.same(r.replies, msgs, 'every message came back before the next was sent');
    t.equal(r.final.error, null, 'no socket error');
    t.equal(r.final.eof, true, 'the server ended after our half-close');
    t.equal(r.final.data.length, 0, 'nothing extra');
  });

  await t.test('echo: 4 MiB bulk, half-close, all of it comes back', async (t) => {
    const payload = crypto.randomBytes(4 * MiB);
    const r = await halfCloseRequest(l.port, payload, { preamble: 'echo\n' });
    t.equal(r.error, null, 'no socket error');
    t.equal(r.eof, true, 'EOF after the echo');
    t.equal(r.data.length, payload.length, 'same length');
    t.ok(r.data.equals(payload), 'same bytes');
  });

  await assertCleanStop(t, px);
});

t.test('--pid without --listen listens on 127.0.0.1:<port of --to>', async (t) => {
  if (!requireProduct(t)) return;
  const port = await freePort(); // free on the host, and free in the fresh namespace
  const server = await startUnshareServer(t, 'hash', [`127.0.0.1:${port}`]);
  const px = await startNsproxy(t, ['--pid', String(server.pid), '--to', `127.0.0.1:${port}`]);
  t.same(
    px.listening.map((x) => x.address),
    [`127.0.0.1:${port}`],
    'the default listener',
  );
  const r = await hashRoundTrip(port, '127.0.0.1', 256 * 1024, randomSeed('pid-default-'));
  assertHashOk(t, r);
  await assertCleanStop(t, px);
});

t.test('--log-level debug: "connection closed" counts the bytes', async (t) => {
  if (!requireProduct(t)) return;
  const server = await startUnshareServer(t, 'hash', [`127.0.0.1:${TARGET_PORT}`]);
  const px = await startNsproxy(t, [
    '--pid', String(server.pid), '--to', `127.0.0.1:${TARGET_PORT}`, '--listen', '127.0.0.1:0', '--log-level', 'debug',
  ]);
  const port = px.listening[0].port;
  const seed = randomSeed('pid-debug-');
  const down = 300000;
  const up = 200001;
  const r = await hashRoundTrip(port, '127.0.0.1', down, seed, { upBytes: up });
  assertHashOk(t, r);
  const closed = await px.waitForLog((x) => x.msg === 'connection closed', 30000, '"connection closed"');
  t.equal(closed.level, 20, 'a debug line');
  const clientToServer = Buffer.byteLength(`${seed} ${down}\n`) + up;
  const serverToClient = down + Buffer.byteLength(r.trailer);
  t.same(
    [closed.bytesIn, closed.bytesOut].sort(),
    [clientToServer, serverToClient].sort(),
    'the byte counts are those of the two directions',
  );
  // the contract does not define the orientation; we read it from the listener's
  // side, like a server's access log: bytesIn = from the client, bytesOut = to it
  t.same(
    { bytesIn: closed.bytesIn, bytesOut: closed.bytesOut },
    { bytesIn: clientToServer, bytesOut: serverToClient },
    'bytesIn = client -> target, bytesOut = target -> client',
  );
  t.type(closed.durationMs, 'number', 'durationMs');
  await assertCleanStop(t, px);
});
