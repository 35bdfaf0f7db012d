// `nsproxy check` as root against real targets: a process's namespace (--pid), a named one
// (--netns, no process: read from inside by a forked child), and a podman container with
// --ready-exec (the command's output proves it ran in the container's namespaces, as its
// user, in its working directory) and --ready health. It reports what is there and exits 0,
// or says what is wrong and exits 1. The rootless path is in rootless-ready.test.ts.
import { readlinkSync } from 'node:fs';
import t from 'tap';
import { requireProduct } from './helpers/checks';
import { freePort } from './helpers/client';
import { makeNetns, startServerInNetns, startUnshareServer } from './helpers/namespaces';
import { runNsproxy } from './helpers/nsproxy';
import { fixtureServerMounts, podmanEnv, requirePodman, runContainer, waitForListenIn } from './helpers/podman';
import { mustRun } from './helpers/procs';
import type { CheckReport } from '../src/commands/check-report';

function inode(link: string): string {
  return /\[(\d+)\]/.exec(link)?.[1] ?? '';
}

async function check(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; report: CheckReport; stdout: string; stderr: string }> {
  const r = await runNsproxy(['check', ...args, '--json'], env, 60000);
  let report = {} as CheckReport;
  try {
    report = JSON.parse(r.stdout) as CheckReport;
  } catch {
    // asserted by the callers through `report.ok` being undefined
  }
  return { code: r.code, report, stdout: r.stdout, stderr: r.stderr };
}

t.test('--pid: the resolved target, its addresses and listeners, a probe of --to', async (t) => {
  if (!requireProduct(t)) return;
  const port = await freePort();
  const server = await startUnshareServer(t, 'echo', [`127.0.0.1:${port}`]);
  const c = await check(['--pid', String(server.pid), '--to', `127.0.0.1:${port}`]);
  t.equal(c.code, 0, 'exit 0', { stdout: c.stdout, stderr: c.stderr });
  const r = c.report;
  t.equal(r.ok, true);
  t.same(r.problems, []);
  t.equal(r.target.pid, server.pid);
  t.equal(r.target.netnsInode, inode(readlinkSync(`/proc/${server.pid}/ns/net`)), 'the netns inode, as readlink /proc/PID/ns/net shows it');
  t.equal(r.target.ownerUid, 0, 'owned by root');
  t.equal(r.target.access, 'in-thread', 'root (CAP_SYS_ADMIN) enters from its own threads');
  t.ok(r.addresses.some((a) => a.interface === 'lo' && a.address === '127.0.0.1' && a.prefixLength === 8), 'lo 127.0.0.1/8', { addresses: r.addresses });
  t.equal(r.listeningSource, `/proc/${server.pid}/net/tcp{,6}`, 'listeners read from /proc without entering');
  const listener = r.listening.find((l) => l.address === `127.0.0.1:${port}`);
  t.ok(listener, 'the server is listed as listening', { listening: r.listening });
  t.equal(listener?.pid, server.pid, 'with the process that holds the socket');
  t.equal(listener?.process, 'node');
  t.same(r.probes.map((p) => [p.to, p.accepted, p.listening]), [[`127.0.0.1:${port}`, true, `127.0.0.1:${port}`]], 'the probe was accepted');

  const text = await runNsproxy(['check', '--pid', String(server.pid), '--to', `127.0.0.1:${port}`]);
  t.equal(text.code, 0);
  t.match(text.stdout, /^target {5}pid \d+, PID \d+$/m);
  t.match(text.stdout, /^access {5}in-thread: /m);
  t.match(text.stdout, new RegExp(`^listening  127\\.0\\.0\\.1:${port} \\(node, PID ${server.pid}\\)$`, 'm'));
  t.match(text.stdout, /^result {5}ok$/m);

  const wrong = await check(['--pid', String(server.pid), '--to', `127.0.0.1:${port + 1}`]);
  t.equal(wrong.code, 1, 'nothing at --to: exit 1');
  t.equal(wrong.report.ok, false);
  t.match(wrong.report.problems.join('\n'), new RegExp(`127\\.0\\.0\\.1:${port + 1} in pid \\d+ did not accept a connection \\(connect ECONNREFUSED\\): nothing listens on port ${port + 1} for 127\\.0\\.0\\.1 in there \\(listening: 127\\.0\\.0\\.1:${port}\\)`));

  const exec = await check(['--pid', String(server.pid), '--ready-exec', "sh -c 'readlink /proc/self/ns/net; id -u'"]);
  t.equal(exec.code, 0, '--ready-exec ran', { stdout: exec.stdout });
  t.same(exec.report.readyExec?.output.trim().split('\n'), [readlinkSync(`/proc/${server.pid}/ns/net`), '0'], 'inside the target network namespace, as its user');
});

t.test('--netns NAME: no process; listeners and addresses read from inside', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  // a veth pair with both ends inside (gone with the namespace)
  await mustRun('ip', ['-n', ns, 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1']);
  await mustRun('ip', ['-n', ns, 'addr', 'add', '10.99.0.1/24', 'dev', 'd0']);
  await mustRun('ip', ['-n', ns, 'link', 'set', 'd0', 'up']);
  await mustRun('ip', ['-n', ns, 'link', 'set', 'd1', 'up']);
  await startServerInNetns(t, ns, 'echo', ['10.99.0.1:8080']);
  const c = await check(['--netns', ns, '--to', '10.99.0.1:8080']);
  t.equal(c.code, 0, 'exit 0', { stdout: c.stdout });
  t.equal(c.report.target.pid, undefined, 'no process');
  t.equal(c.report.listeningSource, 'read inside the namespace');
  t.same(c.report.listening.map((l) => l.address), ['10.99.0.1:8080']);
  t.same(
    c.report.addresses.filter((a) => a.family === 4).map((a) => `${a.interface} ${a.address}/${a.prefixLength}`),
    ['lo 127.0.0.1/8', 'd0 10.99.0.1/24'],
    'its interfaces and addresses',
  );
  t.same(c.report.interfaces?.map((i) => i.name).sort(), ['d0', 'd1', 'lo']);
  t.equal(c.report.probes[0]?.accepted, true);

  const missing = await check(['--netns', `${ns}-missing`, '--to', '10.99.0.1:8080']);
  t.equal(missing.code, 1, 'a namespace that does not exist: exit 1, and says so');
  t.match(missing.report.problems[0] ?? '', /does not exist; create it with ip netns add/);
  const usage = await runNsproxy(['check', '--to', '1.2.3.4:5']);
  t.equal(usage.code, 2, 'no target: a usage error, exit 2');
  t.match(usage.stderr, /^nsproxy: no target namespace; give --container NAME, --pid PID or --netns NAME\|PATH/);
});

t.test('--container with --ready-exec and --ready health', async (t) => {
  if (!requireProduct(t) || !(await requirePodman(t))) return;
  const c = await runContainer(t, {
    args: [...fixtureServerMounts(), '--user', '4242:4343', '--workdir', '/tmp', '--hostname', 'checked', '--health-cmd', 'true'],
    cmd: ['node', '/fixtures/server.js', '--mode', 'echo', '--listen', '127.0.0.1:8080'],
  });
  await waitForListenIn(c.pid, 8080, 20000, 'the echo server');
  const r = await check(['--container', c.name, '--to', '127.0.0.1:8080', '--ready-exec', `sh -c 'id -u; id -g; hostname; pwd; echo $$; echo $PATH'`], podmanEnv());
  t.equal(r.code, 0, 'exit 0', { stdout: r.stdout, stderr: r.stderr });
  t.equal(r.report.target.runtime, 'podman');
  t.equal(r.report.target.pid, c.pid);
  t.equal(r.report.target.status, 'running');
  const [uid, gid, hostname, cwd, pid, path] = (r.report.readyExec?.output ?? '').trim().split('\n');
  t.same([uid, gid], ['4242', '4343'], "as the container's user and group");
  t.equal(hostname, 'checked', 'in its uts namespace');
  t.equal(cwd, '/tmp', 'in its working directory, inside its root');
  t.ok(Number(pid) < 50, `in its pid namespace (the shell is PID ${pid} there)`);
  t.match(path ?? '', /^\/usr\/local\/sbin:/, "with the container's environment");
  const listener = r.report.listening.find((l) => l.address === '127.0.0.1:8080');
  t.equal(listener?.uid, 4242, 'the listener, with its uid');

  const health = await check(['--container', c.name, '--ready', 'health'], podmanEnv());
  t.equal(health.code, 1, 'health not yet checked by podman (no systemd timers here): exit 1');
  t.equal(health.report.health?.status, 'starting');
  const none = await check(['--container', `nsproxy-t-${process.pid}-no-such`], podmanEnv());
  t.equal(none.code, 1, 'no such container: exit 1');
  t.match(none.report.problems[0] ?? '', /podman has no container 'nsproxy-t-\d+-no-such'/);
});
