// Start-up failures: exit 2 for bad usage/configuration, 1 for runtime failures;
// exactly one stderr line `nsproxy: <what is wrong>; <what to do>`, no stack trace.
// Plus --help and --version.
import t from 'tap';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { startUnshareServer } from './helpers/namespaces';
import { runNsproxy } from './helpers/nsproxy';
import { packageVersion } from './helpers/env';
import { runCommand } from './helpers/procs';
import { assertOneStderrLine, requireProduct } from './helpers/checks';

const TARGET_PORT = 5432;
const TO = `127.0.0.1:${TARGET_PORT}`;

t.test('start-up errors', async (t) => {
  if (!requireProduct(t)) return;
  // a real, reachable target, so that only the one bad input is wrong in each case
  const server = await startUnshareServer(t, 'hash', [TO]);
  const pid = String(server.pid);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsproxy-t-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const regularFile = path.join(tmp, 'not-a-netns');
  fs.writeFileSync(regularFile, 'just a file\n');

  // a PID that certainly does not exist: one we spawned and reaped
  const reaped = await (async () => {
    const r = await runCommand('sh', ['-c', 'echo $$']);
    return r.stdout.trim();
  })();
  const pidMax = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  const missingNs = `nsproxy-t-${process.pid}-does-not-exist`;

  const cases: Array<[string, string[], number]> = [
    ['neither --pid nor --netns', ['--to', TO], 2],
    ['--pid not a number', ['--pid', 'abc', '--to', TO], 2],
    ['--pid negative', ['--pid', '-5', '--to', TO], 2],
    ['--pid above pid_max (4194303)', ['--pid', '4194303', '--to', TO], 2],
    ['--pid of a reaped process', ['--pid', reaped, '--to', TO], 2],
    ['--netns NAME that does not exist', ['--netns', missingNs, '--to', TO], 2],
    ['--netns path that does not exist', ['--netns', `/run/netns/${missingNs}`, '--to', TO], 2],
    ['--netns path that is a regular file', ['--netns', regularFile, '--to', TO], 2],
    ['--netns path that is a directory', ['--netns', tmp, '--to', TO], 2],
    ['both --pid and --netns', ['--pid', pid, '--netns', '/proc/self/ns/net', '--to', TO], 2],
    ['--to missing', ['--pid', pid], 2],
    ['--to without port', ['--pid', pid, '--to', '127.0.0.1'], 2],
    ['--to port 0', ['--pid', pid, '--to', '127.0.0.1:0'], 2],
    ['--to port 65536', ['--pid', pid, '--to', '127.0.0.1:65536'], 2],
    ['--to nonsense:80', ['--pid', pid, '--to', 'nonsense:80'], 2],
    ['--to 1.2.3:80', ['--pid', pid, '--to', '1.2.3:80'], 2],
    ['--to IPv6 without brackets', ['--pid', pid, '--to', '::1:80'], 2],
    ['--listen port 65536', ['--pid', pid, '--to', TO, '--listen', '127.0.0.1:65536'], 2],
    ['--listen unparsable', ['--pid', pid, '--to', TO, '--listen', 'nonsense:80'], 2],
    ['--connections-max 0', ['--pid', pid, '--to', TO, '--listen', '127.0.0.1:0', '--connections-max', '0'], 2],
    ['--connections-max not a number', ['--pid', pid, '--to', TO, '--listen', '127.0.0.1:0', '--connections-max', 'lots'], 2],
    ['--log-level unknown', ['--pid', pid, '--to', TO, '--listen', '127.0.0.1:0', '--log-level', 'loud'], 2],
    ['unknown option', ['--pid', pid, '--to', TO, '--listen', '127.0.0.1:0', '--frobnicate'], 2],
  ];
  t.ok(4194303 >= pidMax || !fs.existsSync('/proc/4194303'), 'pid 4194303 does not exist');
  t.notOk(fs.existsSync(`/proc/${reaped}`), `pid ${reaped} was reaped`);

  for (const [name, args, code] of cases) {
    await t.test(`${name} -> exit ${code}`, async (t) => {
      const r = await runNsproxy(args);
      assertOneStderrLine(t, r, code);
    });
  }

  await t.test('--listen on a port in use -> exit 1', async (t) => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    const busy = (holder.address() as net.AddressInfo).port;
    const r = await runNsproxy(['--pid', pid, '--to', TO, '--listen', `127.0.0.1:${busy}`]);
    assertOneStderrLine(t, r, 1);
    t.match(r.stderr, String(busy), 'names the port');
  });

  await t.test('default listener (127.0.0.1:<port of --to>) in use -> exit 1', async (t) => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    const busy = (holder.address() as net.AddressInfo).port;
    // the target port inside the namespace is free there; the same number is busy on the host
    const r = await runNsproxy(['--pid', pid, '--to', `127.0.0.1:${busy}`]);
    assertOneStderrLine(t, r, 1);
  });
});

t.test('--help', async (t) => {
  if (!requireProduct(t)) return;
  const r = await runNsproxy(['--help']);
  t.equal(r.code, 0, 'exit 0', { stderr: r.stderr });
  for (const word of ['--pid', '--netns', '--to', '--listen']) {
    t.match(r.stdout, word, `mentions ${word}`);
  }
  t.match(r.stdout, /examples/i, 'has examples');
});

t.test('--version', async (t) => {
  if (!requireProduct(t)) return;
  const r = await runNsproxy(['--version']);
  t.equal(r.code, 0, 'exit 0', { stderr: r.stderr });
  const v = packageVersion();
  t.match(r.stdout.trim(), new RegExp(`(^|\\s|v)${v.replace(/\./g, '\\.')}$`), `prints ${v}`);
});
