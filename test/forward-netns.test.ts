// --netns NAME and --netns /run/netns/NAME (an `ip netns add` namespace), IPv4 and IPv6.
import t from 'tap';
import { makeNetns, startServerInNetns } from './helpers/namespaces';
import { startNsproxy } from './helpers/nsproxy';
import { freePort, hashRoundTrip } from './helpers/client';
import { randomSeed } from './helpers/payload';
import { assertCleanStop, assertHashOk, requireProduct } from './helpers/checks';

const MiB = 1024 * 1024;
const TARGET_PORT = 5432;

t.test('--netns NAME', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'hash', [`127.0.0.1:${TARGET_PORT}`]);
  const px = await startNsproxy(t, ['--netns', ns, '--to', `127.0.0.1:${TARGET_PORT}`, '--listen', '127.0.0.1:0']);
  t.equal(px.listening.length, 1, 'one listener');
  const ready = await px.ready();
  t.equal(ready.to, `127.0.0.1:${TARGET_PORT}`, 'ready names the target');
  const r = await hashRoundTrip(px.listening[0].port, '127.0.0.1', MiB, randomSeed('netns-name-'));
  assertHashOk(t, r);
  await assertCleanStop(t, px);
});

t.test('--netns /run/netns/NAME, --listen PORT (= 127.0.0.1:PORT)', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'hash', [`127.0.0.1:${TARGET_PORT}`]);
  const hostPort = await freePort();
  const px = await startNsproxy(t, ['--netns', `/run/netns/${ns}`, '--to', `127.0.0.1:${TARGET_PORT}`, '--listen', String(hostPort)]);
  t.same(px.listening.map((l) => l.address), [`127.0.0.1:${hostPort}`], 'PORT alone means 127.0.0.1:PORT');
  const r = await hashRoundTrip(hostPort, '127.0.0.1', MiB, randomSeed('netns-path-'));
  assertHashOk(t, r);
  await assertCleanStop(t, px);
});

t.test('IPv6: server on [::1] inside, --to [::1]:PORT, --listen [::1]:0', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'hash', [`[::1]:${TARGET_PORT}`]);
  const px = await startNsproxy(t, ['--netns', ns, '--to', `[::1]:${TARGET_PORT}`, '--listen', '[::1]:0']);
  t.equal(px.listening.length, 1, 'one listener');
  const l = px.listening[0];
  t.equal(l.host, '::1', `listening on [::1] (${l.address})`);
  t.match(l.address, /^\[::1\]:\d+$/, 'the address is logged with brackets');
  t.ok(l.port > 0, 'a real port');
  const ready = await px.ready();
  t.equal(ready.to, `[::1]:${TARGET_PORT}`, 'ready names the IPv6 target with brackets');
  const r = await hashRoundTrip(l.port, '::1', MiB, randomSeed('netns-v6-'));
  assertHashOk(t, r);
  await assertCleanStop(t, px);
});

t.test('two --listen (IPv4 and IPv6) forward to the same target', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'hash', [`127.0.0.1:${TARGET_PORT}`]);
  const px = await startNsproxy(t, [
    '--netns', ns, '--to', `127.0.0.1:${TARGET_PORT}`, '--listen', '127.0.0.1:0', '--listen', '[::1]:0',
  ]);
  const hosts = px.listening.map((l) => l.host).sort();
  t.same(hosts, ['127.0.0.1', '::1'], 'both listeners');
  for (const l of px.listening) {
    t.equal(l.source, 'listen', `${l.address}: source listen`);
    const r = await hashRoundTrip(l.port, l.host, 512 * 1024, randomSeed('netns-two-'));
    assertHashOk(t, r, `via ${l.address}`);
  }
  await assertCleanStop(t, px);
});
