// Units from `nsproxy generate --user --scale-to-zero` under a real `systemd --user` manager of
// a rootless user (test/helpers/systemd-user.ts), in front of a rootless container whose unit
// comes from `podman generate systemd --new` (quadlet needs podman >= 4.4):
//   - installed as generated (only the nsproxy path is the test's wrapper), daemon-reload, the
//     socket started: the first client starts the container and nsproxy, waits while
//     --ready-exec runs inside the container, and is served;
//   - the generated hardening is in force (NoNewPrivs, seccomp) and nsproxy has CapEff 0;
//   - `systemctl --user reload` (the generated ExecReload=): same process, active again;
//   - a one-line drop-in overrides one option (Environment=NSPROXY_EXIT_IDLE_TIME=2s): nsproxy
//     exits 0 when idle and the container unit stops (the generated StopWhenUnneeded= drop-in).
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { requireProduct } from './helpers/checks';
import { echoPingPong, freePort } from './helpers/client';
import { NODE } from './helpers/env';
import { runCommand } from './helpers/procs';
import { libraryDirs } from './helpers/rootfs';
import { requireRootless, rootlessUser, sweepUserContainers, userFixtureMounts, userPodman } from './helpers/rootless-podman';
import { requireUserManager, startUserManager, sweepStaleUserManagers } from './helpers/systemd-user';
import { capEff } from './helpers/users';

const USER = 'nsproxy-gen'; // this file's own user
const CONTAINER = 'gen-echo';
const UNIT = `nsproxy-${CONTAINER}`;

function procStatus(pid: number, field: string): string {
  const m = new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? (m[1] as string).trim() : '';
}

t.test('generated units under a real systemd --user manager', async (t) => {
  if (!requireProduct(t) || !requireRootless(t) || !requireUserManager(t)) return;
  for (const s of sweepStaleUserManagers()) t.comment(`killed the user manager of an aborted run: ${s}`);
  const ru = await rootlessUser(t, USER);
  for (const s of await sweepUserContainers(ru, [CONTAINER])) t.comment(`removed a container of an aborted run: ${s}`);
  const mgr = await startUserManager(t, ru);
  await mgr.installContainerUnit(`${CONTAINER}.service`, CONTAINER, [...userFixtureMounts(ru, libraryDirs([NODE])), '--user', '70:70'], ['node', '/fixtures/server.js', '--mode', 'echo', '--listen', '127.0.0.1:8080']);

  const port = await freePort();
  const out = path.join(ru.scratch, 'generated');
  const gen = await runCommand(NODE, [
    ru.mainJs, 'generate', '--container', CONTAINER, '--to', '127.0.0.1:8080', '--listen', `127.0.0.1:${port}`, '--user', '--scale-to-zero',
    '--ready-exec', 'test -x /usr/bin/node', '--nsproxy', mgr.nsproxyBin, '--output-dir', out,
  ], { timeoutMs: 30000 });
  t.equal(gen.code, 0, 'nsproxy generate', { stderr: gen.stderr });
  const files = [`${UNIT}.socket`, `${UNIT}.service`, `${CONTAINER}.service.d/50-scale-to-zero.conf`];
  for (const f of files) mgr.install(f, fs.readFileSync(path.join(out, f), 'utf8'));
  await mgr.daemonReload();
  await mgr.systemctlOk(['start', `${UNIT}.socket`]);
  t.equal((await mgr.show(`${UNIT}.service`, ['ActiveState'])).ActiveState, 'inactive', 'nothing runs before the first client');

  const first = await echoPingPong(port, '127.0.0.1', ['hello\n'], '', 60000);
  t.same(first.replies, ['hello\n'], 'the first client starts the container and nsproxy, and is served');
  const svc = await mgr.show(`${UNIT}.service`, ['ActiveState', 'Type', 'MainPID', 'NRestarts', 'ExecReload']);
  t.equal(svc.ActiveState, 'active');
  t.equal(svc.Type, 'notify');
  t.equal(svc.NRestarts, '0', 'started once');
  const pid = Number(svc.MainPID);
  t.equal(capEff(pid), '0000000000000000', 'nsproxy has CapEff 0');
  t.equal(`${procStatus(pid, 'NoNewPrivs')}/${procStatus(pid, 'Seccomp')}`, '1/2', 'the generated hardening is in force (NoNewPrivs 1, Seccomp 2)');
  t.same(mgr.logs(pid).find((l) => l.msg === 'target ready')?.checks, ['tcp', 'exec'], '--ready-exec ran inside the rootless container, under the sandbox');

  const r = await mgr.systemctl(['reload', `${UNIT}.service`]);
  t.equal(r.code, 0, 'systemctl --user reload (the generated ExecReload=)', { stderr: r.stderr });
  await mgr.waitForLog((l) => l.msg === 'reloaded' && l.pid === pid, 30000, '"reloaded"');
  const after = await mgr.waitFor(`${UNIT}.service`, ['ActiveState', 'MainPID'], (x) => x.ActiveState === 'active', 30000, 'active after the reload');
  t.equal(after.MainPID, String(pid), 'the same process after the reload');
  t.same((await echoPingPong(port, '127.0.0.1', ['again\n'])).replies, ['again\n'], 'forwarding after the reload');

  // one option, one line: the generated 5min shortened by a drop-in, ExecStart= untouched
  mgr.install(`${UNIT}.service.d/60-idle.conf`, '[Service]\nEnvironment=NSPROXY_EXIT_IDLE_TIME=2s\n');
  await mgr.daemonReload();
  await mgr.systemctlOk(['restart', `${UNIT}.service`]);
  t.same((await echoPingPong(port, '127.0.0.1', ['idle soon\n'])).replies, ['idle soon\n']);
  const done = await mgr.waitFor(`${UNIT}.service`, ['ActiveState', 'Result', 'ExecMainStatus'], (x) => x.ActiveState === 'inactive' || x.ActiveState === 'failed', 30000, 'nsproxy exits when idle');
  t.equal(`${done.ActiveState}/${done.Result}/${done.ExecMainStatus}`, 'inactive/success/0', 'exit 0 after 2 s idle (the drop-in won over the generated 5min)');
  await mgr.waitFor(`${CONTAINER}.service`, ['ActiveState'], (x) => x.ActiveState === 'inactive', 30000, 'the container unit stops when unneeded');
  t.pass('the container unit stopped (generated StopWhenUnneeded=yes)');
  t.equal((await mgr.show(`${UNIT}.socket`, ['ActiveState'])).ActiveState, 'active', 'the socket still listens');
  t.same((await echoPingPong(port, '127.0.0.1', ['back\n'], '', 60000)).replies, ['back\n'], 'the next client starts both again');

  const s = await mgr.shutdown();
  t.same(s.problems, [], 'the manager and its units leave nothing behind');
  const ps = await userPodman(ru, ['ps', '-a', '--format', '{{.Names}}']);
  t.notMatch(ps.stdout, new RegExp(`^${CONTAINER}$`, 'm'), 'no container left');
});
