// `nsproxy generate` without a manager: what it writes, that systemd-analyze verify accepts the
// units for a user and a system manager, and its usage errors. The units run for real under a
// systemd --user manager in generate-user.test.ts.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { assertOneStderrLine, requireProduct } from './helpers/checks';
import { runNsproxy } from './helpers/nsproxy';
import { runCommand } from './helpers/procs';

function tmpdir(t: tap.Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsproxy-t-generate-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function values(text: string, key: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
}

async function verify(t: tap.Test, dir: string, units: string[], label: string): Promise<void> {
  const r = await runCommand('systemd-analyze', ['verify', '--man=no', ...units], { cwd: dir, timeoutMs: 60000, env: { ...process.env, SYSTEMD_LOG_LEVEL: 'notice' } });
  t.equal(r.code, 0, `${label}: systemd-analyze verify exits 0`, { stderr: r.stderr });
  t.equal(r.stderr.trim(), '', `${label}: no warning`, { stderr: r.stderr });
}

t.test('user units: socket, service, scale-to-zero drop-in; systemd-analyze verify', async (t) => {
  if (!requireProduct(t)) return;
  const dir = tmpdir(t);
  const r = await runNsproxy([
    'generate', '--container', 'db', '--to', '127.0.0.1:5432', '--listen', '5432', '--listen', '[::1]:5432', '--user', '--scale-to-zero',
    '--ready-exec', 'pg_isready -h 127.0.0.1', '--connections-max', '100', '--nsproxy', '/usr/bin/true', '--output-dir', dir,
  ]);
  t.equal(r.code, 0, 'exit 0', { stderr: r.stderr });
  t.same(r.stdout.trim().split('\n').map((l) => path.relative(dir, l.replace(/^wrote /, ''))).sort(), ['db.service.d/50-scale-to-zero.conf', 'nsproxy-db.service', 'nsproxy-db.socket']);
  const socket = fs.readFileSync(path.join(dir, 'nsproxy-db.socket'), 'utf8');
  const service = fs.readFileSync(path.join(dir, 'nsproxy-db.service'), 'utf8');
  t.same(values(socket, 'ListenStream'), ['127.0.0.1:5432', '[::1]:5432'], 'ListenStream= from --listen (PORT alone is 127.0.0.1:PORT, as for the daemon)');
  t.same(values(service, 'ExecStart'), ['/usr/bin/true --container db --to 127.0.0.1:5432 --ready-exec "pg_isready -h 127.0.0.1" --connections-max 100']);
  t.same(values(service, 'Environment'), ['NSPROXY_EXIT_IDLE_TIME=5min'], 'scale to zero: the idle time as one variable');
  t.same(values(service, 'ExecReload'), ['kill -HUP $MAINPID']);
  t.same(values(service, 'NoNewPrivileges'), ['yes'], 'the user-manager hardening');
  t.same(values(service, 'ProtectSystem'), [], 'nothing a user manager cannot apply');
  t.match(service, /# Replacing an older activator/);
  t.match(service, /systemctl --user disable --now OLD\.service/, 'the migration note, for the user manager');
  fs.writeFileSync(path.join(dir, 'db.service'), '[Service]\nExecStart=/usr/bin/true\n'); // stands in for the quadlet's unit
  await verify(t, dir, ['nsproxy-db.socket', 'nsproxy-db.service', 'db.service'], 'user units');
});

t.test('system units and a quadlet; stdout', async (t) => {
  if (!requireProduct(t)) return;
  const dir = tmpdir(t);
  const r = await runNsproxy(['generate', '--container', 'web', '--to', '@podman:8080', '--listen', '0.0.0.0:80', '--quadlet', '--image', 'docker.io/library/nginx:latest', '--name', 'web-front', '--nsproxy', '/usr/bin/true', '--output-dir', dir]);
  t.equal(r.code, 0, 'exit 0', { stderr: r.stderr });
  const service = fs.readFileSync(path.join(dir, 'web-front.service'), 'utf8');
  t.same(values(service, 'ProtectSystem'), ['full'], 'the system-manager hardening');
  t.match(service, /systemctl disable --now OLD\.service/);
  const quadlet = fs.readFileSync(path.join(dir, 'web.container'), 'utf8');
  t.same(values(quadlet, 'Image'), ['docker.io/library/nginx:latest']);
  t.same(values(quadlet, 'ContainerName'), ['web']);
  t.same(values(quadlet, 'Network'), ['none']);
  fs.writeFileSync(path.join(dir, 'web.service'), '[Service]\nExecStart=/usr/bin/true\n');
  await verify(t, dir, ['web-front.socket', 'web-front.service', 'web.service'], 'system units');

  const out = await runNsproxy(['generate', '--container', 'web', '--to', '127.0.0.1:8080']);
  t.equal(out.code, 0);
  t.match(out.stdout, /^# nsproxy-web\.socket — /m, 'to stdout: the socket');
  t.match(out.stdout, /^# nsproxy-web\.service — /m, 'and the service');
  t.match(out.stdout, /^ListenStream=127\.0\.0\.1:8080$/m, 'default listener: the port of --to on loopback');
});

t.test('usage errors', async (t) => {
  if (!requireProduct(t)) return;
  const cases: Array<[string[], RegExp]> = [
    [['generate', '--to', '127.0.0.1:1'], /generate needs --container NAME/],
    [['generate', '--container', 'c', '--to', '127.0.0.1:1', '--listen', '127.0.0.1:0'], /a socket unit needs a fixed port/],
    [['generate', '--container', 'c', '--to', 'a=127.0.0.1:1', '--to', 'b=127.0.0.1:2'], /generate takes one --to without NAME=/],
    [['generate', '--container', 'c', '--to', 'nonsense'], /--to 'nonsense'/],
    [['generate', '--container', 'c', '--to', '127.0.0.1:1', '--name', 'a b'], /--name 'a b': not a unit name/],
    [['generate', '--container', 'c', '--to', '127.0.0.1:1', '--frobnicate'], /Unknown argument: frobnicate/],
  ];
  for (const [args, message] of cases) {
    const r = await runNsproxy(args);
    assertOneStderrLine(t, r, 2);
    t.match(r.stderr, message, args.join(' '));
  }
});
