// The lab's units as root under Debian 13 (systemd 257 as PID 1, podman 5.4, real quadlet):
// test-postgresql.container in /etc/containers/systemd/, postgresql-activator.socket/.service in
// /etc/systemd/system/, all byte for byte as shipped in systemd/, nsproxy from `npm install -g`.
//   - quadlet generates test-postgresql.service; systemd-analyze verify accepts every unit;
//   - a cold psql starts the container and nsproxy; pgbench -S through the socket, 0 errors;
//   - the container's process is killed: its unit restarts it in place (RestartMode=direct) and
//     the same nsproxy (same MainPID, never restarted) follows the new container, waiting for
//     pg_isready (--ready-exec) again, so a client connecting meanwhile is served;
//   - `podman restart`, from a shell of the guest: nsproxy follows a container of its own, and
//     the quadlet container, which its unit then replaces; `systemctl restart` restarts nsproxy;
//   - ExecReload=: systemctl reload, the same nsproxy resolves the container again;
//   - HealthCmd= (podman healthcheck), Notify=healthy as a quadlet drop-in, --ready health;
//   - the scale-to-zero drop-ins: nsproxy exits when idle, the container stops, a client wakes both;
//   - nsproxy-blue.socket/.service: an `ip netns` namespace and a server in it (the runc pattern),
//     plain and with the hardened drop-in (a system user with CAP_SYS_ADMIN alone).
// Timings are reported with t.comment, never asserted.
import t from 'tap';
import { assertPgbenchClean } from '../helpers/postgres';
import { bootGuest, distroInputs, sleep, type Guest } from './guest';
import { count, importImages, installShipped, journalWhen, parseLog, pgbench, psql, unitDirs, type LogLine } from './lab';

const PG = 'test-postgresql';
const ACT = 'postgresql-activator.service';
const SOCK = 'postgresql-activator.socket';
const dirs = unitDirs(false);

let g: Guest | null = null;
function need(st: tap.Test): Guest | null {
  if (g === null) st.fail('the guest did not come up (see the first subtest)');
  return g;
}

async function logs(guest: Guest): Promise<LogLine[]> {
  return parseLog(await guest.journal(ACT));
}

/** The activator's journal once pred holds (or as it is after 30 s). */
function logsWhen(guest: Guest, pred: (l: LogLine[]) => boolean): Promise<LogLine[]> {
  return journalWhen(guest, ACT, false, pred);
}

async function containerPid(guest: Guest): Promise<number> {
  return Number((await guest.ok(['podman', 'inspect', '-f', '{{.State.Pid}}', PG])).trim());
}

async function stopUnits(guest: Guest, units: string[]): Promise<void> {
  const r = await guest.systemctl(['stop', ...units]);
  if (r.code !== 0) throw new Error(`systemctl stop ${units.join(' ')}: ${r.stderr}`);
}

t.test('Debian 13 boots with the shipped units installed for root', async (st) => {
  const inputs = distroInputs();
  if ('problem' in inputs) {
    st.fail(inputs.problem);
    return;
  }
  const guest = await bootGuest(t, 'rootful', inputs.cache, inputs.prefix);
  const versions = await guest.ok(['sh', '-c', 'systemctl --version | head -n1; podman --version; crun --version | head -n1; node --version; nsproxy --version']);
  st.comment(versions.trim().replace(/\n/g, '; '));
  st.match(versions, /^systemd 257 /m, 'systemd 257 is PID 1');
  st.match(versions, /^podman version 5\./m, 'podman 5');
  st.match(await guest.ok(['readlink', '-f', '/usr/local/bin/nsproxy']), /^\/usr\/local\/lib\/node_modules\/nsproxy\/dist\/main\.js$/m, 'nsproxy is npm install -g\'s link in /usr/local/bin');

  await importImages(guest, false);
  installShipped(guest, 'test-postgresql.container', `${dirs.quadlets}/test-postgresql.container`, false);
  for (const f of [SOCK, ACT]) installShipped(guest, f, `${dirs.units}/${f}`, false);
  guest.mkdir('/root/postgres'); // Volume=%h/postgres: the README's install step
  const reload = await guest.systemctl(['daemon-reload']);
  st.equal(reload.code, 0, 'daemon-reload (runs the quadlet generator)', { stderr: reload.stderr });
  const gen = await guest.show(`${PG}.service`, ['LoadState', 'SourcePath', 'FragmentPath', 'RestartMode', 'Type']);
  st.same(
    [gen.LoadState, gen.SourcePath, gen.FragmentPath, gen.RestartMode, gen.Type],
    ['loaded', `${dirs.quadlets}/test-postgresql.container`, `/run/systemd/generator/${PG}.service`, 'direct', 'notify'],
    'quadlet generated test-postgresql.service from the shipped .container (RestartMode=direct, Type=notify)',
  );
  const dry = await guest.exec(['/usr/libexec/podman/quadlet', '-dryrun']);
  st.equal(dry.code, 0, 'quadlet -dryrun: exit 0');
  st.notMatch(dry.stderr, /warn|error|unsupported/i, 'quadlet -dryrun: no warning', { stderr: dry.stderr });

  const verify = await guest.exec(['systemd-analyze', 'verify', '--man=no', `${dirs.units}/${SOCK}`, `${dirs.units}/${ACT}`, `/run/systemd/generator/${PG}.service`], { env: { SYSTEMD_LOG_LEVEL: 'notice' } });
  st.equal(verify.code, 0, 'systemd-analyze verify (systemd 257) accepts the socket, the activator and the generated container unit', { stderr: verify.stderr });
  st.equal(verify.stderr.trim(), '', 'with no warning', { stderr: verify.stderr });

  const start = await guest.systemctl(['start', SOCK]);
  st.equal(start.code, 0, `start ${SOCK}`, { stderr: start.stderr });
  const s = await guest.show(SOCK, ['ActiveState', 'SubState']);
  st.equal(`${s.ActiveState}/${s.SubState}`, 'active/listening', `${SOCK} listens`);
  for (const u of [ACT, `${PG}.service`]) st.equal((await guest.show(u, ['ActiveState'])).ActiveState, 'inactive', `${u}: not running before the first client`);
  g = guest;
});

t.test('a cold psql starts the container and nsproxy; pgbench -S through the socket', async (st) => {
  const guest = need(st);
  if (!guest) return;
  const t0 = Date.now();
  const r = await psql(guest, '127.0.0.1', 'select 42');
  st.comment(`cold start: the first query was answered ${Date.now() - t0} ms after connecting (container start, initdb, PostgreSQL, nsproxy)`);
  st.equal(r.code, 0, 'psql through 127.0.0.1:5432 exits 0', { stderr: r.stderr });
  st.equal(r.stdout.trim(), '42', 'the first client gets its answer');

  const a = await guest.show(ACT, ['ActiveState', 'Type', 'MainPID', 'NRestarts', 'StatusText']);
  st.equal(`${a.ActiveState}/${a.Type}/${a.NRestarts}`, 'active/notify/0', `${ACT}: active, Type=notify, started once`);
  st.equal(guest.readFile(`/proc/${a.MainPID}/comm`).trim(), 'node', `MainPID ${a.MainPID} is nsproxy`);
  st.match(a.StatusText, /^forwarding .*5432 to 127\.0\.0\.1:5432 in container test-postgresql/, `StatusText=${a.StatusText}`);
  const ready = (await logsWhen(guest, (l) => count(l, 'ready') > 0)).find((l) => l.msg === 'ready');
  st.equal(Number(ready?.fields.targetPid), await containerPid(guest), '"ready" names the container\'s PID');

  const init = await pgbench(guest, ['-i', '-s', '1']);
  st.equal(init.code, 0, 'pgbench -i through the socket', { output: init.stdout + init.stderr });
  const run = await pgbench(guest, ['-S', '-c4', '-j2', '-T5']);
  const sum = assertPgbenchClean(st, run, 'pgbench -S -c4 -j2 -T5');
  st.comment(`pgbench -S -c4 -j2 -T5 through postgresql-activator.socket and nsproxy in the guest: ${sum.tps} TPS`);
  st.equal((await guest.show(ACT, ['MainPID'])).MainPID, a.MainPID, 'the same nsproxy throughout');
});

t.test('RestartMode=direct: the container crashes, its unit restarts it, the same nsproxy follows', async (st) => {
  const guest = need(st);
  if (!guest) return;
  const before = await guest.show(ACT, ['MainPID', 'NRestarts']);
  const pgRestarts = Number((await guest.show(`${PG}.service`, ['NRestarts'])).NRestarts);
  const cpid = await containerPid(guest);
  const restartedBefore = (await logs(guest)).filter((l) => l.msg === 'target restarted').length;
  const t0 = Date.now();
  await guest.ok(['kill', '-KILL', String(cpid)]); // PostgreSQL, the container's main process
  // a client that connects while the container is down (RestartSec=10s) waits in the backlog
  const r = await psql(guest, '127.0.0.1', 'select 7');
  const recoveryMs = Date.now() - t0;
  st.equal(r.stdout.trim(), '7', 'a client connecting during the restart is served: nsproxy waited for pg_isready (--ready-exec) again', { stderr: r.stderr });
  const pg = await guest.waitFor(`${PG}.service`, ['NRestarts', 'ActiveState'], (x) => x.ActiveState === 'active', 60000, 'active again (ExecStartPost= done)');
  const r2 = await psql(guest, '127.0.0.1', 'select 8');
  st.equal(r2.stdout.trim(), '8', 'once the unit is active again, a client is served', { stderr: r2.stderr });
  st.equal(Number(pg.NRestarts), pgRestarts + 1, 'systemd restarted the container unit (Restart=always)');
  const after = await guest.show(ACT, ['MainPID', 'NRestarts', 'ActiveState']);
  st.equal(after.MainPID, before.MainPID, `the activator kept its MainPID ${before.MainPID}: it was not restarted`);
  st.equal(`${after.ActiveState}/${after.NRestarts}`, 'active/0', 'and it is active, NRestarts 0');
  const newPid = await containerPid(guest);
  st.not(newPid, cpid, `the container has a new PID ${newPid}`);
  const restarted = (await logsWhen(guest, (l) => count(l, 'target restarted') > restartedBefore)).filter((l) => l.msg === 'target restarted');
  st.equal(restarted.length, restartedBefore + 1, 'nsproxy logged "target restarted" once');
  st.equal(Number(restarted.at(-1)?.fields.targetPid), newPid, 'with the new container PID');
  const ready = (await logs(guest)).filter((l) => l.msg === 'target ready').at(-1);
  st.match(ready?.fields.checks ?? '', /exec/, `after the restart, readiness included --ready-exec pg_isready (checks=${ready?.fields.checks})`);
  st.comment(`RestartMode=direct: the client that connected after the kill was answered after ${recoveryMs} ms (RestartSec=10s + start); nsproxy downtime ${restarted.at(-1)?.fields.downtimeMs} ms`);
});

t.test('podman restart from a shell of the guest: nsproxy follows the container, the data arrives intact', async (st) => {
  const guest = need(st);
  if (!guest) return;
  // a container of its own (not one of a unit: see the next test), serving 1 MB of random bytes
  await guest.ok(['sh', '-c', 'mkdir -p /srv/www && head -c 1048576 /dev/urandom >/srv/www/blob']);
  const want = (await guest.ok(['sha256sum', '/srv/www/blob'])).split(' ')[0];
  await guest.ok(['podman', 'run', '-d', '--name', 'web', '--network', 'none', '-v', '/srv/www:/srv:ro', '--entrypoint', 'httpd', 'docker.io/library/postgres:16', '-f', '-p', '127.0.0.1:8080', '-h', '/srv']);
  await guest.ok(['systemd-run', '--quiet', '--unit=nsproxy-web', '-p', 'Type=notify', '/usr/local/bin/nsproxy', '--container', 'web', '--to', '127.0.0.1:8080', '--listen', '127.0.0.1:8081']);
  const fetch = async (): Promise<string> => (await guest.ok(['sh', '-c', 'busybox wget -q -O - http://127.0.0.1:8081/blob | sha256sum'])).split(' ')[0];
  st.equal(await fetch(), want, '1 MB through nsproxy, SHA-256 matches');
  const main = (await guest.show('nsproxy-web.service', ['MainPID'])).MainPID;
  const cpid = Number((await guest.ok(['podman', 'inspect', '-f', '{{.State.Pid}}', 'web'])).trim());
  const webBefore = count(parseLog(await guest.journal('nsproxy-web.service')), 'target restarted');

  const r = await guest.exec(['podman', 'restart', 'web']);
  st.equal(r.code, 0, 'podman restart exits 0 (it ran in a scope of the guest: see guest.ts)', { stderr: r.stderr });
  const npid = Number((await guest.ok(['podman', 'inspect', '-f', '{{.State.Pid}}', 'web'])).trim());
  st.not(npid, cpid, `the container has a new PID ${npid}`);
  const lines = await journalWhen(guest, 'nsproxy-web.service', false, (l) => count(l, 'target restarted') > webBefore);
  const restarted = lines.filter((l) => l.msg === 'target restarted');
  st.equal(Number(restarted.at(-1)?.fields.targetPid), npid, 'nsproxy logged "target restarted" with the new PID');
  st.equal(await fetch(), want, 'after the restart: 1 MB through the same nsproxy, SHA-256 matches');
  st.equal((await guest.show('nsproxy-web.service', ['MainPID'])).MainPID, main, 'the same nsproxy process');
  st.comment(`podman restart: nsproxy downtime ${restarted.at(-1)?.fields.downtimeMs} ms`);
  await guest.ok(['systemctl', 'stop', 'nsproxy-web.service']);
  await guest.ok(['podman', 'rm', '-f', '-t', '0', 'web']);
});

t.test('podman restart of the quadlet container: its unit replaces it, nsproxy follows both', async (st) => {
  const guest = need(st);
  if (!guest) return;
  const before = await guest.show(ACT, ['MainPID']);
  const cpid = await containerPid(guest);
  const unitBefore = await guest.show(`${PG}.service`, ['NRestarts']);
  const restartedBefore = (await logs(guest)).filter((l) => l.msg === 'target restarted').length;
  const r = await guest.exec(['podman', 'restart', PG]);
  st.equal(r.code, 0, 'podman restart exits 0', { stderr: r.stderr });
  // The restarted container has a new conmon outside test-postgresql.service: the unit sees its
  // main process (the old conmon) exit, removes the container (ExecStopPost=podman rm) and,
  // Restart=always, starts a new one after RestartSec.
  const unit = await guest.waitFor(`${PG}.service`, ['NRestarts', 'ActiveState'], (x) => Number(x.NRestarts) > Number(unitBefore.NRestarts) && x.ActiveState === 'active', 60000, 'the unit replaces the restarted container');
  st.equal(Number(unit.NRestarts), Number(unitBefore.NRestarts) + 1, 'the container unit restarted once');
  const q = await psql(guest, '127.0.0.1', 'select 9');
  st.equal(q.stdout.trim(), '9', 'a query afterwards is answered', { stderr: q.stderr });
  const now = await containerPid(guest);
  const restarted = (await logsWhen(guest, (l) => Number(l.filter((x) => x.msg === 'target restarted').at(-1)?.fields.targetPid) === now)).filter((l) => l.msg === 'target restarted').slice(restartedBefore);
  st.not(now, cpid, 'a new container');
  st.equal(Number(restarted.at(-1)?.fields.targetPid), now, 'nsproxy forwards to the current container');
  st.comment(`nsproxy followed ${restarted.length} restarts (${restarted.map((l) => `${l.fields.targetPid} after ${l.fields.downtimeMs} ms`).join(', ')})`);
  st.equal((await guest.show(ACT, ['MainPID'])).MainPID, before.MainPID, 'the same nsproxy all along');
});

t.test('systemctl restart test-postgresql: Requires= restarts nsproxy too, a client waits in the backlog', async (st) => {
  const guest = need(st);
  if (!guest) return;
  const before = await guest.show(ACT, ['MainPID']);
  const r = await guest.systemctl(['restart', `${PG}.service`]);
  st.equal(r.code, 0, 'systemctl restart test-postgresql', { stderr: r.stderr });
  const q = await psql(guest, '127.0.0.1', 'select 10');
  st.equal(q.stdout.trim(), '10', 'a query afterwards is answered', { stderr: q.stderr });
  const after = await guest.show(ACT, ['MainPID', 'ActiveState']);
  st.equal(after.ActiveState, 'active', 'the activator is active');
  st.not(after.MainPID, before.MainPID, 'with a new MainPID: an explicit restart of the container unit restarts its dependents');
});

t.test('systemctl reload (ExecReload=, SIGHUP): the same nsproxy resolves the container again', async (st) => {
  const guest = need(st);
  if (!guest) return;
  await psql(guest, '127.0.0.1', 'select 1'); // the activator runs
  const before = await guest.show(ACT, ['MainPID', 'NRestarts']);
  const reloadedBefore = count(await logs(guest), 'reloaded');
  const r = await guest.systemctl(['reload', ACT]);
  st.equal(r.code, 0, 'systemctl reload exits 0 (systemd waits for RELOADING=1 ... READY=1)', { stderr: r.stderr });
  const lines = await logsWhen(guest, (l) => count(l, 'reloaded') > reloadedBefore);
  const reloaded = lines.filter((l) => l.msg === 'reloaded').at(-1);
  st.equal(Number(reloaded?.fields.targetPid), await containerPid(guest), '"reloaded" names the container\'s PID');
  const after = await guest.show(ACT, ['MainPID', 'NRestarts', 'ActiveState']);
  st.same([after.MainPID, after.NRestarts, after.ActiveState], [before.MainPID, before.NRestarts, 'active'], 'the same nsproxy, active, not restarted');
  const q = await psql(guest, '127.0.0.1', 'select 11');
  st.equal(q.stdout.trim(), '11', 'a query after the reload is answered', { stderr: q.stderr });
});

t.test('HealthCmd=, Notify=healthy (podman 5) and --ready health', async (st) => {
  const guest = need(st);
  if (!guest) return;
  const gen = await guest.show(`${PG}.service`, ['ExecStart']);
  st.match(gen.ExecStart, /--health-cmd pg_isready -h 127\.0\.0\.1/, 'quadlet turned HealthCmd= into --health-cmd');
  const hc = await guest.exec(['podman', 'healthcheck', 'run', PG]);
  st.equal(hc.code, 0, 'podman healthcheck run: healthy', { stderr: hc.stderr, stdout: hc.stdout });
  const status = await guest.ok(['podman', 'inspect', '-f', '{{.State.Health.Status}}', PG]);
  st.equal(status.trim(), 'healthy', 'podman inspect: State.Health.Status healthy');

  // what the shipped file's comment tells podman >= 5 users to do (here as a quadlet drop-in,
  // the shipped file untouched), and nsproxy reading podman's health status too
  await guest.ok(['systemctl', 'stop', ACT, `${PG}.service`]);
  guest.writeFile(`${dirs.quadlets}/test-postgresql.container.d/50-notify-healthy.conf`, '[Container]\nNotify=healthy\n');
  guest.writeFile(`${dirs.units}/postgresql-activator.service.d/60-ready-health.conf`, '[Service]\nEnvironment=NSPROXY_READY=health\n');
  await guest.ok(['systemctl', 'daemon-reload']);
  const unit = await guest.show(`${PG}.service`, ['ExecStart']);
  st.match(unit.ExecStart, /--sdnotify=healthy/, 'Notify=healthy: quadlet runs podman with --sdnotify=healthy');
  const t0 = Date.now();
  const r = await psql(guest, '127.0.0.1', 'select 12');
  st.equal(r.stdout.trim(), '12', 'a cold client is served (the unit is started once the health check passed)', { stderr: r.stderr });
  st.comment(`Notify=healthy + --ready health: cold start ${Date.now() - t0} ms`);
  const lastReady = (l: LogLine[]): LogLine | undefined => l.filter((x) => x.msg === 'target ready').at(-1);
  const ready = lastReady(await logsWhen(guest, (l) => /health/.test(lastReady(l)?.fields.checks ?? '')));
  st.match(ready?.fields.checks ?? '', /health/, `nsproxy waited for podman's health status too (checks=${ready?.fields.checks})`);
  const before = await guest.show(ACT, ['MainPID']);
  await guest.ok(['kill', '-KILL', String(await containerPid(guest))]);
  const c = await psql(guest, '127.0.0.1', 'select 13');
  st.equal(c.stdout.trim(), '13', 'Notify=healthy + RestartMode=direct: a client connecting during a crash restart is served', { stderr: c.stderr });
  st.equal((await guest.show(ACT, ['MainPID'])).MainPID, before.MainPID, 'by the same nsproxy');
  await guest.ok(['systemctl', 'stop', ACT, `${PG}.service`]);
  await guest.ok(['rm', '-r', `${dirs.quadlets}/test-postgresql.container.d`, `${dirs.units}/postgresql-activator.service.d`]);
  await guest.ok(['systemctl', 'daemon-reload']);
});

t.test('scale to zero: nsproxy exits when idle, the container stops, the next client starts both', async (st) => {
  const guest = need(st);
  if (!guest) return;
  await stopUnits(guest, [ACT, `${PG}.service`]);
  installShipped(guest, 'scale-to-zero/test-postgresql.service.d/50-scale-to-zero.conf', `${dirs.units}/test-postgresql.service.d/50-scale-to-zero.conf`, false);
  installShipped(guest, 'scale-to-zero/postgresql-activator.service.d/50-scale-to-zero.conf', `${dirs.units}/postgresql-activator.service.d/50-scale-to-zero.conf`, false);
  // the shipped 5min is too long to wait for: one line in a drop-in of the test's own, after
  // the shipped one (what the NSPROXY_* variables are for)
  guest.writeFile(`${dirs.units}/postgresql-activator.service.d/90-test-idle.conf`, '[Service]\nEnvironment=NSPROXY_EXIT_IDLE_TIME=3s\n');
  await guest.ok(['systemctl', 'daemon-reload']);
  const act = await guest.show(ACT, ['Environment', 'ExecStart']);
  st.match(act.Environment, /(^| )NSPROXY_EXIT_IDLE_TIME=3s( |$)/, 'the later drop-in wins: NSPROXY_EXIT_IDLE_TIME=3s');
  st.match(act.ExecStart, /--ready-exec/, 'ExecStart= is still the unit\'s own (with --ready-exec)');
  st.equal((await guest.show(`${PG}.service`, ['StopWhenUnneeded'])).StopWhenUnneeded, 'yes', 'StopWhenUnneeded=yes on the quadlet-generated unit');
  for (const round of [1, 2]) {
    const t0 = Date.now();
    const r = await psql(guest, '127.0.0.1', `select ${round}`);
    st.equal(r.stdout.trim(), String(round), `round ${round}: a client starts the container and nsproxy and is answered`, { stderr: r.stderr });
    st.comment(`scale-to-zero round ${round}: cold start ${Date.now() - t0} ms`);
    const done = await guest.waitFor(ACT, ['ActiveState', 'Result', 'ExecMainStatus'], (x) => x.ActiveState === 'inactive' || x.ActiveState === 'failed', 30000, 'nsproxy exits when idle');
    st.equal(`${done.ActiveState}/${done.Result}/${done.ExecMainStatus}`, 'inactive/success/0', `round ${round}: nsproxy exited 0 when idle`);
    st.ok(count(await logsWhen(guest, (l) => count(l, 'idle, exiting') >= round), 'idle, exiting') >= round, `round ${round}: "idle, exiting" in the journal`);
    await guest.waitFor(`${PG}.service`, ['ActiveState'], (x) => x.ActiveState === 'inactive', 60000, 'the container stops when unneeded');
    const ps = await guest.ok(['podman', 'ps', '-a', '--format', '{{.Names}}']);
    st.notMatch(ps, new RegExp(`^${PG}$`, 'm'), `round ${round}: the container is gone`);
    st.equal((await guest.show(SOCK, ['ActiveState'])).ActiveState, 'active', `round ${round}: the socket still listens`);
    await sleep(100);
  }
});

t.test('nsproxy-blue: a namespace made with ip netns before its server (the runc pattern)', async (st) => {
  const guest = need(st);
  if (!guest) return;
  await guest.ok(['sh', '-c', 'mkdir -p /srv/blue && head -c 1048576 /dev/urandom >/srv/blue/blob']);
  const want = (await guest.ok(['sha256sum', '/srv/blue/blob'])).split(' ')[0];
  // the guest's own namespace "blue", with 10.0.0.2 on its loopback: no traffic leaves the guest
  await guest.ok(['ip', 'netns', 'add', 'blue']);
  await guest.ok(['ip', '-n', 'blue', 'link', 'set', 'lo', 'up']);
  await guest.ok(['ip', '-n', 'blue', 'addr', 'add', '10.0.0.2/32', 'dev', 'lo']);
  await guest.ok(['systemd-run', '--quiet', '--unit=blue-httpd', '-p', 'NetworkNamespacePath=/run/netns/blue', 'busybox', 'httpd', '-f', '-p', '10.0.0.2:80', '-h', '/srv/blue']);
  for (const f of ['nsproxy-blue.socket', 'nsproxy-blue.service']) installShipped(guest, f, `${dirs.units}/${f}`, false);
  await guest.ok(['systemctl', 'daemon-reload']);
  const verify = await guest.exec(['systemd-analyze', 'verify', '--man=no', `${dirs.units}/nsproxy-blue.socket`, `${dirs.units}/nsproxy-blue.service`], { env: { SYSTEMD_LOG_LEVEL: 'notice' } });
  st.equal(`${verify.code}${verify.stderr.trim()}`, '0', 'systemd-analyze verify: nsproxy-blue.socket/.service, no warning', { stderr: verify.stderr });
  await guest.ok(['systemctl', 'start', 'nsproxy-blue.socket']);
  const got = await guest.ok(['sh', '-c', 'busybox wget -q -O - http://127.0.0.1:8080/blob | sha256sum']);
  st.equal(got.split(' ')[0], want, '1 MB from 10.0.0.2:80 in netns blue through 127.0.0.1:8080, SHA-256 matches');
  const a = await guest.show('nsproxy-blue.service', ['ActiveState', 'Type', 'StatusText']);
  st.same([a.ActiveState, a.Type], ['active', 'notify'], 'nsproxy-blue.service: active, Type=notify');
  st.match(a.StatusText, /to 10\.0\.0\.2:80 in netns blue/, `StatusText=${a.StatusText}`);

  // the hardened system unit: a system user, CAP_SYS_ADMIN only (as its header says to install it)
  await guest.ok(['useradd', '--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'nsproxy']);
  await guest.ok(['systemctl', 'stop', 'nsproxy-blue.service']);
  installShipped(guest, 'hardened/nsproxy-blue.service.d/50-hardening.conf', `${dirs.units}/nsproxy-blue.service.d/50-hardening.conf`, false);
  await guest.ok(['systemctl', 'daemon-reload']);
  const hard = await guest.ok(['sh', '-c', 'busybox wget -q -O - http://127.0.0.1:8080/blob | sha256sum']);
  st.equal(hard.split(' ')[0], want, 'hardened: 1 MB through nsproxy-blue, SHA-256 matches');
  const h = await guest.show('nsproxy-blue.service', ['MainPID', 'NRestarts']);
  const pid = Number(h.MainPID);
  st.equal(h.NRestarts, '0', 'hardened: started at the first try');
  st.equal(guest.procStatus(pid, 'Uid').split(/\s+/)[0], (await guest.ok(['id', '-u', 'nsproxy'])).trim(), 'hardened: runs as the system user nsproxy');
  st.equal(guest.procStatus(pid, 'CapEff'), '0000000000200000', 'hardened: CapEff is CAP_SYS_ADMIN alone');
  st.equal(`${guest.procStatus(pid, 'NoNewPrivs')}/${guest.procStatus(pid, 'Seccomp')}`, '1/2', 'hardened: NoNewPrivs 1, Seccomp 2');
  await guest.ok(['systemctl', 'stop', 'nsproxy-blue.socket', 'nsproxy-blue.service', 'blue-httpd.service']);
  await guest.ok(['ip', 'netns', 'del', 'blue']);
});

t.test('shutdown: the guest powers off', async (st) => {
  const guest = need(st);
  if (!guest) return;
  const e = await guest.stop();
  st.same(e, { code: 0, signal: null, killed: false }, 'systemd-nspawn exits 0 after the guest powered off', { console: guest.consoleTail() });
  g = null;
});
