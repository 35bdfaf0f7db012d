// --ready-exec and --ready health against real rootful podman containers (local busybox image,
// the fixture server inside). The service listens at once but is "ready" only once a marker
// file exists in the container's /tmp (a tmpfs: empty again after every restart), which the
// test creates once it has seen nsproxy wait for it:
//   - --ready-exec 'test -e /tmp/ready' (run inside, as the container's user): nsproxy does not
//     accept before the marker exists, STATUS= says what it waits for, an early client waits in
//     the backlog and is served; after `podman restart` the same wait happens again (RELOADING=1
//     with MONOTONIC_USEC=, then READY=1);
//   - a command that is not there, or one that never succeeds: exit 1, one line that says so;
//   - --ready health: podman's own status, at start and after a restart (which makes it
//     "starting" again). No systemd runs podman's healthcheck timers here, so the test runs
//     `podman healthcheck run` every 300 ms in their place;
//   - --ready health on a container without a healthcheck: exit 2.
import t from 'tap';
import { assertOneStderrLine, assertRunning, requireProduct } from './helpers/checks';
import { echoPingPong, freePort } from './helpers/client';
import { notifyReceiver, datagrams } from './helpers/notify';
import { runNsproxy, spawnNsproxy, type Nsproxy } from './helpers/nsproxy';
import { fixtureServerMounts, podman, podmanEnv, podmanOk, requirePodman, runContainer, sleep, waitForListenIn } from './helpers/podman';

const PORT = 8080;
const TO = `127.0.0.1:${PORT}`;

async function ready(t: tap.Test): Promise<boolean> {
  return requireProduct(t) && (await requirePodman(t));
}

function count(px: Nsproxy, msg: string): number {
  return px.logs.filter((l) => l.msg === msg).length;
}

t.test('--ready-exec: not ready until the command succeeds inside, at start and after podman restart', async (t) => {
  if (!(await ready(t))) return;
  const c = await runContainer(t, { args: [...fixtureServerMounts(), '--user', '4242:4343', '--tmpfs', '/tmp:mode=1777'], cmd: ['node', '/fixtures/server.js', '--mode', 'echo', '--listen', TO] });
  await waitForListenIn(c.pid, PORT, 20000, 'the echo server');
  const sock = `@nsproxy-t-${process.pid}-ready-exec`;
  const receiver = await notifyReceiver(t, sock);
  const hostPort = await freePort();
  const px = spawnNsproxy(t, ['--container', c.name, '--to', TO, '--listen', `127.0.0.1:${hostPort}`, '--ready-exec', 'test -e /tmp/ready'], {
    env: podmanEnv({ NOTIFY_SOCKET: sock }),
    readyTimeoutMs: 30000,
  });
  // an early client: connects while nsproxy waits for the command, and is served once ready
  await px.waitForLog((l) => l.msg === 'waiting for target' && l.check === 'exec', 20000, 'waiting for --ready-exec');
  const early = echoPingPong(hostPort, '127.0.0.1', ['hello\n'], '', 30000);
  await sleep(1500);
  t.equal(count(px, 'ready'), 0, 'not ready while the command fails');
  const markerAt = Date.now();
  await podmanOk(['exec', c.name, 'touch', '/tmp/ready']);
  const r = await early;
  t.same(r.replies, ['hello\n'], 'the early client waited in the backlog and was served', { r });
  const tr = px.logs.find((l) => l.msg === 'target ready');
  t.same(tr?.checks, ['tcp', 'exec'], '"target ready": the port accepted, then the command succeeded');
  t.ok(Date.parse(String(tr?.time)) >= markerAt - 50, '"target ready" came after the marker was made');
  const status = datagrams(receiver).find((d) => d.includes("--ready-exec 'test -e /tmp/ready'"));
  t.match(status ?? '', /STATUS=waiting for --ready-exec 'test -e \/tmp\/ready' to succeed in container \S+ \(attempt \d+, .*; last: exit status 1\)/, 'STATUS= says what is waited for', { datagrams: datagrams(receiver) });

  // podman restart: the marker is gone again, nsproxy waits for it again before accepting
  const before = datagrams(receiver).length;
  const waitsBefore = px.logs.filter((l) => l.msg === 'waiting for target').length;
  await podmanOk(['restart', '-t', '0', c.name]);
  await px.waitForLog(() => px.logs.filter((l) => l.msg === 'waiting for target' && l.check === 'exec').length > 0 && px.logs.filter((l) => l.msg === 'waiting for target').length > waitsBefore, 30000, 'waiting for --ready-exec again');
  t.equal(count(px, 'target restarted'), 0, 'after the restart nsproxy waits for --ready-exec again, not accepting');
  const markerAgain = Date.now();
  await podmanOk(['exec', c.name, 'touch', '/tmp/ready']);
  const restarted = await px.waitForLog((l) => l.msg === 'target restarted', 30000, '"target restarted"');
  t.ok(Date.parse(String(restarted.time)) >= markerAgain - 50, `and resumes only once it succeeds (downtime ${String(restarted.downtimeMs)} ms)`);
  // READY=1 is sent right after the "target restarted" line; the receiver prints it a moment later
  for (let i = 0; i < 50 && !datagrams(receiver).slice(before).some((d) => d.includes('READY=1')); i++) await sleep(100);
  const after = datagrams(receiver).slice(before);
  const reloading = after.find((d) => d.includes('RELOADING=1'));
  t.match(reloading ?? '', /MONOTONIC_USEC=\d+/, 'RELOADING=1 comes with MONOTONIC_USEC= (systemd >= 253)');
  t.ok(after.findIndex((d) => d.includes('READY=1')) > after.indexOf(reloading ?? ''), 'then READY=1');
  const r2 = await echoPingPong(hostPort, '127.0.0.1', ['again\n'], '', 30000);
  t.same(r2.replies, ['again\n'], 'served after the restart', { r2 });
  assertRunning(t, px);
  t.equal(await px.stop(), 0, 'clean stop');
});

t.test('--ready-exec that cannot run, or never succeeds: exit 1 with one line', async (t) => {
  if (!(await ready(t))) return;
  const c = await runContainer(t, { args: fixtureServerMounts(), cmd: ['node', '/fixtures/server.js', '--mode', 'echo', '--listen', TO] });
  await waitForListenIn(c.pid, PORT, 20000, 'the echo server');
  const missing = await runNsproxy(['--container', c.name, '--to', TO, '--listen', '127.0.0.1:0', '--ready-exec', 'pg_isready -h 127.0.0.1'], podmanEnv(), 30000);
  assertOneStderrLine(t, missing, 1);
  t.match(missing.stderr, /--ready-exec 'pg_isready -h 127\.0\.0\.1' in container \S+: execve ENOENT; 'pg_isready' is not in the target's PATH \(\/usr\/local\/sbin:\/usr\/local\/bin:\/usr\/sbin:\/usr\/bin:\/sbin:\/bin\); give its full path inside the target/);
  const never = await runNsproxy(['--container', c.name, '--to', TO, '--listen', '127.0.0.1:0', '--ready-exec', 'false', '--ready-timeout', '1500ms'], podmanEnv(), 30000);
  assertOneStderrLine(t, never, 1);
  t.match(never.stderr, /--ready-exec 'false' in container \S+ did not succeed within 1\.5 s \(last: exit status 1\)/);
});

t.test("--ready health: podman's healthcheck status decides", async (t) => {
  if (!(await ready(t))) return;
  const c = await runContainer(t, {
    args: [...fixtureServerMounts(), '--health-cmd', 'test -e /tmp/healthy', '--health-interval', '1s', '--health-retries', '1'],
    cmd: ['node', '/fixtures/server.js', '--mode', 'echo', '--listen', TO],
  });
  await waitForListenIn(c.pid, PORT, 20000, 'the echo server');
  // podman runs the check from a systemd timer; there is no systemd here, so run it ourselves
  let ticking = true;
  let paused = false;
  const ticker = (async () => {
    while (ticking) {
      if (!paused) await podman(['healthcheck', 'run', c.name]);
      await sleep(300);
    }
  })();
  t.teardown(async () => {
    ticking = false;
    await ticker;
  });
  const px = spawnNsproxy(t, ['--container', c.name, '--to', TO, '--listen', '127.0.0.1:0', '--ready', 'health'], { env: podmanEnv(), readyTimeoutMs: 30000 });
  const waiting = await px.waitForLog((l) => l.msg === 'waiting for target' && l.check === 'health', 20000, 'waiting for health');
  t.match(String(waiting.lastError), /^health: (starting|unhealthy)/, `waits while podman says ${String(waiting.lastError)}`);
  t.equal(count(px, 'ready'), 0, 'not ready yet');
  await podmanOk(['exec', c.name, 'touch', '/tmp/healthy']);
  const tr = await px.waitForLog((l) => l.msg === 'target ready', 20000, '"target ready"');
  t.same(tr.checks, ['tcp', 'health'], 'ready once podman said healthy');
  await px.ready();
  const r = await echoPingPong(px.listening[0]?.port as number, '127.0.0.1', ['x\n'], '', 20000);
  t.same(r.replies, ['x\n'], 'forwarding');

  // a restart makes podman's status "starting" again: nsproxy waits for "healthy" again
  paused = true;
  await podmanOk(['restart', '-t', '0', c.name]);
  const exited = await px.waitForLog((l) => l.msg === 'target exited', 20000, '"target exited"');
  const again = await px.waitForLog((l) => l.msg === 'waiting for target' && l.check === 'health' && Date.parse(String(l.time)) >= Date.parse(String(exited.time)), 20000, 'waiting for health again');
  t.match(String(again.lastError), /^health: starting/, 'after the restart podman says starting, and nsproxy waits');
  t.equal(count(px, 'target restarted'), 0, 'not forwarding yet');
  paused = false;
  await px.waitForLog((l) => l.msg === 'target restarted', 20000, '"target restarted"');
  t.pass('resumed once podman said healthy again');
  t.equal(await px.stop(), 0, 'clean stop');

  const plain = await runContainer(t, { args: fixtureServerMounts(), cmd: ['node', '/fixtures/server.js', '--mode', 'echo', '--listen', TO] });
  await waitForListenIn(plain.pid, PORT, 20000, 'the echo server');
  const none = await runNsproxy(['--container', plain.name, '--to', TO, '--listen', '127.0.0.1:0', '--ready', 'health'], podmanEnv(), 30000);
  assertOneStderrLine(t, none, 2);
  t.match(none.stderr, /--ready health: container \S+ has no healthcheck; give it one \(HealthCmd= in its quadlet, podman run --health-cmd\), or use --ready-exec CMD/);
});
