import t from 'tap';

import { attributeToEnvironment, envArguments, scanArguments } from '../../src/env-options';
import { DAEMON_OPTIONS, envName } from '../../src/options';

t.test('every option has its NSPROXY_ variable', async (t) => {
  t.equal(envName('to'), 'NSPROXY_TO');
  t.equal(envName('connections-max'), 'NSPROXY_CONNECTIONS_MAX');
  t.equal(envName('exit-idle-time'), 'NSPROXY_EXIT_IDLE_TIME');
  for (const option of DAEMON_OPTIONS) {
    const { args } = envArguments({ [envName(option.name)]: option.type === 'boolean' ? '1' : 'x' }, DAEMON_OPTIONS, new Set());
    t.ok(args.length > 0 && args[0]?.startsWith(`--${option.name}`), `${envName(option.name)} sets --${option.name}`);
  }
});

t.test('the environment fills in what the command line does not say', async (t) => {
  const env = { NSPROXY_TO: '127.0.0.1:5432', NSPROXY_EXIT_IDLE_TIME: '5min', NSPROXY_LISTEN: '5432  [::1]:5432', NSPROXY_LOG_CONNECTIONS: 'yes', NSPROXY_DEBUG: '0', PATH: '/bin' };
  const { args, sources } = envArguments(env, DAEMON_OPTIONS, new Set(['container']));
  t.same(args.sort(), ['--exit-idle-time=5min', '--listen=5432', '--listen=[::1]:5432', '--log-connections', '--to=127.0.0.1:5432'].sort());
  t.equal(sources.get('exit-idle-time'), 'NSPROXY_EXIT_IDLE_TIME');
  t.notOk(sources.has('container'));
});

t.test('the command line wins; empty values are unset', async (t) => {
  const { args } = envArguments({ NSPROXY_TO: '10.0.0.1:1', NSPROXY_THREADS: '' }, DAEMON_OPTIONS, new Set(['to']));
  t.same(args, []);
});

t.test('unknown NSPROXY_ variables and bad booleans are usage errors', async (t) => {
  t.throws(() => envArguments({ NSPROXY_EXIT_IDLE: '5min' }, DAEMON_OPTIONS, new Set()), { code: 'NSPROXY_ERR_USAGE', exitCode: 2, message: /^NSPROXY_EXIT_IDLE is set, but nsproxy has no option it would set; unset it/ });
  t.throws(() => envArguments({ NSPROXY_LOG_CONNECTIONS: 'maybe' }, DAEMON_OPTIONS, new Set()), { code: 'NSPROXY_ERR_USAGE', message: /NSPROXY_LOG_CONNECTIONS='maybe': not a boolean; write 1 or 0/ });
});

t.test('scanning the command line: given options and free words', async (t) => {
  const scanned = scanArguments(['--container', 'db', '127.0.0.1:5432', '--log-connections', '--to=x', '--listen', '5432', '--no-debug'], DAEMON_OPTIONS);
  t.same([...scanned.given].sort(), ['container', 'debug', 'listen', 'log-connections', 'to']);
  t.same(scanned.positionals, ['127.0.0.1:5432']);
  t.same(scanArguments(['--', '--x'], DAEMON_OPTIONS).positionals, ['--x']);
});

t.test("errors say which variable a bad value came from", async (t) => {
  const sources = new Map([['ready-timeout', 'NSPROXY_READY_TIMEOUT'], ['to', 'NSPROXY_TO']]);
  t.equal(
    attributeToEnvironment("--ready-timeout 'soon': not a time span; write e.g. 90s", sources),
    "--ready-timeout 'soon' (from NSPROXY_READY_TIMEOUT): not a time span; write e.g. 90s",
  );
  t.equal(attributeToEnvironment('--to is missing; give ...', sources), '--to (from NSPROXY_TO) is missing; give ...');
  t.equal(attributeToEnvironment("--threads 'x': bad", sources), "--threads 'x': bad", 'options from the command line are left alone');
});
