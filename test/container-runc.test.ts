// --container ID --runtime runc: a runc bundle (busybox rootfs, the fixture server
// with the host's node bind-mounted), resolved with `runc state ID`; with runc's
// default state dir and with --runc-root DIR.
import t from 'tap';
import * as fs from 'node:fs';
import { startNsproxy } from './helpers/nsproxy';
import { hashRoundTrip } from './helpers/client';
import { randomSeed } from './helpers/payload';
import { assertCleanStop, assertHashOk, requireProduct } from './helpers/checks';
import { requireRunc, runcServerContainer } from './helpers/runc';

const MiB = 1024 * 1024;
const TO = '127.0.0.1:8080';

t.test('--container ID --runtime runc: hash round trips', async (t) => {
  if (!requireProduct(t)) return;
  if (!(await requireRunc(t))) return;
  const c = await runcServerContainer(t, 'multi', [TO]);
  const px = await startNsproxy(t, ['--container', c.id, '--runtime', 'runc', '--to', TO, '--listen', '127.0.0.1:0']);
  const r0 = await px.ready();
  t.equal(r0.to, TO, 'ready names the target address');
  t.comment(`ready: target=${JSON.stringify(r0.target)} pid=${JSON.stringify(r0.pid)} (runc state pid ${c.pid})`);
  const port = px.listening[0].port;
  const r = await hashRoundTrip(port, '127.0.0.1', MiB, randomSeed('runc-'), { preamble: 'hash\n' });
  assertHashOk(t, r, '1 MiB each way');
  const r2 = await hashRoundTrip(port, '127.0.0.1', 2 * MiB + 3, randomSeed('runc-'), { preamble: 'hash\n', upBytes: 777 });
  assertHashOk(t, r2, 'asymmetric sizes');
  await assertCleanStop(t, px);
});

t.test('--runtime runc --runc-root DIR', async (t) => {
  if (!requireProduct(t)) return;
  if (!(await requireRunc(t))) return;
  const root = fs.mkdtempSync('/tmp/nsproxy-runc-root-');
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const c = await runcServerContainer(t, 'hash', [TO], { root });
  const px = await startNsproxy(t, ['--container', c.id, '--runtime', 'runc', '--runc-root', root, '--to', TO, '--listen', '127.0.0.1:0']);
  const r = await hashRoundTrip(px.listening[0].port, '127.0.0.1', MiB, randomSeed('runc-root-'));
  assertHashOk(t, r);
  await assertCleanStop(t, px);
});
