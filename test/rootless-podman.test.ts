// nsproxy as an ordinary user with no capabilities, against that user's rootless podman
// container (--network=none, the fixture server inside, node bind-mounted): `--container NAME`
// resolves it with the user's own podman, data goes through intact (SHA-256 both ways), and
// `podman restart` / `podman stop` + `start` are followed by the running nsproxy (same PID):
// a new nsproxy-helper for the new network namespace, the old one gone, clients that connect
// while the container is down wait in the backlog and are served. No helper outlives nsproxy.
// No systemd here: systemd-user.test.ts runs the shipped units under a user manager.
import { readlinkSync } from 'node:fs';
import t from 'tap';
import { assertCleanStop, assertHashOk, assertRunning, hashProblem, requireProduct } from './helpers/checks';
import { hashRoundTrip } from './helpers/client';
import { NODE, type TestLike } from './helpers/env';
import { startNsproxy, type Nsproxy } from './helpers/nsproxy';
import { randomSeed } from './helpers/payload';
import { listeningPorts, sleep, waitForListenIn } from './helpers/podman';
import { runCommand } from './helpers/procs';
import { libraryDirs } from './helpers/rootfs';
import {
  pausePid,
  quietPodman,
  removeUserContainers,
  requireRootless,
  rootlessUser,
  runUserContainer,
  stopPauseProcess,
  sweepUserContainers,
  userContainerPid,
  userFixtureMounts,
  userPodman,
  userPodmanOk,
  userProcessesAfter,
  type RootlessUser,
} from './helpers/rootless-podman';
import { alive, capEff, childrenOf, commOf } from './helpers/users';

const MiB = 1024 * 1024;
const USER = 'nsproxy-pod'; // this file's own user: its own image store, runtime dir, pause process
const PORT = 8080; // inside the container
const TO = `127.0.0.1:${PORT}`;

function helpers(px: Nsproxy): number[] {
  return childrenOf(px.pid).filter((pid) => commOf(pid) === 'nsproxy-helper');
}

async function gone(pids: number[], timeoutMs = 10000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive) && Date.now() < deadline) await sleep(50);
  return !pids.some(alive);
}

/** Waits until nsproxy has logged `msg` n times. */
async function logCount(px: Nsproxy, msg: string, n: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (px.logs.filter((l) => l.msg === msg).length < n) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} "${msg}" lines: ${px.describe()}`);
    await sleep(50);
  }
}

/** The fixture server in a rootless --network=none container of the user, listening on TO. */
async function serverContainer(t: TestLike, ru: RootlessUser, name: string): Promise<number> {
  const c = await runUserContainer(t, ru, {
    name,
    args: userFixtureMounts(ru, libraryDirs([NODE])),
    cmd: ['node', '/fixtures/server.js', '--mode', 'multi', '--listen', TO],
  });
  await waitForListenIn(c.pid, PORT, 20000, `the fixture server in ${name}`);
  return c.pid;
}

async function nsproxyAs(t: TestLike, ru: RootlessUser, args: string[]): Promise<Nsproxy> {
  return startNsproxy(t, args, { wrapper: ru.asUserEnv, mainJs: ru.mainJs, readyTimeoutMs: 60000 });
}

t.test('rootless podman: nsproxy --container as the owner, no capabilities, podman restart followed', async (t) => {
  if (!requireProduct(t) || !requireRootless(t)) return;
  const ru = await rootlessUser(t, USER);
  for (const s of await sweepUserContainers(ru, [])) t.comment(`removed a container of an aborted run: ${s}`);
  const name = `nsproxy-t-${process.pid}-rootless`;
  const pid1 = await serverContainer(t, ru, name);
  t.not(readlinkSync(`/proc/${pid1}/ns/user`), readlinkSync('/proc/self/ns/user'), 'the container has its own user namespace (rootless)');

  const px = await nsproxyAs(t, ru, ['--container', name, '--to', TO, '--listen', '127.0.0.1:0']);
  const port = px.listening[0]!.port;
  t.equal(capEff(px.pid), '0000000000000000', 'nsproxy runs with CapEff 0');
  const ready = px.logs.find((l) => l.msg === 'ready');
  t.equal(ready?.targetPid, pid1, '"ready" names the container\'s PID');
  const helpers1 = helpers(px);
  t.ok(helpers1.length >= 1, `nsproxy-helper process(es): ${helpers1.join(', ')}`);
  for (const h of helpers1) {
    t.equal(readlinkSync(`/proc/${h}/ns/net`), readlinkSync(`/proc/${pid1}/ns/net`), `helper ${h} is in the container's network namespace`);
    t.equal(readlinkSync(`/proc/${h}/ns/user`), readlinkSync(`/proc/${pid1}/ns/user`), `helper ${h} is in the container's user namespace`);
  }

  assertHashOk(t, await hashRoundTrip(port, '127.0.0.1', 8 * MiB, randomSeed('rlp-big-'), { preamble: 'hash\n' }), '8 MiB each way');
  const many = await Promise.all(
    Array.from({ length: 16 }, (_, i) => hashRoundTrip(port, '127.0.0.1', 256 * 1024 + i, randomSeed(`rlp${i}-`), { preamble: 'hash\n', upBytes: 100000 + i })),
  );
  t.same(many.map(hashProblem).filter((p) => p !== null), [], '16 concurrent round trips intact');

  // podman restart while nsproxy runs: the next connection succeeds, same nsproxy PID
  const t0 = Date.now();
  const restart = await userPodman(ru, ['restart', '-t', '0', name]);
  const restartMs = Date.now() - t0;
  t.equal(restart.code, 0, `podman restart -t 0 (${restartMs} ms)`, { stderr: quietPodman(restart.stderr) });
  const pid2 = await userContainerPid(ru, name);
  t.not(pid2, pid1, `the container has a new PID (${pid1} -> ${pid2})`);
  const after = await hashRoundTrip(port, '127.0.0.1', MiB, randomSeed('rlp-after-'), { preamble: 'hash\n', timeoutMs: 60000 });
  const recoveryMs = Date.now() - t0;
  assertHashOk(t, after, 'the first connection after the restart');
  t.comment(`restart recovery: podman restart took ${restartMs} ms; the first connection after it was answered ${recoveryMs} ms after the restart began`);
  assertRunning(t, px, 'nsproxy was not restarted (same process)');
  const exited = px.logs.find((l) => l.msg === 'target exited');
  const restarted = px.logs.find((l) => l.msg === 'target restarted');
  t.ok(exited, 'log: "target exited"', { logs: px.logs });
  t.ok(restarted, 'log: "target restarted"', { logs: px.logs });
  t.equal(restarted?.targetPid, pid2, '"target restarted" names the new PID');
  t.comment(`nsproxy's downtime: ${String(restarted?.downtimeMs)} ms`);
  const helpers2 = helpers(px);
  t.ok(helpers2.length >= 1, `new nsproxy-helper process(es): ${helpers2.join(', ')}`);
  t.same(helpers2.filter((h) => helpers1.includes(h)), [], 'the helper was replaced');
  t.ok(await gone(helpers1), 'the old helper is gone');
  for (const h of helpers2) {
    t.equal(readlinkSync(`/proc/${h}/ns/net`), readlinkSync(`/proc/${pid2}/ns/net`), `helper ${h} is in the new network namespace`);
  }

  // stop, connect while the container is down (the client waits in the backlog), start
  const stop = await userPodman(ru, ['stop', '-t', '0', name]);
  t.equal(stop.code, 0, 'podman stop -t 0', { stderr: quietPodman(stop.stderr) });
  await logCount(px, 'target exited', 2, 20000);
  const pending = hashRoundTrip(port, '127.0.0.1', MiB, randomSeed('rlp-backlog-'), { preamble: 'hash\n', timeoutMs: 60000 });
  let settled = false;
  void pending.then(() => (settled = true));
  await sleep(1000);
  t.notOk(settled, 'a client that connects while the container is stopped is not refused: it waits');
  const t1 = Date.now();
  await userPodmanOk(ru, ['start', name]);
  const waited = await pending;
  assertHashOk(t, waited, 'the waiting client is served once the container is back');
  t.comment(`waiting client answered ${Date.now() - t1} ms after podman start returned`);
  const pid3 = await userContainerPid(ru, name);
  t.ok(listeningPorts(pid3).has(PORT), 'the server listens in the new container');
  t.equal(px.logs.filter((l) => l.msg === 'target restarted').length, 2, 'two "target restarted" lines');
  assertRunning(t, px, 'still the same nsproxy process');

  const last = helpers(px);
  await assertCleanStop(t, px);
  t.ok(await gone([...last, ...helpers1, ...helpers2]), 'no nsproxy-helper is left after nsproxy stops');
  t.same(px.logs.filter((l) => l.level >= 50), [], 'no error lines from nsproxy');

  // clean up now, to check that nothing of the user is left (teardown does it again, idempotently)
  await removeUserContainers(ru, [name]);
  t.ok(pausePid(ru) !== null, "the user's rootless pause process exists while podman is in use");
  await stopPauseProcess(ru);
  const left = await userProcessesAfter(ru, 10_000);
  t.same(left, [], `no process of ${ru.name} (or its subordinate uids) is left (within 10 s)`);
});

t.test('rootless podman: a container name the user\'s podman does not know: exit 2', async (t) => {
  if (!requireProduct(t) || !requireRootless(t)) return;
  const ru = await rootlessUser(t, USER);
  // nsproxy runs the user's own podman: containers of root or of other users are unknown to it
  const r = await runCommand(ru.asUserEnv[0] as string, [...ru.asUserEnv.slice(1), NODE, ru.mainJs, '--container', 'nsproxy-no-such-container', '--to', TO, '--listen', '127.0.0.1:0'], { cwd: '/' });
  t.equal(r.code, 2, 'no such container (of this user): exit 2', { stderr: r.stderr });
  t.match(r.stderr, /^nsproxy: .*nsproxy-no-such-container/, 'one line naming the container', { stderr: r.stderr });
  await stopPauseProcess(ru);
});
