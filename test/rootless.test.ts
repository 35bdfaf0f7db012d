// Rootless targets with zero capabilities: nsproxy runs as an ordinary user and reaches a
// namespace that user owns (unshare -Urn: the shape of a rootless podman container) through a
// helper process that joins the owning user namespace first. Integrity, half-close and
// concurrency as for root; refusal of other users' namespaces; the helper never outlives nsproxy.
import { readFileSync, readlinkSync } from 'node:fs';

import t from 'tap';

import { spawnActivated } from './helpers/activation';
import { assertCleanStop, assertHashOk, assertOneStderrLine, requireProduct } from './helpers/checks';
import { freePort, halfCloseRequest, hashRoundTrip } from './helpers/client';
import { makeNetns, startUnshareServer } from './helpers/namespaces';
import { startNsproxy, type Nsproxy } from './helpers/nsproxy';
import { randomSeed } from './helpers/payload';
import type { TestLike } from './helpers/env';
import { runCommand } from './helpers/procs';
import { alive, capEff, childrenOf, commOf, startUserNsServer, testUser, type TestUser } from './helpers/users';

const MiB = 1024 * 1024;

function nsproxyAs(t: TestLike, user: TestUser, args: string[]): Promise<Nsproxy> {
  return startNsproxy(t, args, { wrapper: user.asUser, mainJs: user.mainJs });
}

function runAs(user: TestUser, args: string[]) {
  return runCommand(user.asUser[0] as string, [...user.asUser.slice(1), process.execPath, user.mainJs, ...args], { cwd: '/' });
}

/** The helper processes of a running nsproxy: its children named nsproxy-helper. */
function helpers(px: Nsproxy): number[] {
  return childrenOf(px.pid).filter((pid) => commOf(pid) === 'nsproxy-helper');
}

async function gone(pids: number[], timeoutMs = 10000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  return !pids.some(alive);
}

t.test('as an ordinary user with no capabilities: integrity, half-close, 200 connections', async (t) => {
  if (!requireProduct(t)) return;
  const user = await testUser(t);
  const server = await startUserNsServer(t, user, 'multi', ['127.0.0.1:7000']);
  const px = await nsproxyAs(t, user, ['--pid', String(server.pid), '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0']);
  t.equal(capEff(px.pid), '0000000000000000', 'nsproxy holds no capabilities');
  const port = px.listening[0]!.port;

  assertHashOk(t, await hashRoundTrip(port, '127.0.0.1', 64 * MiB, randomSeed('rl-big-'), { preamble: 'hash\n', upBytes: 64 * MiB, timeoutMs: 180000 }), '64 MiB each way');
  const reply = await halfCloseRequest(port, 'hello', { preamble: 'reply-after-eof\n' });
  t.equal(reply.data.toString(), 'GOT:hello', 'half-close: the answer after our EOF arrives');
  const many = await Promise.all(
    Array.from({ length: 200 }, (_, i) => hashRoundTrip(port, '127.0.0.1', 64 * 1024 + i * 512, randomSeed(`rl${i}-`), { preamble: 'hash\n', upBytes: 32 * 1024 + i * 100, timeoutMs: 120000 })),
  );
  t.equal(many.filter((r) => r.serverSha === r.upSha && r.downSha === r.downExpectedSha).length, 200, '200 concurrent connections all intact');

  const helperPids = helpers(px);
  t.equal(helperPids.length, 1, 'one helper process (one engine thread)');
  // Its capabilities are the owner's inside the container's user namespace, none in the host's.
  const helper = helperPids[0]!;
  t.equal(readlinkSync(`/proc/${helper}/ns/user`), readlinkSync(`/proc/${server.pid}/ns/user`), "the helper is in the target's user namespace");
  t.not(readlinkSync(`/proc/${helper}/ns/user`), readlinkSync('/proc/self/ns/user'), 'not in the host user namespace');
  t.match(readFileSync(`/proc/${helper}/status`, 'utf8'), new RegExp(`\nUid:\t${user.uid}\t`), 'and runs as the user');
  await assertCleanStop(t, px);
  t.ok(await gone(helperPids), 'the helper is gone after SIGTERM');
});

t.test('the helper dies with nsproxy: SIGKILL of the daemon, and the target exiting', async (t) => {
  if (!requireProduct(t)) return;
  const user = await testUser(t);
  const server = await startUserNsServer(t, user, 'echo', ['127.0.0.1:7000']);
  const killed = await nsproxyAs(t, user, ['--pid', String(server.pid), '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0']);
  const killedHelpers = helpers(killed);
  t.equal(killedHelpers.length, 1, 'a helper while running');
  killed.proc.signal('SIGKILL');
  await killed.proc.exited;
  t.ok(await gone(killedHelpers), 'helper gone after SIGKILL of nsproxy (PR_SET_PDEATHSIG)');

  const px = await nsproxyAs(t, user, ['--pid', String(server.pid), '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0']);
  const pxHelpers = helpers(px);
  await server.stop();
  const exit = await px.proc.exited;
  t.equal(exit.code, 1, 'target exit ends nsproxy with 1');
  t.ok(await gone(pxHelpers), 'helper gone after the target exited');
});

t.test("refused: another user's or root's namespace, before anything starts", async (t) => {
  if (!requireProduct(t)) return;
  const user = await testUser(t);
  const other = await testUser(t, 'nsproxy-test2');
  const ns = await makeNetns(t);
  const rootNs = await runAs(user, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0']);
  assertOneStderrLine(t, rootNs, 2);
  t.match(rootNs.stderr, new RegExp(`the network namespace of netns ${ns} belongs to uid 0, not to you \\(uid ${user.uid}\\); run nsproxy as uid 0, or with CAP_SYS_ADMIN \\(root\\)`));
  t.notMatch(rootNs.stdout, /listening|ready/, 'nothing was opened');

  const rootProcess = await startUnshareServer(t, 'echo', ['127.0.0.1:7000']);
  const rootPid = await runAs(user, ['--pid', String(rootProcess.pid), '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0']);
  assertOneStderrLine(t, rootPid, 1);
  t.match(rootPid.stderr, /cannot open \/proc\/\d+\/ns\/net \(EACCES\); run nsproxy as root or as the user who owns the target/);

  const otherServer = await startUserNsServer(t, other, 'echo', ['127.0.0.1:7000']);
  const otherPid = await runAs(user, ['--pid', String(otherServer.pid), '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0']);
  assertOneStderrLine(t, otherPid, 1);
  t.match(otherPid.stderr, /cannot open \/proc\/\d+\/ns\/net \(EACCES\)/);
});

t.test('socket activation as the user (systemd-socket-activate)', async (t) => {
  if (!requireProduct(t)) return;
  const user = await testUser(t);
  const server = await startUserNsServer(t, user, 'hash', ['127.0.0.1:7000']);
  const port = await freePort();
  const px = await spawnActivated(t, [`127.0.0.1:${port}`], ['db'], ['--pid', String(server.pid), '--to', '127.0.0.1:7000'], { asUser: user.asUser, mainJs: user.mainJs });
  const first = hashRoundTrip(port, '127.0.0.1', MiB, randomSeed('rl-sa-'));
  await px.ready();
  assertHashOk(t, await first, 'the activating connection, forwarded through the helper');
  t.equal(capEff(px.pid), '0000000000000000', 'no capabilities');
  await assertCleanStop(t, px);
});
