import t from 'tap';

import { buildConfig } from '../../src/config';
import { keepaliveOptions } from '../../src/daemon';

t.test('a minimal --pid config gets the documented defaults', async (t) => {
  const config = buildConfig({ pid: '4242', to: '127.0.0.1:5432' });
  t.same(config.target, { kind: 'pid', pid: 4242 });
  t.same(config.routes, [{ name: undefined, destination: { kind: 'address', endpoint: { address: '127.0.0.1', port: 5432, family: 4 } } }]);
  t.equal(config.readyTimeoutMs, 60_000);
  t.equal(config.exitIdleTimeMs, undefined);
  t.equal(config.drainTimeoutMs, 10_000);
  t.equal(config.connectTimeoutMs, 10_000);
  t.equal(config.keepaliveMs, 120_000);
  t.same(config.listen, []);
  t.same(config.defaultListen, { address: '127.0.0.1', port: 5432, family: 4 });
  t.equal(config.connectionsMax, 4096);
  t.equal(config.backlog, 128);
  t.equal(config.threads, 1);
  t.equal(config.logLevel, 'info');
  t.equal(config.engine, 'auto');
  t.equal(config.sockmapAfter, 4);
  t.equal(config.sockmapBulkBytes, 256 * 1024);
});

t.test('--sockmap-after: 0 (join at once) and up; anything else is a usage error', async (t) => {
  t.equal(buildConfig({ pid: '1', to: '127.0.0.1:1', sockmapAfter: '0' }).sockmapAfter, 0);
  t.equal(buildConfig({ pid: '1', to: '127.0.0.1:1', sockmapAfter: '12' }).sockmapAfter, 12);
  t.throws(() => buildConfig({ pid: '1', to: '127.0.0.1:1', sockmapAfter: 'x' }), /--sockmap-after 'x': not a whole number from 0 to 1000000; e.g. --sockmap-after 4/);
  t.throws(() => buildConfig({ pid: '1', to: '127.0.0.1:1', sockmapAfter: '-1' }), /--sockmap-after '-1'/);
});

t.test('--netns NAME means /run/netns/NAME; a path is kept', async (t) => {
  t.same(buildConfig({ netns: 'blue', to: '10.0.0.2:80' }).target, { kind: 'netns', path: '/run/netns/blue', name: 'blue' });
  t.same(buildConfig({ netns: '/proc/1/ns/net', to: '10.0.0.2:80' }).target, { kind: 'netns', path: '/proc/1/ns/net', name: '/proc/1/ns/net' });
});

t.test('IPv6 target listens on host ::1 by default', async (t) => {
  t.same(buildConfig({ pid: '1', to: '[::1]:5432' }).defaultListen, { address: '::1', port: 5432, family: 6 });
});

t.test('--debug implies log level debug unless --log-level says otherwise', async (t) => {
  t.equal(buildConfig({ pid: '1', to: '127.0.0.1:1', debug: true }).logLevel, 'debug');
  t.equal(buildConfig({ pid: '1', to: '127.0.0.1:1', debug: true, logLevel: 'warn' }).logLevel, 'warn');
});

t.test('--container with its runtime, and the --to forms', async (t) => {
  const config = buildConfig({ container: 'test-postgresql', to: ['127.0.0.1:5432', 'web=@podman:80', 'admin=[::1]:81'], runtime: 'runc', runcRoot: '/run/x' });
  t.same(config.target, { kind: 'container', name: 'test-postgresql', runtime: 'runc', runcRoot: '/run/x' });
  t.same(config.routes, [
    { name: undefined, destination: { kind: 'address', endpoint: { address: '127.0.0.1', port: 5432, family: 4 } } },
    { name: 'web', destination: { kind: 'network', network: 'podman', port: 80 } },
    { name: 'admin', destination: { kind: 'address', endpoint: { address: '::1', port: 81, family: 6 } } },
  ]);
  t.same(config.defaultListen, { address: '127.0.0.1', port: 5432, family: 4 }, 'default listener from the unnamed --to');
  t.same(buildConfig({ container: 'c', to: '@podman:8080' }).defaultListen, { address: '127.0.0.1', port: 8080, family: 4 });
  t.throws(() => buildConfig({ container: 'c', to: 'web=@podman:0' }), { code: 'NSPROXY_ERR_INVALID_ADDRESS', exitCode: 2, message: "--to 'web=@podman:0': port 0 is out of range" });
});

t.test('durations are systemd time spans', async (t) => {
  const config = buildConfig({ pid: '1', to: '127.0.0.1:1', readyTimeout: '1m30s', exitIdleTime: '500ms', drainTimeout: '2' });
  t.equal(config.readyTimeoutMs, 90_000);
  t.equal(config.exitIdleTimeMs, 500);
  t.equal(config.drainTimeoutMs, 2000);
  t.equal(buildConfig({ pid: '1', to: '127.0.0.1:1', exitIdleTime: 'infinity' }).exitIdleTimeMs, undefined);
});

t.test('--connect-timeout and --keepalive: a time span, or off', async (t) => {
  const config = buildConfig({ pid: '1', to: '127.0.0.1:1', connectTimeout: '3s', keepalive: '30s' });
  t.equal(config.connectTimeoutMs, 3000);
  t.equal(config.keepaliveMs, 30_000);
  for (const off of ['off', '0', 'infinity']) {
    t.equal(buildConfig({ pid: '1', to: '127.0.0.1:1', connectTimeout: off }).connectTimeoutMs, 0, `--connect-timeout ${off}`);
    t.equal(buildConfig({ pid: '1', to: '127.0.0.1:1', keepalive: off }).keepaliveMs, 0, `--keepalive ${off}`);
  }
  t.throws(() => buildConfig({ pid: '1', to: '127.0.0.1:1', keepalive: 'often' }), { code: 'NSPROXY_ERR_USAGE', message: /--keepalive 'often': not a time span/ });
});

t.test('--keepalive becomes kernel keepalive settings for both legs', async (t) => {
  t.same(keepaliveOptions(120_000), { keepaliveIdleS: 120, keepaliveIntervalS: 30, keepaliveCount: 4 });
  t.same(keepaliveOptions(2000), { keepaliveIdleS: 2, keepaliveIntervalS: 1, keepaliveCount: 4 });
  t.same(keepaliveOptions(0), { keepaliveIdleS: 0, keepaliveIntervalS: 1, keepaliveCount: 0 }, 'off');
});

t.test('bad combinations and values are usage errors', async (t) => {
  const cases: [Parameters<typeof buildConfig>[0], RegExp][] = [
    [{ to: '127.0.0.1:1' }, /no target namespace; give --container NAME, --pid PID or --netns/],
    [{ container: 'c', pid: '1', to: '127.0.0.1:1' }, /--pid and --container both given; name the target namespace once/],
    [{ container: 'c', runtime: 'docker', to: '127.0.0.1:1' }, /--runtime 'docker': not supported; use one of podman, runc/],
    [{ pid: '1', runtime: 'runc', to: '127.0.0.1:1' }, /--runtime applies to --container only/],
    [{ pid: '1', to: '@podman:80' }, /addresses on a network need --container/],
    [{ container: 'c', to: ['127.0.0.1:1', '127.0.0.1:2'] }, /--to given more than once without NAME=; name the sockets/],
    [{ container: 'c', to: ['a=127.0.0.1:1', 'a=127.0.0.1:2'] }, /--to a= given twice/],
    [{ pid: '1', to: '127.0.0.1:1', readyTimeout: 'soon' }, /--ready-timeout 'soon': not a time span; write e.g. 90s/],
    [{ pid: '1', to: '127.0.0.1:1', drainTimeout: '5 parsecs' }, /--drain-timeout '5 parsecs': not a time span/],
    [{ pid: 'x', to: '127.0.0.1:1' }, /--pid 'x': not a process ID/],
    [{ pid: '0', to: '127.0.0.1:1' }, /--pid '0': not a process ID/],
    [{ pid: '1', netns: 'blue', to: '127.0.0.1:1' }, /--pid and --netns both given/],
    [{ pid: ['1', '2'], to: '127.0.0.1:1' }, /--pid given 2 times/],
    [{ pid: '1' }, /--to is missing/],
    [{ pid: '1', to: '127.0.0.1:1', connectionsMax: '0' }, /--connections-max '0': not a whole number from 1 to 1000000; e.g. --connections-max 4096/],
    [{ pid: '1', to: '127.0.0.1:1', connectionsMax: '-5' }, /--connections-max '-5'/],
    [{ pid: '1', to: '127.0.0.1:1', threads: '1.5' }, /--threads '1.5'/],
    [{ pid: '1', to: '127.0.0.1:1', logLevel: 'loud' }, /--log-level 'loud': not a log level; use one of/],
    [{ netns: '', to: '127.0.0.1:1' }, /--netns is empty/],
  ];
  for (const [raw, pattern] of cases) {
    t.throws(() => buildConfig(raw), { code: 'NSPROXY_ERR_USAGE', exitCode: 2, message: pattern }, JSON.stringify(raw));
  }
});

t.test('--ready-exec and --ready health', async (t) => {
  const c = buildConfig({ container: 'db', to: '127.0.0.1:5432', readyExec: "sh -c 'pg_isready -h 127.0.0.1'", ready: 'health' });
  t.same(c.readyExec, { command: "sh -c 'pg_isready -h 127.0.0.1'", argv: ['sh', '-c', 'pg_isready -h 127.0.0.1'] });
  t.equal(c.readyHealth, true);
  t.equal(buildConfig({ pid: '1', to: '127.0.0.1:1', ready: 'tcp' }).readyHealth, false);
  const bad: [Parameters<typeof buildConfig>[0], RegExp][] = [
    [{ pid: '1', to: '127.0.0.1:1', ready: 'health' }, /--ready health needs --container with podman/],
    [{ container: 'c', runtime: 'runc', to: '127.0.0.1:1', ready: 'health' }, /--ready health needs --container with podman/],
    [{ pid: '1', to: '127.0.0.1:1', ready: 'exec' }, /--ready 'exec': not a readiness kind; use one of tcp, health/],
    [{ pid: '1', to: '127.0.0.1:1', readyExec: '' }, /--ready-exec is empty/],
    [{ pid: '1', to: '127.0.0.1:1', readyExec: "sh -c 'x" }, /--ready-exec 'sh -c 'x': a ' is not closed; quote the command/],
  ];
  for (const [raw, message] of bad) t.throws(() => buildConfig(raw), { code: 'NSPROXY_ERR_USAGE', exitCode: 2, message }, JSON.stringify(raw));
});

t.test('localhost means 127.0.0.1; Unix socket paths are refused clearly', async (t) => {
  t.same(buildConfig({ pid: '1', to: 'localhost:5432' }).routes[0]?.destination, { kind: 'address', endpoint: { address: '127.0.0.1', port: 5432, family: 4 } });
  t.same(buildConfig({ pid: '1', to: '127.0.0.1:1', listen: 'localhost:8080' }).listen, [{ address: '127.0.0.1', port: 8080, family: 4 }]);
  t.throws(() => buildConfig({ pid: '1', to: '/run/postgresql/.s.PGSQL.5432' }), { code: 'NSPROXY_ERR_INVALID_ADDRESS', message: /a Unix socket path; nsproxy forwards to TCP addresses only/ });
});

t.test('--log-connections; --exit-idle-time infinity means never', async (t) => {
  t.equal(buildConfig({ pid: '1', to: '127.0.0.1:1', logConnections: true }).logConnections, true);
  t.equal(buildConfig({ pid: '1', to: '127.0.0.1:1' }).logConnections, false);
  t.equal(buildConfig({ pid: '1', to: '127.0.0.1:1', exitIdleTime: 'infinity' }).exitIdleTimeMs, undefined);
  t.equal(buildConfig({ pid: '1', to: '127.0.0.1:1', readyTimeout: 'infinity' }).readyTimeoutMs, Infinity);
});
