// quickParse() (yargs-parser, without yargs) against yargs proper, over the same option table:
// wherever quickParse answers, yargs must have answered exactly the same; where yargs prints
// help or an error, quickParse must leave it to yargs.
import t from 'tap';

import { quickParse } from '../../src/args';
import { OPTIONS, parseWithYargs, yargsFor } from '../../src/cli';

const ACCEPTED: string[][] = [
  ['--netns', 'blue', '--to', '127.0.0.1:5432'],
  ['--netns=blue', '--to=127.0.0.1:5432'],
  ['--pid', '4242', '--to', '127.0.0.1:5432', '--listen', '0.0.0.0:5432', '--listen', '[::1]:5432'],
  ['--container', 'web', '--runtime', 'runc', '--runc-root', '/run/x', '--to', 'a=@podman:80', '--to', 'b=[::1]:81'],
  ['--container', 'web', '--runcRoot', '/run/x', '--to', '127.0.0.1:80'],
  ['--pid', '1', '--to', '127.0.0.1:1', '--connections-max', '0042', '--backlog', '7', '--threads', '2'],
  ['--pid', '1', '--to', '127.0.0.1:1', '--ready-timeout', '5s', '--exit-idle-time', '5min', '--drain-timeout', '0'],
  ['--pid', '1', '--to', '127.0.0.1:1', '--log-level', 'warn', '--debug'],
  ['--pid', '1', '--to', '127.0.0.1:1', '--no-debug'],
  ['--pid', '1', '--to', '127.0.0.1:1', '--debug=false'],
  ['--pid', '1', '--pid', '2', '--to', '127.0.0.1:1'],
  ['--to', ''],
  ['--to='],
  ['--threads', '1e3'],
  [],
];

// yargs prints help or the version, or fails: quickParse must not answer.
const LEFT_TO_YARGS: string[][] = [
  ['--help'],
  ['-h'],
  ['--version'],
  ['--pid', '1', '--to', '127.0.0.1:1', '--help'],
  ['--bogus'],
  ['-x'],
  ['--NETNS', 'x'],
  ['--netns'],
  ['--pid', '1', '--to', '127.0.0.1:1', '--threads'],
  ['--pid', '1', '--to', '127.0.0.1:1', 'extra'],
  ['--pid', '1', '--to', '127.0.0.1:1', '--', 'extra'],
  ['--pid', '1', '--to', '127.0.0.1:1', '--no-to'],
  ['--pid', '1', '--to', '127.0.0.1:1', '--debug', 'yes'],
];

/** What yargs gives, or that it failed (help and version print, and resolve with help/version set). */
async function viaYargs(argv: string[]): Promise<Record<string, unknown> | 'failed'> {
  const write = process.stdout.write;
  process.stdout.write = () => true;  // --help and --version print
  try {
    return { ...(await parseWithYargs(argv)) };
  } catch {
    return 'failed';
  } finally {
    process.stdout.write = write;
  }
}

t.test('where quickParse answers, yargs answers the same', async (t) => {
  for (const argv of ACCEPTED) {
    const quick = quickParse(argv, OPTIONS, 'nsproxy');
    t.ok(quick, `answered: ${argv.join(' ')}`);
    t.strictSame(quick, await viaYargs(argv), `same as yargs: ${argv.join(' ')}`);
  }
});

t.test('help, version, unknown options, missing values and positionals are left to yargs', async (t) => {
  for (const argv of LEFT_TO_YARGS) {
    t.equal(quickParse(argv, OPTIONS, 'nsproxy'), undefined, `left to yargs: ${argv.join(' ')}`);
    const yargs = await viaYargs(argv);
    t.ok(yargs === 'failed' || yargs['help'] || yargs['version'] || (yargs['_'] as unknown[]).length > 0 || Array.isArray(yargs['to']) || yargs['debug'] === true, `yargs has something to say: ${argv.join(' ')}`);
  }
});

t.test('yargs is set up with nothing quickParse does not know of', async (t) => {
  // An env prefix, defaults, coercions, choices or a config file would change what yargs returns
  // for a plain command line: teach quickParse() the same, or it answers differently.
  const options = (yargsFor([]) as unknown as { getOptions(): Record<string, unknown> }).getOptions();
  t.strictSame(options['string'], Object.keys(OPTIONS).filter((name) => OPTIONS[name]!.type === 'string'), 'the string options are the table\'s');
  t.strictSame([...(options['boolean'] as string[])].sort(), [...Object.keys(OPTIONS).filter((name) => OPTIONS[name]!.type === 'boolean'), 'help', 'version'].sort(), 'the boolean options are the table\'s, --help and --version');
  t.equal(options['envPrefix'], undefined, 'no environment variables');
  for (const key of ['default', 'coerce', 'choices', 'config', 'count', 'number', 'array', 'normalize', 'demandedOptions'] as const) {
    const value = options[key];
    t.ok(value === undefined || (Array.isArray(value) ? value.length === 0 : Object.keys(value as object).length === 0), `no ${key}`);
  }
});
