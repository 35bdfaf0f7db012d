// The zero-capability path for readiness and diagnostics, and privilege by capability:
//   - an ordinary user (CapEff 0) runs nsproxy --ready-exec against its rootless container (the
//     service runs as uid 70 in there): the command runs inside, as that uid, through a forked
//     child that joins the container's user namespace first; nsproxy waits until it succeeds,
//     at start and again after `podman restart`;
//   - `nsproxy check` as that user: access "helper", the owner, listeners from /proc/PID/net/tcp
//     (no entering), addresses and the --ready-exec run from inside;
//   - check against a root-owned namespace: refused, exit 1, and says why;
//   - the same user given CAP_SYS_ADMIN as an ambient capability (what AmbientCapabilities= does
//     for User=nsproxy) is privileged: it enters the root-owned namespace from its own threads
//     and forwards, where without it nsproxy refuses (exit 2).
import t from 'tap';
import { assertOneStderrLine, requireProduct } from './helpers/checks';
import { echoPingPong } from './helpers/client';
import { NODE, type TestLike } from './helpers/env';
import { makeNetns, startServerInNetns } from './helpers/namespaces';
import { startNsproxy, spawnNsproxy, type Nsproxy } from './helpers/nsproxy';
import { sleep, waitForListenIn } from './helpers/podman';
import { runCommand } from './helpers/procs';
import { libraryDirs } from './helpers/rootfs';
import { requireRootless, rootlessUser, runUserContainer, sweepUserContainers, userFixtureMounts, userPodmanOk, type RootlessUser } from './helpers/rootless-podman';
import { capEff } from './helpers/users';
import type { CheckReport } from '../src/commands/check-report';

const USER = 'nsproxy-rdy'; // this file's own user
const PORT = 8080;
const TO = `127.0.0.1:${PORT}`;

async function echoContainer(t: TestLike, ru: RootlessUser, name: string): Promise<number> {
  const c = await runUserContainer(t, ru, {
    name,
    args: [...userFixtureMounts(ru, libraryDirs([NODE])), '--user', '70:70', '--workdir', '/tmp', '--hostname', 'rootless', '--tmpfs', '/tmp:mode=1777'],
    cmd: ['node', '/fixtures/server.js', '--mode', 'echo', '--listen', TO],
  });
  await waitForListenIn(c.pid, PORT, 20000, `the echo server in ${name}`);
  return c.pid;
}

function asUser(ru: RootlessUser, args: string[]) {
  return runCommand(ru.asUserEnv[0] as string, [...ru.asUserEnv.slice(1), NODE, ru.mainJs, ...args], { timeoutMs: 60000 });
}

t.test('rootless: --ready-exec and nsproxy check as the owner, with no capabilities', async (t) => {
  if (!requireProduct(t) || !requireRootless(t)) return;
  const ru = await rootlessUser(t, USER);
  for (const s of await sweepUserContainers(ru, [])) t.comment(`removed a container of an aborted run: ${s}`);
  const name = `nsproxy-t-${process.pid}-ready`;
  const pid = await echoContainer(t, ru, name);

  const c = await asUser(ru, ['check', '--container', name, '--to', TO, '--ready-exec', `sh -c 'id -u; hostname; pwd; echo $$'`, '--json']);
  t.equal(c.code, 0, 'check: exit 0', { stdout: c.stdout, stderr: c.stderr });
  const report = JSON.parse(c.stdout || '{}') as CheckReport;
  t.equal(report.target.access, 'helper', 'access through the helper (no CAP_SYS_ADMIN)');
  t.equal(report.target.ownerUid, ru.uid, 'the namespace belongs to the user');
  t.equal(report.listeningSource, `/proc/${pid}/net/tcp{,6}`, 'listeners from /proc, without entering');
  t.ok(report.listening.some((l) => l.address === TO), `${TO} is listening`, { listening: report.listening });
  t.equal(report.probes[0]?.accepted, true, 'the probe from inside was accepted');
  t.ok(report.addresses.some((a) => a.address === '127.0.0.1'), 'addresses read from inside');
  const [uid, hostname, cwd, shellPid] = (report.readyExec?.output ?? '').trim().split('\n');
  t.equal(uid, '70', 'the command ran as the container user, uid 70 inside');
  t.equal(hostname, 'rootless', 'in its uts namespace');
  t.equal(cwd, '/tmp', 'in its working directory');
  t.ok(Number(shellPid) < 50, `in its pid namespace (PID ${shellPid})`);

  // the daemon: not ready until the marker exists, at start and after a restart
  const px: Nsproxy = spawnNsproxy(t, ['--container', name, '--to', TO, '--listen', '127.0.0.1:0', '--ready-exec', 'test -e /tmp/ready'], {
    wrapper: ru.asUserEnv,
    mainJs: ru.mainJs,
    readyTimeoutMs: 60000,
  });
  await px.waitForLog((l) => l.msg === 'waiting for target' && l.check === 'exec', 30000, 'waiting for --ready-exec');
  t.equal(capEff(px.pid), '0000000000000000', 'nsproxy runs with CapEff 0');
  await userPodmanOk(ru, ['exec', name, 'touch', '/tmp/ready']);
  await px.ready();
  const port = px.listening[0]?.port as number;
  t.same((await echoPingPong(port, '127.0.0.1', ['one\n'])).replies, ['one\n'], 'forwarding once ready');

  await userPodmanOk(ru, ['restart', '-t', '0', name]);
  await px.waitForLog((l) => l.msg === 'target exited', 30000, '"target exited"');
  const waitsAfterExit = () => {
    const logs = px.logs;
    const exited = logs.findIndex((l) => l.msg === 'target exited');
    return logs.some((l, i) => i > exited && l.msg === 'waiting for target' && l.check === 'exec');
  };
  for (let i = 0; i < 300 && !waitsAfterExit(); i++) await sleep(100);
  t.ok(waitsAfterExit(), 'after the restart nsproxy waits for --ready-exec again (a new helper in the new namespaces)');
  t.notOk(px.logs.some((l) => l.msg === 'target restarted'), 'and does not resume before it succeeds');
  await userPodmanOk(ru, ['exec', name, 'touch', '/tmp/ready']);
  await px.waitForLog((l) => l.msg === 'target restarted', 30000, '"target restarted"');
  t.same((await echoPingPong(port, '127.0.0.1', ['two\n'])).replies, ['two\n'], 'forwarding after the restart');
  t.equal(await px.stop(), 0, 'clean stop');
});

t.test('privilege by capability: a root-owned namespace', async (t) => {
  if (!requireProduct(t) || !requireRootless(t)) return;
  const ru = await rootlessUser(t, USER);
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'echo', [TO]);

  const refused = await asUser(ru, ['check', '--netns', ns, '--to', TO]);
  t.equal(refused.code, 1, 'check as the ordinary user: exit 1');
  t.match(refused.stdout, /^access {5}refused: the network namespace of netns \S+ belongs to uid 0, not to you/m, 'access: refused, with the reason');
  const plain = await asUser(ru, ['--netns', ns, '--to', TO, '--listen', '127.0.0.1:0']);
  assertOneStderrLine(t, plain, 2);
  t.match(plain.stderr, /belongs to uid 0, not to you \(uid \d+\); run nsproxy as uid 0, or with CAP_SYS_ADMIN \(root\)/);

  // the same user with CAP_SYS_ADMIN as an ambient capability, as AmbientCapabilities= gives it
  const withCap = ['setpriv', '--reuid', String(ru.uid), '--regid', String(ru.gid), '--init-groups', '--inh-caps', '+sys_admin', '--ambient-caps', '+sys_admin', '--'];
  const checked = await runCommand(withCap[0] as string, [...withCap.slice(1), NODE, ru.mainJs, 'check', '--netns', ns, '--to', TO, '--json'], { timeoutMs: 60000 });
  t.equal(checked.code, 0, 'check with ambient CAP_SYS_ADMIN: exit 0', { stdout: checked.stdout, stderr: checked.stderr });
  t.equal((JSON.parse(checked.stdout || '{}') as CheckReport).target.access, 'in-thread', 'access: in-thread, as root would');
  const px = await startNsproxy(t, ['--netns', ns, '--to', TO, '--listen', '127.0.0.1:0'], { wrapper: withCap, mainJs: ru.mainJs });
  t.equal(capEff(px.pid), '0000000000200000', 'nsproxy runs as the user with CAP_SYS_ADMIN only');
  t.same((await echoPingPong(px.listening[0]?.port as number, '127.0.0.1', ['cap\n'])).replies, ['cap\n'], 'and forwards into the root-owned namespace');
  t.equal(await px.stop(), 0, 'clean stop');
});
