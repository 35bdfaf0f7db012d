// --threads 2: two engine threads share the listener (EPOLLEXCLUSIVE), each inside the target
// netns; many concurrent connections are spread over them and every byte still arrives.
import t from 'tap';

import { assertCleanStop, assertHashOk, requireProduct } from './helpers/checks';
import { hashRoundTrip } from './helpers/client';
import { makeNetns, startServerInNetns } from './helpers/namespaces';
import { startNsproxy } from './helpers/nsproxy';
import { randomSeed } from './helpers/payload';

t.test('--threads 2: 100 concurrent round trips, each checked by SHA-256', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'multi', ['127.0.0.1:7000']);
  const px = await startNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0', '--threads', '2']);
  const ready = await px.ready();
  t.equal(ready.threads, 2, 'ready reports two threads');
  const port = px.listening[0]!.port;

  const results = await Promise.all(
    Array.from({ length: 100 }, (_, i) => hashRoundTrip(port, '127.0.0.1', 100_000 + i * 997, randomSeed(`thr${i}-`), { preamble: 'hash\n', upBytes: 50_000 + i * 31 })),
  );
  results.forEach((r, i) => assertHashOk(t, r, `connection ${i}`));
  await assertCleanStop(t, px);
});
