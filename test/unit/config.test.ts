import t from 'tap';

import { buildConfig } from '../../src/config';

t.test('a minimal --pid config gets the documented defaults', async (t) => {
  const config = buildConfig({ pid: '4242', to: '127.0.0.1:5432' });
  t.same(config.target, { kind: 'pid', pid: 4242 });
  t.same(config.listen, []);
  t.same(config.defaultListen, { address: '127.0.0.1', port: 5432, family: 4 });
  t.equal(config.connectionsMax, 4096);
  t.equal(config.backlog, 128);
  t.equal(config.threads, 1);
  t.equal(config.logLevel, 'info');
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

t.test('bad combinations and values are usage errors', async (t) => {
  const cases: [Parameters<typeof buildConfig>[0], RegExp][] = [
    [{ to: '127.0.0.1:1' }, /no target namespace; give --pid PID or --netns/],
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
