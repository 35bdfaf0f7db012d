// The container test infrastructure itself, without nsproxy: the local busybox
// image, podman containers (--network=none and a bridge network, and that the
// bridge leaves no firewall tables behind), PostgreSQL inside a container proved
// with pgbench through `nsenter -t PID -n`, and runc bundles. When these fail, the
// container-*.test.ts failures are about the machine, not about nsproxy.
import t from 'tap';
import * as fs from 'node:fs';
import { hashRoundTrip } from './helpers/client';
import { randomSeed } from './helpers/payload';
import { assertHashOk } from './helpers/checks';
import { runCommand } from './helpers/procs';
import {
  TEST_IMAGE,
  containersOnNetworks,
  createNetwork,
  ensureBusyboxImage,
  inspectContainer,
  listeningPorts,
  podmanOk,
  podmanOnlyTables,
  requirePodman,
  runContainer,
  runServerContainer,
  waitForListenIn,
} from './helpers/podman';
import { inNetns, parsePgbench, pgbench, requirePostgres, startPostgresContainer } from './helpers/postgres';
import { requireRunc, runcServerContainer, runcState } from './helpers/runc';

const PORT = 8080;

function netnsOf(pid: number): string {
  return fs.readlinkSync(`/proc/${pid}/ns/net`);
}

t.test('podman: image, --network=none container, PID, restart', async (t) => {
  if (!(await requirePodman(t))) return;
  const t0 = Date.now();
  await ensureBusyboxImage();
  await ensureBusyboxImage();
  t.comment(`ensureBusyboxImage twice: ${Date.now() - t0} ms`);
  const images = await podmanOk(['images', '--format', '{{.Repository}}:{{.Tag}}']);
  t.ok(images.split('\n').includes(TEST_IMAGE), `${TEST_IMAGE} exists`);

  const c = await runServerContainer(t, 'hash', [`127.0.0.1:${PORT}`]);
  t.ok(c.pid > 0, `State.Pid ${c.pid}`);
  t.not(netnsOf(c.pid), netnsOf(process.pid), 'the container has a netns of its own');
  t.match(fs.readFileSync(`/proc/${c.pid}/cgroup`, 'utf8'), c.id, "the PID's cgroup names the container id");
  t.ok(listeningPorts(c.pid).has(PORT), `the server listens on ${PORT} inside`);
  const links = await inNetns(c.pid, 'ip', ['-o', 'link']);
  t.same(
    links.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => l.split(':')[1].trim()),
    ['lo'],
    '--network=none: only lo inside',
  );

  const restarted = await podmanOk(['restart', c.name]);
  t.match(restarted, c.name, 'podman restart');
  const st = await inspectContainer(c.name);
  t.ok(st.running, 'running again');
  t.not(st.pid, c.pid, `new PID after restart (${c.pid} -> ${st.pid})`);
  await waitForListenIn(st.pid, PORT, 20000, 'the restarted server');

  const created = await runContainer(t, { cmd: ['true'], createOnly: true });
  const cs = await inspectContainer(created.name);
  t.same([cs.running, cs.pid, cs.status], [false, 0, 'created'], 'podman create: exists, not running');
});

t.test('podman: bridge network, and no firewall leftovers afterwards', async (t) => {
  if (!(await requirePodman(t))) return;
  await t.test('a container on a bridge network answers on its address', async (t) => {
    const net = await createNetwork(t);
    const c = await runServerContainer(t, 'hash', [`0.0.0.0:${PORT}`], { network: net });
    const st = await inspectContainer(c.name);
    const ip = st.networks[net];
    t.match(ip, /^\d+\.\d+\.\d+\.\d+$/, `address on ${net}: ${ip}`);
    // the host sits on the bridge: this only reaches the namespace this test made
    const r = await hashRoundTrip(PORT, ip, 256 * 1024, randomSeed('bridge-'));
    assertHashOk(t, r, `direct round trip to ${ip}:${PORT}`);
  });
  // other test files may have containers on networks of their own right now
  const busy = await containersOnNetworks();
  if (busy.length > 0) {
    t.comment(`not checking for firewall leftovers: other containers are on networks (${busy.join(', ')})`);
    return;
  }
  const ruleset = await runCommand('nft', ['-j', 'list', 'ruleset']);
  t.equal(ruleset.code, 0, 'nft -j list ruleset', { stderr: ruleset.stderr });
  if (ruleset.code === 0) {
    const left = podmanOnlyTables((JSON.parse(ruleset.stdout) as { nftables: [] }).nftables);
    t.same(left, [], 'no nftables tables with only podman chains are left');
  }
  const links = await runCommand('ip', ['-o', 'link']);
  t.notMatch(links.stdout, /veth.*master podman/, 'no veth left on a podman bridge');
});

t.test('PostgreSQL in a --network=none container, pgbench via nsenter', async (t) => {
  if (!(await requirePodman(t))) return;
  if (!requirePostgres(t)) return;
  const pg = await startPostgresContainer(t);
  t.comment(`PostgreSQL ${pg.version} in ${pg.name}, pid ${pg.pid}`);
  t.not(netnsOf(pg.pid), netnsOf(process.pid), 'own netns');
  t.match(fs.readlinkSync(`/proc/${pg.pid}/exe`), /\/postgres$/, 'PID 1 of the container is postgres');
  const wrapper = ['nsenter', '-t', String(pg.pid), '-n'];
  const init = await pgbench(pg.bin, '127.0.0.1', pg.port, ['-i', '-q'], { wrapper });
  t.equal(init.code, 0, 'pgbench -i', { output: init.stdout + init.stderr });
  const run = await pgbench(pg.bin, '127.0.0.1', pg.port, ['-c4', '-j2', '-T2', '-S'], { wrapper });
  t.equal(run.code, 0, 'pgbench -S', { output: run.stdout + run.stderr });
  const s = parsePgbench(run);
  t.equal(s.failed ?? 0, 0, 'no failed transactions');
  t.ok((s.tps ?? 0) > 0, `TPS > 0 (${s.tps})`);
  t.comment(`direct pgbench -S -c4 -j2 -T2 inside the netns: ${s.tps} TPS`);
});

t.test('runc: bundle, runc state, lo up, --root', async (t) => {
  if (!(await requireRunc(t))) return;
  for (const root of [undefined, fs.mkdtempSync('/tmp/nsproxy-runc-root-')]) {
    if (root) t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
    const c = await runcServerContainer(t, 'hash', [`127.0.0.1:${PORT}`], { root });
    const st = await runcState(c.id, root);
    t.same(st, { pid: c.pid, status: 'running' }, `runc ${root ? `--root ${root} ` : ''}state ${c.id}`);
    t.not(netnsOf(c.pid), netnsOf(process.pid), 'own netns');
    t.ok(listeningPorts(c.pid).has(PORT), `the server listens on ${PORT} inside`);
    const lo = await inNetns(c.pid, 'ip', ['-o', 'link', 'show', 'lo']);
    t.match(lo.stdout, /UP/, 'lo is up');
  }
});
