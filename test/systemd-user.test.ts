// The shipped units (systemd/) under a real `systemd --user` manager of a rootless user, as
// the networking lab runs them: PostgreSQL 15 in a rootless --network=none container
// (test-postgresql.service from `podman generate systemd --new`: quadlet needs podman >= 4.4),
// and postgresql-activator.socket/.service exactly as shipped but for the path of nsproxy.
//   - the first client connection starts the container and nsproxy (Type=notify), the client
//     is answered; StatusText shows the live counters; pgbench -i and -S -c4 through the socket;
//   - the container crashes (its unit restarts it): the same nsproxy follows it, and a client
//     that connects meanwhile waits in the backlog and is served;
//   - lab step 2: a "pgadmin-style" client container with no network, socket-activated itself
//     through pgadmin-web.socket, reaches PostgreSQL only through the Unix socket of
//     postgresql-activator-unix.socket: one HTTP request starts the whole chain;
//   - the hardened drop-in: its sandboxing is in force (NoNewPrivs, seccomp) and all works;
//   - the scale-to-zero drop-ins: after --exit-idle-time nsproxy exits 0 and the container
//     stops; the next connection starts both again;
//   - shutdown leaves no process, cgroup, unit file or container behind.
// Timings (cold starts, recovery) are reported with t.comment, never asserted.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { readlinkSync } from 'node:fs';
import t from 'tap';
import { requireProduct } from './helpers/checks';
import { childEnv } from './helpers/env';
import { assertPgbenchClean, parsePgbench, pgbench, findPostgres, requirePostgres } from './helpers/postgres';
import { runCommand, type RunResult } from './helpers/procs';
import { PG_GID, PG_UID, libraryDirs } from './helpers/rootfs';
import {
  quietPodman,
  requireRootless,
  rootlessUser,
  stopPauseProcess,
  sweepUserContainers,
  userContainerPid,
  userPodman,
  userProcessesAfter,
  type RootlessUser,
} from './helpers/rootless-podman';
import { requireFreePort, requireUserManager, sleep, startUserManager, sweepStaleUserManagers, type UserManager } from './helpers/systemd-user';
import { alive, capEff, childrenOf, commOf } from './helpers/users';

const USER = 'nsproxy-sd'; // this file's own user (rootless-podman.test.ts has another)
const PG = 'test-postgresql'; // container and unit name, as the shipped units expect
const ACT = 'postgresql-activator.service';
const DATA = '/var/lib/postgresql/data';
const HARDENING = 'postgresql-activator.service.d/50-hardening.conf';
const STZ_ACT = 'postgresql-activator.service.d/50-scale-to-zero.conf';
const STZ_PG = 'test-postgresql.service.d/50-scale-to-zero.conf';

type Tap = tap.Test;

interface Env {
  ru: RootlessUser;
  mgr: UserManager;
  bin: string;
  version: string;
}
let env: Env | null = null;

function need(t: Tap): Env | null {
  if (env === null) t.fail('the user manager did not come up (see the first subtest)');
  return env;
}

/** psql (the host's) to a host or socket directory; waits up to 90 s for the connection. */
function psql(e: Env, host: string, sql: string): Promise<RunResult> {
  return runCommand(path.join(e.bin, 'psql'), ['-X', '-h', host, '-p', '5432', '-U', 'postgres', '-d', 'postgres', '-Atc', sql], {
    env: childEnv({ PGCONNECT_TIMEOUT: '90' }),
    timeoutMs: 120000,
  });
}

function httpGet(port: number, urlPath: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // busybox httpd passes the CGI's LF-only header lines on
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, timeout: timeoutMs, insecureHTTPParser: true }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

function procStatus(pid: number, field: string): string {
  const m = new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? m[1].trim() : '';
}

function helpersOf(pid: number): number[] {
  return childrenOf(pid).filter((c) => commOf(c) === 'nsproxy-helper');
}

/** Stops units (ignores ones that are not loaded) and waits until they are inactive. */
async function stopUnits(e: Env, units: string[]): Promise<void> {
  await e.mgr.systemctlOk(['stop', ...units], 90000);
  for (const u of units) await e.mgr.waitFor(u, ['ActiveState'], (r) => r.ActiveState === 'inactive' || r.ActiveState === 'failed', 30000, 'inactive');
}

t.test('a systemd --user manager of a rootless user, with the shipped units installed', async (st) => {
  if (!requireProduct(st) || !requireRootless(st) || !requireUserManager(st) || !requirePostgres(st)) return;
  const pg = findPostgres();
  if ('problem' in pg) return;
  // a manager left by an aborted run would hold the ports below
  for (const s of sweepStaleUserManagers()) st.comment(`killed the user manager of an aborted run: ${s}`);
  // the shipped socket units name these ports: fail clearly if something holds them
  await requireFreePort(5432, '::');
  await requireFreePort(5050, '127.0.0.1');

  // long-lived things are torn down with the root test (LIFO: manager, containers, then the user)
  const ru = await rootlessUser(t, USER);
  for (const s of await sweepUserContainers(ru, [PG, 'pgadmin'])) st.comment(`removed a container of an aborted run: ${s}`);
  const mgr = await startUserManager(t, ru);
  const ver = await mgr.show('', ['Version']);
  st.comment(`systemd --user ${ver.Version} for ${ru.name} (uid ${ru.uid}), PID ${mgr.pid}, cgroup ${mgr.cgroup}`);
  st.ok(alive(mgr.pid), 'the manager runs');
  st.equal(procStatus(mgr.pid, 'Uid').split(/\s+/)[0], String(ru.uid), 'as the user');
  st.equal(readlinkSync(`/proc/${mgr.pid}/ns/mnt`) !== readlinkSync('/proc/self/ns/mnt'), true, 'in a private mount namespace (fake /run/systemd)');

  // PostgreSQL 15 from the host, in the rootless busybox image, listening on 127.0.0.1 only
  const b = pg.bin;
  const pgMounts: string[] = [];
  for (const d of libraryDirs([path.join(b, 'postgres'), path.join(b, 'initdb'), path.join(b, 'psql')])) pgMounts.push('-v', `${d}:${d}:ro`);
  for (const d of ['/usr/lib/postgresql', '/usr/share/postgresql', '/usr/share/zoneinfo']) if (fs.existsSync(d)) pgMounts.push('-v', `${d}:${d}:ro`);
  const script =
    `${b}/initdb -D ${DATA}/pg -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null || exit 1; ` +
    `exec ${b}/postgres -D ${DATA}/pg -c listen_addresses=127.0.0.1 -c port=5432 -c unix_socket_directories= ` +
    '-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100';
  // PATH as in the official image (its bin directory first): the shipped activator's
  // --ready-exec 'pg_isready -h 127.0.0.1' finds pg_isready there, inside the container
  const pgPath = `PATH=${b}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
  await mgr.installContainerUnit(`${PG}.service`, PG, ['--user', `${PG_UID}:${PG_GID}`, '--shm-size', '256m', '--tmpfs', `${DATA}:rw,mode=1777`, '-e', pgPath, ...pgMounts], ['sh', '-c', script]);
  // what the shipped quadlet adds to its [Service]: RestartMode=direct (systemd >= 254; 252
  // ignores it with a warning). Its HealthCmd= needs podman's timers (a user bus); the
  // activator waits with --ready-exec instead.
  mgr.install(`${PG}.service.d/10-as-the-quadlet.conf`, '[Service]\nRestartMode=direct\n');

  // lab step 2's client: busybox httpd whose CGI asks PostgreSQL through /run/postgresql,
  // the Unix socket directory of postgresql-activator-unix.socket bind-mounted from %t
  const www = path.join(ru.scratch, 'www');
  fs.mkdirSync(path.join(www, 'cgi-bin'), { recursive: true, mode: 0o755 });
  fs.chmodSync(www, 0o755);
  fs.writeFileSync(
    path.join(www, 'cgi-bin', 'query'),
    '#!/bin/sh\necho "Content-Type: text/plain"\necho\n' +
      `exec ${b}/psql -X -h /run/postgresql -p 5432 -U postgres -d postgres -Atc "select 'pgadmin-style client: ' || current_setting('server_version')" 2>&1\n`,
    { mode: 0o755 },
  );
  const sockDir = path.join(ru.xdg, 'postgresql');
  fs.mkdirSync(sockDir, { recursive: true, mode: 0o755 });
  fs.chownSync(sockDir, ru.uid, ru.gid);
  await mgr.installContainerUnit('pgadmin.service', 'pgadmin', ['-v', `${sockDir}:/run/postgresql`, '-v', `${www}:/srv:ro`, ...pgMounts], ['httpd', '-f', '-p', '127.0.0.1:8080', '-h', '/srv']);

  for (const f of ['postgresql-activator.socket', 'postgresql-activator.service', 'postgresql-activator-unix.socket', 'pgadmin-web.socket', 'pgadmin-web.service']) {
    const file = mgr.installShipped(f);
    st.notMatch(fs.readFileSync(file, 'utf8'), /\/usr\/local\/bin\/nsproxy/, `${f}: installed with the nsproxy path substituted`);
  }
  await mgr.daemonReload();
  await mgr.systemctlOk(['start', 'postgresql-activator.socket', 'postgresql-activator-unix.socket']);
  for (const s of ['postgresql-activator.socket', 'postgresql-activator-unix.socket']) {
    const r = await mgr.show(s, ['ActiveState', 'SubState']);
    st.equal(`${r.ActiveState}/${r.SubState}`, 'active/listening', `${s} listens`);
  }
  for (const u of [ACT, `${PG}.service`]) st.equal((await mgr.show(u, ['ActiveState'])).ActiveState, 'inactive', `${u} is not running before the first client`);
  env = { ru, mgr, bin: b, version: pg.version };
});

t.test('the first connection starts the container and nsproxy; StatusText counts', async (st) => {
  const e = need(st);
  if (!e) return;
  const t0 = Date.now();
  const r = await psql(e, '127.0.0.1', 'select 42');
  const coldMs = Date.now() - t0;
  st.equal(r.code, 0, 'psql through 127.0.0.1:5432 (postgresql-activator.socket)', { stderr: r.stderr });
  st.equal(r.stdout.trim(), '42', 'the first client gets its answer');
  st.comment(`cold start: the first query was answered ${coldMs} ms after connecting (container start + initdb + PostgreSQL start + nsproxy)`);

  const a = await e.mgr.show(ACT, ['ActiveState', 'SubState', 'Type', 'MainPID', 'NRestarts', 'WatchdogUSec', 'StatusText']);
  st.equal(a.ActiveState, 'active', `${ACT} is active`);
  st.equal(a.Type, 'notify', 'Type=notify');
  st.equal(a.NRestarts, '0', 'nsproxy started once (no failed attempt)', { output: e.mgr.output.slice(-30) });
  st.equal(a.WatchdogUSec, '30s', 'WatchdogSec=30s');
  const pid = Number(a.MainPID);
  st.equal(commOf(pid), 'node', `MainPID ${pid} is nsproxy (node)`);
  st.equal(procStatus(pid, 'Uid').split(/\s+/)[0], String(e.ru.uid), 'nsproxy runs as the user');
  st.equal(capEff(pid), '0000000000000000', 'with CapEff 0');
  st.ok(helpersOf(pid).length >= 1, 'and reaches the rootless container through an nsproxy-helper child');
  st.equal((await e.mgr.show(`${PG}.service`, ['ActiveState'])).ActiveState, 'active', 'test-postgresql.service was started by the activator');

  const logs = e.mgr.logs(pid);
  const listening = logs.filter((l) => l.msg === 'listening');
  st.same(
    listening.map((l) => [l.source, l.name]).sort(),
    [['systemd', 'postgresql'], ['systemd', 'postgresql-unix']],
    'nsproxy got both sockets from systemd (TCP and the Unix one of step 2), by name',
  );
  const cpid = await userContainerPid(e.ru, PG);
  const ready = logs.find((l) => l.msg === 'ready');
  st.equal(ready?.targetPid, cpid, '"ready" names the container\'s PID');
  st.ok(logs.findIndex((l) => l.msg === 'target ready') < logs.findIndex((l) => l.msg === 'ready'), 'readiness probe before "ready"');
  st.same(logs.find((l) => l.msg === 'target ready')?.checks, ['tcp', 'exec'], "the port accepted, then --ready-exec pg_isready passed inside the rootless container, with CapEff 0");

  await psql(e, '127.0.0.1', 'select 1');
  const status = await e.mgr.waitFor(ACT, ['StatusText'], (x) => /; \d+ active, [2-9]\d* total/.test(x.StatusText ?? ''), 5000, 'counters in StatusText');
  st.match(status.StatusText, /^forwarding .*5432.* to 127\.0\.0\.1:5432 in container test-postgresql; \d+ active, \d+ total, .* in, .* out$/, 'StatusText shows the live counters');
  st.comment(`StatusText=${status.StatusText}`);
});

t.test('pgbench -i, then -S -c4 -j2 -T5, through the socket', async (st) => {
  const e = need(st);
  if (!e) return;
  const init = await pgbench(e.bin, '127.0.0.1', 5432, ['-i', '-s', '1']);
  st.equal(init.code, 0, 'pgbench -i through postgresql-activator.socket', { output: init.stdout + init.stderr });
  const run = await pgbench(e.bin, '127.0.0.1', 5432, ['-c4', '-j2', '-T5', '-S']);
  const s = assertPgbenchClean(st, run, 'pgbench -S -c4 -j2 -T5');
  st.comment(`pgbench -S -c4 -j2 -T5 through the user manager's socket and nsproxy: ${s.tps} TPS (${s.processed} transactions)`);
  const a = await e.mgr.show(ACT, ['NRestarts', 'ActiveState']);
  st.equal(`${a.ActiveState}/${a.NRestarts}`, 'active/0', 'nsproxy still the same, never restarted');
});

t.test('the container crashes and its unit restarts it: a client connecting meanwhile waits and is served', async (st) => {
  const e = need(st);
  if (!e) return;
  const before = await e.mgr.show(ACT, ['MainPID']);
  const pid = Number(before.MainPID);
  const cpid = await userContainerPid(e.ru, PG);
  const pgRestarts = Number((await e.mgr.show(`${PG}.service`, ['NRestarts'])).NRestarts);
  const exitedBefore = e.mgr.logs(pid).filter((l) => l.msg === 'target exited').length;

  // watch the activator's state meanwhile: nsproxy says RELOADING=1 ... READY=1
  const states = new Set<string>();
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const r = await e.mgr.show(ACT, ['ActiveState']).catch(() => ({ ActiveState: '?' }));
      states.add(r.ActiveState);
      await sleep(20);
    }
  })();

  const t0 = Date.now();
  let noticedMs = -1;
  let recoveryMs = -1;
  let r: RunResult;
  try {
    process.kill(cpid, 'SIGKILL'); // PostgreSQL, the container's PID 1, by PID
    await e.mgr.waitForLog(() => e.mgr.logs(pid).filter((x) => x.msg === 'target exited').length > exitedBefore, 20000, '"target exited"');
    noticedMs = Date.now() - t0;
    r = await psql(e, '127.0.0.1', 'select 7'); // connects while the container is down: waits in the backlog
    recoveryMs = Date.now() - t0;
  } finally {
    watching = false;
    await watcher;
  }
  st.equal(r.code, 0, 'a client connecting during the restart is served (no retry)', { stderr: r.stderr });
  st.equal(r.stdout.trim(), '7', 'with the right answer');
  st.comment(`restart recovery: nsproxy noticed the exit after ${noticedMs} ms; the client that connected then was answered ${recoveryMs} ms after the kill (unit restart + initdb + PostgreSQL start)`);

  const after = await e.mgr.show(ACT, ['MainPID', 'NRestarts', 'ActiveState']);
  st.equal(after.ActiveState, 'active', 'the activator is active again');
  st.equal(after.NRestarts, '0', 'the activator never failed');
  const pgNow = await e.mgr.show(`${PG}.service`, ['NRestarts', 'ActiveState']);
  st.equal(Number(pgNow.NRestarts), pgRestarts + 1, 'test-postgresql.service was restarted by systemd (Restart=on-failure)');
  const newPid = await userContainerPid(e.ru, PG);
  st.not(newPid, cpid, `new container PID ${newPid}`);
  st.ok(states.has('reloading'), 'nsproxy noticed the exit itself: systemd saw RELOADING=1 (ActiveState reloading)');
  const newMain = Number(after.MainPID);
  if (newMain === pid) {
    // the container unit restarted without telling its dependents (RestartMode=direct, systemd >= 254)
    const restarted = e.mgr.logs(pid).filter((l) => l.msg === 'target restarted').pop();
    st.equal(restarted?.targetPid, newPid, 'the same nsproxy followed the container: "target restarted" with the new PID');
    st.comment(`nsproxy followed the restart itself (downtime ${String(restarted?.downtimeMs)} ms); activator states: ${[...states].join(', ')}`);
  } else {
    // systemd < 254: the container unit's auto-restart is a restart job, which Requires=
    // propagates to postgresql-activator.service: nsproxy is stopped and started again
    // (the socket stays, so the client only waits)
    const ready = e.mgr.logs(newMain).find((l) => l.msg === 'ready');
    st.equal(ready?.targetPid, newPid, `systemd restarted nsproxy with the container (Requires= propagation); the new one (PID ${newMain}) forwards to the new container`);
    st.comment(`systemd restarted the activator along with the container unit (activator states: ${[...states].join(', ')}); with systemd >= 254, RestartMode=direct in the container unit lets the running nsproxy follow instead`);
  }
});

t.test('systemctl --user reload: SIGHUP re-resolves and re-checks the container, same process, no failed state', async (st) => {
  const e = need(st);
  if (!e) return;
  const before = await e.mgr.show(ACT, ['MainPID', 'ActiveState']);
  st.equal(before.ActiveState, 'active', 'active before');
  const pid = Number(before.MainPID);
  const reloadsBefore = e.mgr.logs(pid).filter((l) => l.msg === 'reloaded').length;
  const r = await e.mgr.systemctl(['reload', ACT]);
  st.equal(r.code, 0, 'systemctl --user reload succeeds (ExecReload=kill -HUP $MAINPID)', { stderr: r.stderr });
  await e.mgr.waitForLog(() => e.mgr.logs(pid).filter((l) => l.msg === 'reloaded').length > reloadsBefore, 30000, '"reloaded"');
  const reloaded = e.mgr.logs(pid).filter((l) => l.msg === 'reloaded').pop();
  st.equal(reloaded?.namespaceChanged, false, 'same container, same namespace: the engine stays where it is');
  st.same(e.mgr.logs(pid).filter((l) => l.msg === 'target ready').pop()?.checks, ['tcp', 'exec'], 'and pg_isready was run again');
  const after = await e.mgr.waitFor(ACT, ['ActiveState', 'MainPID', 'NRestarts', 'Result'], (x) => x.ActiveState === 'active', 30000, 'active again');
  st.equal(after.MainPID, before.MainPID, 'the same nsproxy (SIGHUP no longer kills it)');
  st.equal(`${after.NRestarts}/${after.Result}`, '0/success', 'no restart, no failure');
  const q = await psql(e, '127.0.0.1', 'select 3');
  st.equal(q.stdout.trim(), '3', 'forwarding after the reload', { stderr: q.stderr });
});

t.test('lab step 2: a client container with no network starts the PostgreSQL chain through a Unix socket', async (st) => {
  const e = need(st);
  if (!e) return;
  // from zero: PostgreSQL, its nsproxy and the client are all stopped; only sockets listen
  await stopUnits(e, [ACT, `${PG}.service`]);
  await e.mgr.systemctlOk(['start', 'pgadmin-web.socket']);
  for (const u of ['pgadmin-web.service', 'pgadmin.service', ACT, `${PG}.service`]) {
    st.equal((await e.mgr.show(u, ['ActiveState'])).ActiveState, 'inactive', `${u}: inactive before`);
  }
  const t0 = Date.now();
  const res = await httpGet(5050, '/cgi-bin/query', 90000);
  const chainMs = Date.now() - t0;
  st.equal(res.status, 200, 'HTTP 200 from the client container, through pgadmin-web.socket and nsproxy');
  st.match(res.body, new RegExp(`pgadmin-style client: ${e.version}\\.`), 'its query reached PostgreSQL through /run/postgresql/.s.PGSQL.5432', { body: res.body });
  st.comment(`the chain from zero (pgadmin-web.socket -> nsproxy -> client container -> Unix socket -> nsproxy -> test-postgresql): ${chainMs} ms`);
  for (const u of ['pgadmin-web.service', 'pgadmin.service', ACT, `${PG}.service`]) {
    st.equal((await e.mgr.show(u, ['ActiveState'])).ActiveState, 'active', `${u}: started on demand`);
  }
  const client = await userContainerPid(e.ru, 'pgadmin');
  const ifaces = fs.readFileSync(`/proc/${client}/net/dev`, 'utf8').split('\n').slice(2).map((l) => l.split(':')[0].trim()).filter((x) => x);
  st.same(ifaces, ['lo'], 'the client container has no network interface but lo');
  const web = Number((await e.mgr.show('pgadmin-web.service', ['MainPID'])).MainPID);
  st.equal(capEff(web), '0000000000000000', "pgadmin-web's nsproxy has CapEff 0 too");
  await stopUnits(e, ['pgadmin-web.socket', 'pgadmin-web.service', 'pgadmin.service']);
});

t.test('the hardened drop-in: sandboxing in force under the user manager, and everything works', async (st) => {
  const e = need(st);
  if (!e) return;
  await stopUnits(e, [ACT]);
  e.mgr.install(HARDENING, e.mgr.shipped(`hardened/${HARDENING}`));
  await e.mgr.daemonReload();
  const props = await e.mgr.show(ACT, ['NoNewPrivileges', 'RestrictAddressFamilies', 'LockPersonality', 'RestrictRealtime', 'RestrictSUIDSGID', 'SystemCallErrorNumber', 'UMask']);
  st.same(
    { nnp: props.NoNewPrivileges, lock: props.LockPersonality, rt: props.RestrictRealtime, suid: props.RestrictSUIDSGID, umask: props.UMask },
    { nnp: 'yes', lock: 'yes', rt: 'yes', suid: 'yes', umask: '0077' },
    'the drop-in is loaded',
  );
  st.match(props.RestrictAddressFamilies, /AF_UNIX/, `RestrictAddressFamilies=${props.RestrictAddressFamilies}`);

  const tcp = await psql(e, '127.0.0.1', 'select 1');
  st.equal(tcp.stdout.trim(), '1', 'hardened: a query through the TCP socket', { stderr: tcp.stderr });
  const unix = await psql(e, path.join(e.ru.xdg, 'postgresql'), 'select 2');
  st.equal(unix.stdout.trim(), '2', 'hardened: a query through the Unix socket', { stderr: unix.stderr });
  const pid = Number((await e.mgr.show(ACT, ['MainPID'])).MainPID);
  st.equal(procStatus(pid, 'NoNewPrivs'), '1', 'nsproxy runs with NoNewPrivs 1');
  st.equal(procStatus(pid, 'Seccomp'), '2', 'under a seccomp filter (Seccomp 2)');
  st.equal(capEff(pid), '0000000000000000', 'CapEff 0');
  st.ok(helpersOf(pid).length >= 1, 'an nsproxy-helper runs');
  for (const h of helpersOf(pid)) {
    st.equal(`${procStatus(h, 'NoNewPrivs')}/${procStatus(h, 'Seccomp')}`, '1/2', `nsproxy-helper ${h} inherits the sandbox`);
  }
  const run = parsePgbench(await pgbench(e.bin, '127.0.0.1', 5432, ['-i', '-s', '1']));
  st.same(run.errors, [], 'hardened: pgbench -i without errors');
  const sel = await pgbench(e.bin, '127.0.0.1', 5432, ['-c4', '-j2', '-T2', '-S']);
  const s = parsePgbench(sel);
  st.equal(s.failed, 0, 'hardened: pgbench -S -T2, no failed transaction', { output: sel.stdout + sel.stderr });
  st.comment(`hardened: pgbench -S -c4 -j2 -T2: ${s.tps} TPS`);
  st.equal((await e.mgr.show(ACT, ['NRestarts'])).NRestarts, '0', 'no failed start');

  await stopUnits(e, [ACT]);
  e.mgr.uninstall(HARDENING);
  await e.mgr.daemonReload();
});

t.test('scale to zero: --exit-idle-time, then StopWhenUnneeded= stops the container; the next client starts both', async (st) => {
  const e = need(st);
  if (!e) return;
  await stopUnits(e, [ACT, `${PG}.service`]);
  e.mgr.install(STZ_PG, e.mgr.shipped(`scale-to-zero/${STZ_PG}`));
  // the shipped 5min, shortened for the test
  e.mgr.install(STZ_ACT, e.mgr.shipped(`scale-to-zero/${STZ_ACT}`, [['NSPROXY_EXIT_IDLE_TIME=5min', 'NSPROXY_EXIT_IDLE_TIME=3s']]));
  await e.mgr.daemonReload();
  st.equal((await e.mgr.show(`${PG}.service`, ['StopWhenUnneeded'])).StopWhenUnneeded, 'yes', 'StopWhenUnneeded=yes on the container unit');
  st.match((await e.mgr.show(ACT, ['Environment'])).Environment, /NSPROXY_EXIT_IDLE_TIME=3s/, 'the drop-in sets one variable');
  st.notMatch((await e.mgr.show(ACT, ['ExecStart'])).ExecStart, /exit-idle-time/, "and leaves the unit's ExecStart= alone");

  for (const round of [1, 2]) {
    const t0 = Date.now();
    const r = await psql(e, '127.0.0.1', `select ${round}`);
    const coldMs = Date.now() - t0;
    st.equal(r.stdout.trim(), String(round), `round ${round}: the client starts the container and nsproxy and is answered`, { stderr: r.stderr });
    st.comment(`scale-to-zero round ${round}: cold start ${coldMs} ms`);
    const pid = Number((await e.mgr.show(ACT, ['MainPID'])).MainPID);
    st.equal((await e.mgr.show(`${PG}.service`, ['ActiveState'])).ActiveState, 'active', `round ${round}: the container runs`);

    const idleStart = Date.now();
    const done = await e.mgr.waitFor(ACT, ['ActiveState', 'Result', 'ExecMainStatus', 'ExecMainCode'], (x) => x.ActiveState === 'inactive' || x.ActiveState === 'failed', 30000, 'nsproxy exits when idle');
    st.equal(`${done.ActiveState}/${done.Result}/${done.ExecMainStatus}`, 'inactive/success/0', `round ${round}: nsproxy exited 0 after 3 s idle`);
    st.ok(e.mgr.logs(pid).some((l) => l.msg === 'idle, exiting'), `round ${round}: log "idle, exiting"`);
    await e.mgr.waitFor(`${PG}.service`, ['ActiveState'], (x) => x.ActiveState === 'inactive', 30000, 'the container stops when unneeded');
    st.comment(`scale-to-zero round ${round}: nsproxy and the container were stopped ${Date.now() - idleStart} ms after the last query`);
    const ps = await userPodman(e.ru, ['ps', '-a', '--format', '{{.Names}}']);
    st.notMatch(ps.stdout, new RegExp(`^${PG}$`, 'm'), `round ${round}: no ${PG} container is left (the unit runs it with --rm)`, { stderr: quietPodman(ps.stderr) });
    st.equal((await e.mgr.show('postgresql-activator.socket', ['ActiveState'])).ActiveState, 'active', `round ${round}: the socket still listens`);
  }
  e.mgr.uninstall(STZ_ACT);
  e.mgr.uninstall(STZ_PG);
  await e.mgr.daemonReload();
});

t.test('shutdown: the manager, its cgroup, units and containers leave nothing behind', async (st) => {
  const e = need(st);
  if (!e) return;
  const s = await e.mgr.shutdown();
  st.same(s.problems, [], 'no problem while stopping');
  st.same(s.leftoverPids, [], 'no process was left in the manager\'s cgroup once it exited');
  st.ok(s.cgroupRemoved, 'the delegated cgroup directory is removed');
  st.comment(`systemd --user exit: ${JSON.stringify(s.managerExit)}`);
  const ps = await userPodman(e.ru, ['ps', '-a', '--format', '{{.Names}}']);
  st.same(ps.stdout.split('\n').filter((n) => n === PG || n === 'pgadmin'), [], 'no container of the test is left');
  await stopPauseProcess(e.ru);
  st.same(await userProcessesAfter(e.ru, 10_000), [], `no process of ${e.ru.name} (or its subordinate uids) is left (within 10 s)`);
  st.same(fs.existsSync(path.join(e.ru.home, '.config/systemd/user')) ? fs.readdirSync(path.join(e.ru.home, '.config/systemd/user')) : [], [], 'no unit file is left');
});
