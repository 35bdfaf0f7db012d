import * as fs from 'node:fs';
import * as path from 'node:path';

import t from 'tap';

import { generateUnits, quoteWord, SYSTEM_HARDENING, USER_HARDENING, type UnitsInput } from '../../src/units';

const input: UnitsInput = {
  name: 'nsproxy-db',
  container: 'db',
  containerUnit: 'db.service',
  listen: ['127.0.0.1:5432'],
  to: '127.0.0.1:5432',
  extraArgs: ['--ready-exec', 'pg_isready -h 127.0.0.1'],
  nsproxy: '/usr/local/bin/nsproxy',
  user: true,
  timeoutStart: '90s',
  version: '0.1.0',
};

function keys(text: string, key: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
}

t.test('a socket and a service; Type=notify, ExecReload=, Requires= the container unit', async (t) => {
  const files = generateUnits(input);
  t.same(files.map((f) => f.path), ['nsproxy-db.socket', 'nsproxy-db.service']);
  const [socket, service] = files.map((f) => f.text) as [string, string];
  t.same(keys(socket, 'ListenStream'), ['127.0.0.1:5432']);
  t.same(keys(socket, 'WantedBy'), ['sockets.target']);
  t.same(keys(service, 'Type'), ['notify']);
  t.same(keys(service, 'ExecStart'), ['/usr/local/bin/nsproxy --container db --to 127.0.0.1:5432 --ready-exec "pg_isready -h 127.0.0.1"']);
  t.same(keys(service, 'ExecReload'), ['kill -HUP $MAINPID']);
  t.same(keys(service, 'Requires'), ['nsproxy-db.socket db.service']);
  t.same(keys(service, 'After'), ['nsproxy-db.socket db.service']);
  t.same(keys(service, 'RestartPreventExitStatus'), ['2']);
  t.notMatch(service, /^\[Install\]/m, 'the service has no [Install]: the socket starts it');
  t.match(service, /default\.target\.wants/, 'the migration note: the stale enable link of an older activator');
  t.match(service, /systemctl --user disable --now OLD\.service/);
  for (const f of files) t.match(f.text.split('\n')[0] as string, new RegExp(`^# ${f.path.replace(/\./g, '\\.')} — `), `${f.path}: header naming the file`);
});

t.test('user and system managers get the hardening that works there', async (t) => {
  const [, user] = generateUnits(input);
  const [, system] = generateUnits({ ...input, user: false });
  for (const line of USER_HARDENING) t.ok(user?.text.includes(`\n${line}\n`), `user: ${line}`);
  for (const line of SYSTEM_HARDENING) t.ok(system?.text.includes(`\n${line}\n`), `system: ${line}`);
  t.notMatch(user?.text ?? '', /^ProtectSystem=/m, 'user: no ProtectSystem= (not applied by a user manager, breaks podman on newer systemd)');
});

t.test('the generated user hardening is the shipped hardened drop-in', async (t) => {
  const shipped = fs.readFileSync(path.join(__dirname, '..', '..', 'systemd', 'hardened', 'postgresql-activator.service.d', '50-hardening.conf'), 'utf8');
  const lines = shipped.split('\n').filter((l) => /^[A-Z]\w+=/.test(l));
  t.same(lines, USER_HARDENING);
});

t.test('scale to zero: the idle time in one Environment= line, StopWhenUnneeded= for the container', async (t) => {
  const files = generateUnits({ ...input, scaleToZero: '5min' });
  t.same(files.map((f) => f.path), ['nsproxy-db.socket', 'nsproxy-db.service', 'db.service.d/50-scale-to-zero.conf']);
  t.same(keys(files[1]?.text ?? '', 'Environment'), ['NSPROXY_EXIT_IDLE_TIME=5min']);
  t.same(keys(files[2]?.text ?? '', 'StopWhenUnneeded'), ['yes']);
});

t.test('quadlet: a .container with no network; scale to zero goes into it', async (t) => {
  const files = generateUnits({ ...input, scaleToZero: '5min', quadletImage: 'docker.io/library/postgres:16' });
  t.same(files.map((f) => [f.path, f.kind]), [['nsproxy-db.socket', 'unit'], ['nsproxy-db.service', 'unit'], ['db.container', 'quadlet']]);
  const quadlet = files[2]?.text ?? '';
  t.same(keys(quadlet, 'Image'), ['docker.io/library/postgres:16']);
  t.same(keys(quadlet, 'Network'), ['none']);
  t.same(keys(quadlet, 'StopWhenUnneeded'), ['yes']);
  t.notMatch(quadlet, /^\[Install\]/m);
});

t.test('ExecStart= words are quoted as systemd reads them', async (t) => {
  t.equal(quoteWord('--to'), '--to');
  t.equal(quoteWord('a b'), '"a b"');
  t.equal(quoteWord('say "hi"'), '"say \\"hi\\""');
  t.equal(quoteWord('$HOME'), '"$$HOME"');
  t.equal(quoteWord('100%'), '"100%%"');
  t.equal(quoteWord(''), '""');
});
