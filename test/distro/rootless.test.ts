// The lab as its lingering user runs it, under Debian 13 (systemd 257, podman 5.4, real quadlet,
// pasta): the user's ~/.config/containers/systemd/ holds test-postgresql.container and
// pgadmin.container, ~/.config/systemd/user/ the activator sockets and services, all byte for
// byte as shipped in systemd/; nsproxy is /usr/local/bin/nsproxy from `npm install -g`.
//   - quadlet generates both container units for the user manager; systemd-analyze --user
//     verify accepts every unit;
//   - a cold psql starts the rootless container and nsproxy, which runs as the user with no
//     capability at all; pgbench -S through the socket, 0 errors;
//   - the container crashes: RestartMode=direct, the same nsproxy follows and waits for
//     pg_isready (--ready-exec, run inside the rootless container as its user);
//   - lab step 2: one HTTP request to pgadmin-web.socket starts the pgAdmin container (a
//     stand-in image: pgAdmin is not installable offline), which reaches PostgreSQL only through
//     postgresql-activator-unix.socket: all four units start from zero;
//   - the hardened drop-in: its sandbox is in force and everything works;
//   - pasta: nsproxy forwards into a rootless container on podman's default (pasta) network.
import * as fs from 'node:fs';
import t from 'tap';
import { assertPgbenchClean } from '../helpers/postgres';
import { GUEST_UID, GUEST_USER, USER_HOME, USER_RUNTIME, bootGuest, distroInputs, type Guest } from './guest';
import { count, importImages, installShipped, journalWhen, pgbench, psql, unitDirs } from './lab';

const PG = 'test-postgresql';
const ACT = 'postgresql-activator.service';
const UNITS = ['postgresql-activator.socket', ACT, 'postgresql-activator-unix.socket', 'pgadmin-web.socket', 'pgadmin-web.service'];
const dirs = unitDirs(true);
const ZERO_CAPS = '0000000000000000';

let g: Guest | null = null;
function need(st: tap.Test): Guest | null {
  if (g === null) st.fail('the guest did not come up (see the first subtest)');
  return g;
}


async function containerPid(guest: Guest, name: string): Promise<number> {
  return Number((await guest.ok(['podman', 'inspect', '-f', '{{.State.Pid}}', name], { user: true })).trim());
}

/** Guest PIDs of the nsproxy-helper children of a process. */
async function helpers(guest: Guest, pid: string): Promise<string[]> {
  const r = await guest.exec(['pgrep', '-P', pid, '-x', 'nsproxy-helper']);
  return r.stdout.split('\n').filter((x) => x);
}

async function stopUnits(guest: Guest, units: string[]): Promise<void> {
  const r = await guest.systemctl(['stop', ...units], true);
  if (r.code !== 0) throw new Error(`systemctl --user stop ${units.join(' ')}: ${r.stderr}`);
}

t.test('Debian 13 boots; the lingering user has the shipped units and quadlets', async (st) => {
  const inputs = distroInputs();
  if ('problem' in inputs) {
    st.fail(inputs.problem);
    return;
  }
  const guest = await bootGuest(t, 'rootless', inputs.cache, inputs.prefix);
  await guest.ok(['loginctl', 'enable-linger', GUEST_USER]); // the README's first step, as root
  await guest.waitFor(`user@${GUEST_UID}.service`, ['ActiveState'], (x) => x.ActiveState === 'active', 60000, 'the user manager starts');
  const mgr = await guest.exec(['systemctl', '--user', 'is-system-running', '--wait'], { user: true });
  st.match(mgr.stdout.trim(), /^(running|degraded)$/, `the user manager of the lingering user runs: ${mgr.stdout.trim()}`, { stderr: mgr.stderr });
  const info = await guest.ok(['podman', 'info', '--format', '{{.Host.Security.Rootless}} {{.Host.RootlessNetworkCmd}} {{.Host.OCIRuntime.Name}} {{.Version.Version}}'], { user: true });
  st.match(info.trim(), /^true pasta crun 5\./, `rootless podman, pasta by default, crun: ${info.trim()}`);

  await importImages(guest, true);
  for (const f of ['test-postgresql.container', 'pgadmin.container']) installShipped(guest, f, `${dirs.quadlets}/${f}`, true);
  for (const f of UNITS) installShipped(guest, f, `${dirs.units}/${f}`, true);
  // the README's install steps: the data directory, pgAdmin's server list
  guest.mkdir(`${USER_HOME}/postgres`, { user: true });
  installShipped(guest, 'pgadmin-servers.json', `${USER_HOME}/pgadmin/servers.json`, true);
  const reload = await guest.systemctl(['daemon-reload'], true);
  st.equal(reload.code, 0, 'systemctl --user daemon-reload (runs the quadlet user generator)', { stderr: reload.stderr });
  for (const f of ['test-postgresql', 'pgadmin']) {
    const u = await guest.show(`${f}.service`, ['LoadState', 'SourcePath'], true);
    st.same([u.LoadState, u.SourcePath], ['loaded', `${dirs.quadlets}/${f}.container`], `quadlet generated ${f}.service for the user`);
  }
  const dry = await guest.exec(['/usr/libexec/podman/quadlet', '-dryrun', '-user'], { user: true });
  st.equal(dry.code, 0, 'quadlet -dryrun -user: exit 0');
  st.notMatch(dry.stderr, /warn|error|unsupported/i, 'quadlet -dryrun -user: no warning', { stderr: dry.stderr });
  const gen = `${USER_RUNTIME}/systemd/generator`;
  const verify = await guest.exec(['systemd-analyze', '--user', 'verify', '--man=no', ...UNITS.map((u) => `${dirs.units}/${u}`), `${gen}/test-postgresql.service`, `${gen}/pgadmin.service`], { user: true, env: { SYSTEMD_LOG_LEVEL: 'notice' } });
  st.equal(verify.code, 0, 'systemd-analyze --user verify (systemd 257) accepts every unit and both generated container units', { stderr: verify.stderr });
  st.equal(verify.stderr.trim(), '', 'with no warning', { stderr: verify.stderr });

  const start = await guest.systemctl(['start', 'postgresql-activator.socket', 'postgresql-activator-unix.socket'], true);
  st.equal(start.code, 0, 'start both PostgreSQL sockets', { stderr: start.stderr });
  for (const u of [ACT, `${PG}.service`]) st.equal((await guest.show(u, ['ActiveState'], true)).ActiveState, 'inactive', `${u}: not running before the first client`);
  g = guest;
});

t.test('a cold psql starts the rootless container and nsproxy, which has no capability', async (st) => {
  const guest = need(st);
  if (!guest) return;
  const t0 = Date.now();
  const r = await psql(guest, '127.0.0.1', 'select 42');
  st.comment(`cold start: the first query was answered ${Date.now() - t0} ms after connecting`);
  st.equal(r.stdout.trim(), '42', 'psql through the user manager\'s socket is answered', { stderr: r.stderr });
  const a = await guest.show(ACT, ['ActiveState', 'MainPID', 'NRestarts', 'StatusText'], true);
  st.equal(`${a.ActiveState}/${a.NRestarts}`, 'active/0', `${ACT}: active, started once`);
  st.equal(guest.procStatus(Number(a.MainPID), 'Uid').split(/\s+/)[0], String(GUEST_UID), 'nsproxy runs as the user');
  for (const c of ['CapPrm', 'CapEff', 'CapAmb']) st.equal(guest.procStatus(Number(a.MainPID), c), ZERO_CAPS, `${c} 0`);
  // systemd 257's user@.service keeps CAP_WAKE_ALARM inheritable (for the user's timers); with
  // nothing permitted or ambient it grants nothing
  st.comment(`CapInh ${guest.procStatus(Number(a.MainPID), 'CapInh')} (inherited from the user manager)`);
  const hs = await helpers(guest, a.MainPID);
  st.ok(hs.length >= 1, 'it reaches the rootless container through an nsproxy-helper child');
  const userns = (pid: string): string => fs.readlinkSync(guest.hostPath(`/proc/${pid}/ns/user`));
  const cpid = String(await containerPid(guest, PG));
  for (const h of hs) st.equal(userns(h), userns(cpid), `nsproxy-helper ${h} joined the container's user namespace (it has capabilities only there)`);
  st.not(userns(a.MainPID), userns(cpid), 'nsproxy itself stays in the init user namespace');
  const lines = await journalWhen(guest, ACT, true, (l) => count(l, 'ready') > 0);
  st.same(lines.filter((l) => l.msg === 'listening').map((l) => l.fields.name).sort(), ['postgresql', 'postgresql-unix'], 'nsproxy got both sockets, by name');
  st.equal(Number(lines.find((l) => l.msg === 'ready')?.fields.targetPid), await containerPid(guest, PG), '"ready" names the container\'s PID');
  st.match(a.StatusText, /^forwarding .* to 127\.0\.0\.1:5432 in container test-postgresql/, `StatusText=${a.StatusText}`);

  const init = await pgbench(guest, ['-i', '-s', '1']);
  st.equal(init.code, 0, 'pgbench -i', { output: init.stdout + init.stderr });
  const sum = assertPgbenchClean(st, await pgbench(guest, ['-S', '-c4', '-j2', '-T5']), 'pgbench -S -c4 -j2 -T5');
  st.comment(`rootless, pgbench -S -c4 -j2 -T5 through the user's socket and nsproxy: ${sum.tps} TPS`);
});

t.test('RestartMode=direct, rootless: the container crashes, the same nsproxy follows', async (st) => {
  const guest = need(st);
  if (!guest) return;
  const before = await guest.show(ACT, ['MainPID'], true);
  const pgRestarts = Number((await guest.show(`${PG}.service`, ['NRestarts'], true)).NRestarts);
  const cpid = await containerPid(guest, PG);
  await guest.ok(['kill', '-KILL', String(cpid)]);
  const t0 = Date.now();
  const r = await psql(guest, '127.0.0.1', 'select 7');
  st.equal(r.stdout.trim(), '7', 'a client connecting during the restart is served (--ready-exec pg_isready, as the user)', { stderr: r.stderr });
  st.comment(`rootless crash: answered ${Date.now() - t0} ms after the kill`);
  await guest.waitFor(`${PG}.service`, ['ActiveState'], (x) => x.ActiveState === 'active', 60000, 'active again (ExecStartPost= done)', true);
  const r2 = await psql(guest, '127.0.0.1', 'select 8');
  st.equal(r2.stdout.trim(), '8', 'once the unit is active again, a client is served', { stderr: r2.stderr });
  st.equal(Number((await guest.show(`${PG}.service`, ['NRestarts'], true)).NRestarts), pgRestarts + 1, 'the container unit restarted');
  const after = await guest.show(ACT, ['MainPID', 'NRestarts', 'ActiveState'], true);
  st.same([after.MainPID, after.NRestarts, after.ActiveState], [before.MainPID, '0', 'active'], 'the same nsproxy, never restarted');
  const now = await containerPid(guest, PG);
  const last = (await journalWhen(guest, ACT, true, (l) => Number(l.filter((x) => x.msg === 'target restarted').at(-1)?.fields.targetPid) === now)).filter((l) => l.msg === 'target restarted').at(-1);
  st.equal(Number(last?.fields.targetPid), now, 'nsproxy logged "target restarted" with the new container PID');
});

t.test('lab step 2: one request to pgAdmin starts the whole chain through the Unix socket', async (st) => {
  const guest = need(st);
  if (!guest) return;
  await stopUnits(guest, [ACT, `${PG}.service`]);
  await guest.ok(['systemctl', '--user', 'start', 'pgadmin-web.socket'], { user: true });
  const chain = ['pgadmin-web.service', 'pgadmin.service', ACT, `${PG}.service`];
  for (const u of chain) st.equal((await guest.show(u, ['ActiveState'], true)).ActiveState, 'inactive', `${u}: inactive before`);
  const t0 = Date.now();
  const res = await guest.exec(['busybox', 'wget', '-q', '-T', '120', '-O', '-', 'http://127.0.0.1:5050/cgi-bin/query'], { timeoutMs: 150000 });
  st.comment(`the chain from zero (pgadmin-web.socket -> nsproxy -> pgadmin -> Unix socket -> nsproxy -> test-postgresql): ${Date.now() - t0} ms`);
  st.match(res.stdout, /^pgadmin stand-in: 17\.\d+/m, 'the pgAdmin container answered with a query it made through /run/postgresql', { stdout: res.stdout, stderr: res.stderr });
  for (const u of chain) st.equal((await guest.show(u, ['ActiveState'], true)).ActiveState, 'active', `${u}: started on demand`);
  const pid = await containerPid(guest, 'pgadmin');
  const ifaces = guest.readFile(`/proc/${pid}/net/dev`).split('\n').slice(2).map((l) => l.split(':')[0].trim()).filter((x) => x);
  st.same(ifaces, ['lo'], 'the pgAdmin container has no network interface but lo (Network=none)');
  const web = (await guest.show('pgadmin-web.service', ['MainPID'], true)).MainPID;
  st.equal(guest.procStatus(Number(web), 'CapEff'), ZERO_CAPS, "pgadmin-web's nsproxy: CapEff 0");
  await stopUnits(guest, ['pgadmin-web.socket', 'pgadmin-web.service', 'pgadmin.service']);
});

t.test('the hardened drop-in: sandboxing in force under systemd 257, and everything works', async (st) => {
  const guest = need(st);
  if (!guest) return;
  await stopUnits(guest, [ACT]);
  installShipped(guest, 'hardened/postgresql-activator.service.d/50-hardening.conf', `${dirs.units}/postgresql-activator.service.d/50-hardening.conf`, true);
  await guest.ok(['systemctl', '--user', 'daemon-reload'], { user: true });
  const p = await guest.show(ACT, ['NoNewPrivileges', 'RestrictAddressFamilies', 'SystemCallErrorNumber', 'UMask'], true);
  st.same([p.NoNewPrivileges, p.UMask], ['yes', '0077'], 'the drop-in is loaded');
  const tcp = await psql(guest, '127.0.0.1', 'select 1');
  st.equal(tcp.stdout.trim(), '1', 'hardened: a query through the TCP socket', { stderr: tcp.stderr });
  const unix = await psql(guest, `${USER_RUNTIME}/postgresql`, 'select 2');
  st.equal(unix.stdout.trim(), '2', 'hardened: a query through the Unix socket', { stderr: unix.stderr });
  const a = await guest.show(ACT, ['MainPID', 'NRestarts'], true);
  st.equal(a.NRestarts, '0', 'no failed start');
  const pid = Number(a.MainPID);
  st.equal(`${guest.procStatus(pid, 'NoNewPrivs')}/${guest.procStatus(pid, 'Seccomp')}`, '1/2', 'nsproxy: NoNewPrivs 1, Seccomp 2');
  st.equal(guest.procStatus(pid, 'CapEff'), ZERO_CAPS, 'CapEff 0');
  const hs = await helpers(guest, a.MainPID);
  st.ok(hs.length >= 1, 'an nsproxy-helper runs');
  for (const h of hs) st.equal(`${guest.procStatus(Number(h), 'NoNewPrivs')}/${guest.procStatus(Number(h), 'Seccomp')}`, '1/2', `nsproxy-helper ${h} inherits the sandbox`);
  const sum = assertPgbenchClean(st, await pgbench(guest, ['-S', '-c4', '-j2', '-T3']), 'hardened: pgbench -S -c4 -j2 -T3');
  st.comment(`hardened: ${sum.tps} TPS`);
});

t.test('pasta: nsproxy forwards into a rootless container on the default network, data intact', async (st) => {
  const guest = need(st);
  if (!guest) return;
  const u = { user: true };
  await guest.ok(['sh', '-c', 'mkdir -p ~/www && head -c 1048576 /dev/urandom >~/www/blob'], u);
  const want = (await guest.ok(['sha256sum', `${USER_HOME}/www/blob`])).split(' ')[0];
  // no --network: rootless podman 5's default, pasta
  await guest.ok(['podman', 'run', '-d', '--name', 'web', '-v', `${USER_HOME}/www:/srv:ro`, '--entrypoint', 'httpd', 'docker.io/library/postgres:16', '-f', '-p', '127.0.0.1:8080', '-h', '/srv'], u);
  const mode = await guest.ok(['podman', 'inspect', '-f', '{{.HostConfig.NetworkMode}}', 'web'], u);
  st.equal(mode.trim(), 'pasta', 'the container is on pasta');
  const cpid = await containerPid(guest, 'web');
  const ifaces = guest.readFile(`/proc/${cpid}/net/dev`).split('\n').slice(2).map((l) => l.split(':')[0].trim()).filter((x) => x && x !== 'lo');
  st.ok(ifaces.length >= 1, `with pasta's interface: ${ifaces.join(', ')}`);
  await guest.ok(['systemd-run', '--user', '--quiet', '--unit=nsproxy-web', '-p', 'Type=notify', '/usr/local/bin/nsproxy', '--container', 'web', '--to', '127.0.0.1:8080', '--listen', '127.0.0.1:8081'], u);
  const got = await guest.ok(['sh', '-c', 'busybox wget -q -O - http://127.0.0.1:8081/blob | sha256sum']);
  st.equal(got.split(' ')[0], want, '1 MB through nsproxy from the pasta container, SHA-256 matches');
  const main = Number((await guest.show('nsproxy-web.service', ['MainPID'], true)).MainPID);
  st.equal(guest.procStatus(main, 'CapEff'), ZERO_CAPS, 'nsproxy (the user\'s) has CapEff 0');
  await guest.ok(['systemctl', '--user', 'stop', 'nsproxy-web.service'], u);
  await guest.ok(['podman', 'rm', '-f', '-t', '0', 'web'], u);
});

t.test('shutdown: the guest powers off', async (st) => {
  const guest = need(st);
  if (!guest) return;
  const e = await guest.stop();
  st.same(e, { code: 0, signal: null, killed: false }, 'systemd-nspawn exits 0 after the guest powered off', { console: guest.consoleTail() });
  g = null;
});
