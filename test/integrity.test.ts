// Data integrity through nsproxy: 64 MiB each way on one connection, then 200
// concurrent connections with their own random payloads, all SHA-256 checked.
import t from 'tap';
import * as crypto from 'node:crypto';
import { makeNetns, startServerInNetns } from './helpers/namespaces';
import { startNsproxy } from './helpers/nsproxy';
import { hashRoundTrip } from './helpers/client';
import { randomSeed } from './helpers/payload';
import { assertCleanStop, assertHashOk, assertRunning, hashProblem, requireProduct } from './helpers/checks';

const MiB = 1024 * 1024;
const KiB = 1024;
const TARGET_PORT = 5432;

t.test('integrity', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'hash', [`127.0.0.1:${TARGET_PORT}`]);
  const px = await startNsproxy(t, ['--netns', ns, '--to', `127.0.0.1:${TARGET_PORT}`, '--listen', '127.0.0.1:0']);
  const port = px.listening[0].port;

  await t.test('64 MiB of random bytes each way, one connection', async (t) => {
    const r = await hashRoundTrip(port, '127.0.0.1', 64 * MiB, randomSeed('big-'), { upBytes: 64 * MiB, timeoutMs: 180000 });
    assertHashOk(t, r, '64 MiB');
  });

  await t.test('200 concurrent connections, 64-256 KiB each way, distinct payloads', async (t) => {
    const n = 200;
    const jobs = Array.from({ length: n }, (_, i) => {
      const down = crypto.randomInt(64 * KiB, 256 * KiB + 1);
      const up = crypto.randomInt(64 * KiB, 256 * KiB + 1);
      return hashRoundTrip(port, '127.0.0.1', down, randomSeed(`c${i}-`), { upBytes: up, timeoutMs: 180000 });
    });
    const results = await Promise.all(jobs);
    t.equal(new Set(results.map((r) => r.seed)).size, n, 'distinct seeds');
    t.equal(new Set(results.map((r) => r.upSha)).size, n, 'distinct upload payloads');
    const problems = results.map(hashProblem).filter((p): p is string => p !== null);
    t.same(problems, [], `all ${n} connections intact both ways`);
    t.equal(results.filter((r) => r.serverSha === r.upSha && r.downSha === r.downExpectedSha).length, n, 'count of good connections');
  });

  assertRunning(t, px);
  await assertCleanStop(t, px);
});

t.test('--connections-max 1: the kernel backlog holds the others, nothing is lost', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'hash', [`127.0.0.1:${TARGET_PORT}`]);
  const px = await startNsproxy(t, [
    '--netns', ns, '--to', `127.0.0.1:${TARGET_PORT}`, '--listen', '127.0.0.1:0', '--connections-max', '1',
  ]);
  const port = px.listening[0].port;
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => hashRoundTrip(port, '127.0.0.1', 128 * KiB, randomSeed(`max1-${i}-`), { timeoutMs: 120000 })),
  );
  const problems = results.map(hashProblem).filter((p): p is string => p !== null);
  t.same(problems, [], 'all 20 connections served one at a time, intact');
  await assertCleanStop(t, px);
});
