// --container against real rootful podman containers (local busybox image, runc,
// no registry): --network=none with the fixture server on 127.0.0.1 inside, by name
// and by ID; --to @NETWORK:PORT on a bridge network; readiness (the service starts
// listening 8 s after the container, clients that connect before are served, none is
// refused); following the container across `podman restart` without restarting nsproxy.
import t from 'tap';
import { startNsproxy, spawnNsproxy, type LogLine, type Nsproxy } from './helpers/nsproxy';
import { waitForStdoutLine } from './helpers/procs';
import { freePort, hashRoundTrip, type HashResult } from './helpers/client';
import { randomSeed } from './helpers/payload';
import { assertCleanStop, assertHashOk, assertRunning, hashProblem, requireProduct } from './helpers/checks';
import {
  createNetwork,
  fixtureServerMounts,
  inspectContainer,
  listeningPorts,
  podmanEnv,
  podmanOk,
  requirePodman,
  runContainer,
  runServerContainer,
  sleep,
  waitForListenIn,
} from './helpers/podman';

const MiB = 1024 * 1024;
const PORT = 8080; // inside the container
const TO = `127.0.0.1:${PORT}`;
const SERVICE_DELAY_MS = 8000; // the readiness test's service starts this long after its container

type Tap = tap.Test;

async function ready(t: Tap): Promise<boolean> {
  if (!requireProduct(t)) return false;
  return requirePodman(t);
}

function logIndex(px: Nsproxy, msg: string): number {
  return px.logs.findIndex((l) => l.msg === msg);
}

t.test('--container NAME, --network=none: hash round trips', async (t) => {
  if (!(await ready(t))) return;
  const c = await runServerContainer(t, 'multi', [TO]);
  const px = await startNsproxy(t, ['--container', c.name, '--to', TO, '--listen', '127.0.0.1:0'], { env: podmanEnv() });
  const r0 = await px.ready();
  t.equal(r0.to, TO, 'ready names the target address');
  t.comment(`ready: target=${JSON.stringify(r0.target)} pid=${JSON.stringify(r0.pid)} (container pid ${c.pid})`);
  t.ok(logIndex(px, 'target ready') >= 0 && logIndex(px, 'target ready') < logIndex(px, 'ready'), '"target ready" before "ready"');
  const port = px.listening[0].port;

  const r = await hashRoundTrip(port, '127.0.0.1', MiB, randomSeed('podman-'), { preamble: 'hash\n' });
  assertHashOk(t, r, '1 MiB each way');
  const r2 = await hashRoundTrip(port, '127.0.0.1', 3 * MiB + 7, randomSeed('podman-'), { preamble: 'hash\n', upBytes: 12345 });
  assertHashOk(t, r2, 'asymmetric sizes');
  const many = await Promise.all(Array.from({ length: 8 }, (_, i) => hashRoundTrip(port, '127.0.0.1', 200000 + i, randomSeed(`podman-${i}-`), { preamble: 'hash\n' })));
  t.same(many.map(hashProblem).filter((p) => p !== null), [], '8 concurrent round trips intact');
  await assertCleanStop(t, px);
});

t.test('--container ID (the full container id)', async (t) => {
  if (!(await ready(t))) return;
  const c = await runServerContainer(t, 'hash', [TO]);
  t.match(c.id, /^[0-9a-f]{64}$/, `container id ${c.id.slice(0, 12)}...`);
  const px = await startNsproxy(t, ['--container', c.id, '--to', TO, '--listen', '127.0.0.1:0'], { env: podmanEnv() });
  const r = await hashRoundTrip(px.listening[0].port, '127.0.0.1', MiB, randomSeed('podman-id-'));
  assertHashOk(t, r);
  await assertCleanStop(t, px);
});

t.test('--to @NETWORK:PORT on a podman bridge network', async (t) => {
  if (!(await ready(t))) return;
  const network = await createNetwork(t);
  // The server binds only the container's address on that network (not 0.0.0.0,
  // not 127.0.0.1), so a round trip proves nsproxy connected to that address.
  const script =
    "IP=$(ip -o -4 addr show dev eth0 | sed -E 's/.* inet ([0-9.]+)\\/.*/\\1/'); " +
    `exec node /fixtures/server.js --mode multi --listen "$IP:${PORT}"`;
  const c = await runContainer(t, { network, args: fixtureServerMounts(), cmd: ['sh', '-c', script] });
  await waitForListenIn(c.pid, PORT, 20000, 'the server on the network address');
  const st = await inspectContainer(c.name);
  const ip = st.networks[network];
  t.match(ip, /^\d+\.\d+\.\d+\.\d+$/, `the container is ${ip} on ${network}`);

  const px = await startNsproxy(t, ['--container', c.name, '--to', `@${network}:${PORT}`, '--listen', '127.0.0.1:0'], { env: podmanEnv() });
  const r0 = await px.ready();
  t.comment(`ready: to=${JSON.stringify(r0.to)} target=${JSON.stringify(r0.target)}`);
  const port = px.listening[0].port;
  const r = await hashRoundTrip(port, '127.0.0.1', MiB, randomSeed('network-'), { preamble: 'hash\n' });
  assertHashOk(t, r, `round trip to ${ip}:${PORT} through @${network}:${PORT}`);
  await assertCleanStop(t, px);
});

/** Until pred() holds or timeoutMs passes; returns whether it held. */
async function until(pred: () => boolean, timeoutMs: number, stepMs = 10): Promise<boolean> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) return false;
    await sleep(stepMs);
  }
  return true;
}

t.test('readiness: clients that connect before the service listens are served, none refused', async (t) => {
  if (!(await ready(t))) return;
  const hostPort = await freePort();
  const c = await runContainer(t, {
    args: fixtureServerMounts(),
    // long enough for nsproxy to start and bind first on a loaded 2-CPU machine (podman inspect alone can take seconds)
    cmd: ['sh', '-c', `sleep ${SERVICE_DELAY_MS / 1000}; exec node /fixtures/server.js --mode hash --listen ${TO}`],
  });
  const containerStarted = Date.now();
  const px = spawnNsproxy(t, ['--container', c.name, '--to', TO, '--listen', `127.0.0.1:${hostPort}`], { env: podmanEnv(), readyTimeoutMs: 60000 });

  // "t = 0": as soon as nsproxy's socket is there, i.e. while it waits for the target
  const logged = (msg: string): boolean => px.logs.some((l) => l.msg === msg);
  const bound = await until(() => listeningPorts(process.pid).has(hostPort) || logged('target ready') || !px.running, 20000);
  t.ok(bound && px.running, 'nsproxy runs and its socket listens (or the target became ready)', bound ? {} : { output: px.describe() });
  t.notOk(logged('target ready'), 'the host socket listens before "target ready" (clients can queue in the backlog)', { output: px.describe() });
  t.notOk(listeningPorts(c.pid).has(PORT), 'the service inside does not listen yet (the clients below really come early)');
  const early = Date.now();
  t.comment(`clients connect ${early - containerStarted} ms after the container started`);

  const clients = Array.from({ length: 3 }, (_, i) => hashRoundTrip(hostPort, '127.0.0.1', 256 * 1024 + i, randomSeed(`early-${i}-`), { timeoutMs: 60000 }));
  const results: HashResult[] = await Promise.all(clients);
  const answered = Date.now();
  results.forEach((r, i) => assertHashOk(t, r, `early client ${i}`));
  const tr: LogLine = await px.waitForLog((l) => l.msg === 'target ready', 5000, '"target ready"');
  await px.ready();
  t.comment(
    `early clients answered ${answered - early} ms after connecting; "target ready" after ${JSON.stringify(tr.attempts)} probes, ` +
      `elapsedMs=${JSON.stringify(tr.elapsedMs)}; service started ${SERVICE_DELAY_MS} ms after the container`,
  );
  t.ok(logged('waiting for target'), 'logged "waiting for target" while the service was not there');
  const waiting = px.logs.filter((l) => l.msg === 'waiting for target');
  t.ok(waiting.every((l) => l.level === 30 && l.to === TO), '"waiting for target" lines are info and name the target', { waiting });
  t.ok(logIndex(px, 'waiting for target') < logIndex(px, 'target ready') && logIndex(px, 'target ready') < logIndex(px, 'ready'), 'order: waiting, target ready, ready');
  t.equal(tr.to, TO, '"target ready" names the target');
  t.same(px.logs.filter((l) => l.msg === 'connect failed'), [], 'no "connect failed": nothing was refused');

  // and a client after "ready", for good measure
  const r = await hashRoundTrip(hostPort, '127.0.0.1', MiB, randomSeed('late-'));
  assertHashOk(t, r, 'a client after ready');
  await assertCleanStop(t, px);
});

t.test('podman restart: nsproxy follows the container (same nsproxy PID)', async (t) => {
  if (!(await ready(t))) return;
  const c = await runServerContainer(t, 'multi', [TO]);
  const px = await startNsproxy(t, ['--container', c.name, '--to', TO, '--listen', '127.0.0.1:0'], { env: podmanEnv() });
  const port = px.listening[0].port;
  const nsproxyPid = px.pid;
  const first = await hashRoundTrip(port, '127.0.0.1', MiB, randomSeed('before-restart-'), { preamble: 'hash\n' });
  assertHashOk(t, first, 'before the restart');

  let oldPid = c.pid;
  for (let round = 1; round <= 2; round++) {
    const issued = Date.now();
    await podmanOk(['restart', c.name]);
    const restartCmdMs = Date.now() - issued;
    const st = await inspectContainer(c.name);
    t.ok(st.running && st.pid !== oldPid, `restart ${round}: container runs with a new PID (${oldPid} -> ${st.pid})`);

    // retry for up to ~10 s; a connection that sits in the backlog meanwhile is fine
    let attempts = 0;
    const problems: string[] = [];
    let ok: HashResult | null = null;
    while (Date.now() - issued < 10000) {
      attempts++;
      const r = await hashRoundTrip(port, '127.0.0.1', 256 * 1024, randomSeed(`after-restart-${round}-`), { preamble: 'hash\n', timeoutMs: 15000 });
      const p = hashProblem(r);
      if (p === null) {
        ok = r;
        break;
      }
      problems.push(p);
      await sleep(100);
    }
    const recovered = Date.now() - issued;
    t.ok(ok !== null, `restart ${round}: a connection succeeds again`, ok ? {} : { problems, output: px.describe() });
    if (ok) assertHashOk(t, ok, `restart ${round}: round trip after the restart`);
    assertRunning(t, px, `restart ${round}: nsproxy is still running`);
    t.equal(px.pid, nsproxyPid, `restart ${round}: same nsproxy PID ${nsproxyPid}`);

    const exited = await px.waitForLog((l) => l.msg === 'target exited' && l.targetPid === oldPid, 10000, `"target exited" for pid ${oldPid}`).catch((e: Error) => e);
    t.notOk(exited instanceof Error, `restart ${round}: "target exited" {targetPid: ${oldPid}}`, exited instanceof Error ? { error: exited.message } : {});
    if (!(exited instanceof Error)) t.equal(exited.level, 40, `restart ${round}: "target exited" is a warning`);
    const restarted = await px.waitForLog((l) => l.msg === 'target restarted' && l.targetPid === st.pid, 10000, `"target restarted" for pid ${st.pid}`).catch((e: Error) => e);
    t.notOk(restarted instanceof Error, `restart ${round}: "target restarted" {targetPid: ${st.pid}}`, restarted instanceof Error ? { error: restarted.message, output: px.describe() } : {});
    if (!(restarted instanceof Error)) {
      t.equal(restarted.level, 30, `restart ${round}: "target restarted" is info`);
      t.type(restarted.downtimeMs, 'number', `restart ${round}: downtimeMs`);
    }
    t.comment(
      `restart ${round}: podman restart took ${restartCmdMs} ms; first successful round trip ${recovered} ms after it was issued ` +
        `(${attempts} attempt(s)${problems.length ? `, failed: ${problems.join(' | ')}` : ''}); ` +
        `nsproxy downtimeMs=${restarted instanceof Error ? 'n/a' : JSON.stringify(restarted.downtimeMs)}`,
    );
    oldPid = st.pid;
  }
  t.equal(px.logs.filter((l) => l.msg === 'target restarted').length, 2, 'two "target restarted" lines for two restarts');
  await assertCleanStop(t, px);
});

t.test('downtime: a client that connects while the container is down is served once it is back', async (t) => {
  if (!(await ready(t))) return;
  const c = await runServerContainer(t, 'multi', [TO]);
  const px = await startNsproxy(t, ['--container', c.name, '--to', TO, '--listen', '127.0.0.1:0', '--ready-timeout', '60s'], { env: podmanEnv() });
  const port = px.listening[0].port;
  const nsproxyPid = px.pid;
  assertHashOk(t, await hashRoundTrip(port, '127.0.0.1', 256 * 1024, randomSeed('before-stop-'), { preamble: 'hash\n' }), 'before');

  const cases: Array<[string, () => Promise<void>, () => Promise<void>]> = [
    ['podman stop, 2 s, podman start', () => podmanOk(['stop', '-t', '5', c.name]).then(() => undefined), () => podmanOk(['start', c.name]).then(() => undefined)],
    [
      'podman rm, 2 s, a new container with the same name',
      () => podmanOk(['rm', '-f', '-t', '5', c.name]).then(() => undefined),
      () => runServerContainer(t, 'multi', [TO], { name: c.name, waitPort: null }).then(() => undefined),
    ],
  ];
  let oldPid = c.pid;
  for (const [label, down, up] of cases) {
    const mark = px.proc.stdout.lines.length;
    await down();
    await waitForStdoutLine(px.proc, (l) => l.includes('"target exited"'), 10000, `"target exited" (${label})`, mark);
    await sleep(300); // nsproxy has stopped accepting by now
    const connected = Date.now();
    const client = hashRoundTrip(port, '127.0.0.1', 256 * 1024, randomSeed('during-downtime-'), { preamble: 'hash\n', timeoutMs: 60000 });
    await sleep(2000);
    const upAt = Date.now();
    await up();
    const r = await client;
    assertHashOk(t, r, `${label}: the client that connected during the downtime`);
    const st = await inspectContainer(c.name);
    t.not(st.pid, oldPid, `${label}: the container has a new PID (${oldPid} -> ${st.pid})`);
    const restarted = await px.waitForLog((l) => l.msg === 'target restarted' && l.targetPid === st.pid, 10000, '"target restarted"').catch((e: Error) => e);
    t.notOk(restarted instanceof Error, `${label}: "target restarted" {targetPid: ${st.pid}}`, restarted instanceof Error ? { error: restarted.message } : {});
    t.comment(
      `${label}: the waiting client was answered ${Date.now() - upAt} ms after the container was started again ` +
        `(${Date.now() - connected} ms after it connected); downtimeMs=${restarted instanceof Error ? 'n/a' : JSON.stringify(restarted.downtimeMs)}`,
    );
    assertRunning(t, px, `${label}: nsproxy is still running`);
    t.equal(px.pid, nsproxyPid, `${label}: same nsproxy PID`);
    t.same(px.logs.filter((l) => l.msg === 'connect failed'), [], `${label}: no "connect failed"`);
    oldPid = st.pid;
  }
  await assertCleanStop(t, px);
});
