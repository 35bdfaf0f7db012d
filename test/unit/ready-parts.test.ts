import t from 'tap';

import { splitCommand } from '../../src/command-words';
import { candidatesFor, describeOutcome, execCheck } from '../../src/ready-exec';
import { describeHealth } from '../../src/ready-health';
import { waitUntilReady } from '../../src/readiness';
import type { Target } from '../../src/target';
import type { ExecOutcome } from '../../src/native';
import { fakeNative } from './fake-native';

t.test('--ready-exec commands split as a shell splits simple words', async (t) => {
  t.same(splitCommand('pg_isready -h 127.0.0.1'), ['pg_isready', '-h', '127.0.0.1']);
  t.same(splitCommand(`sh -c 'pg_isready && test -e /tmp/x'`), ['sh', '-c', 'pg_isready && test -e /tmp/x']);
  t.same(splitCommand('echo "a \\"b\\" c" d\\ e'), ['echo', 'a "b" c', 'd e']);
  t.same(splitCommand("  a  ''  b "), ['a', '', 'b']);
  t.throws(() => splitCommand("sh -c 'x"), /' is not closed/);
  t.throws(() => splitCommand('a "b'), /" is not closed/);
  t.throws(() => splitCommand('a \\'), /lone \\/);
});

t.test("argv[0] is searched in the target's PATH", async (t) => {
  t.same(candidatesFor('/usr/bin/pg_isready', ['PATH=/x']), ['/usr/bin/pg_isready']);
  t.same(candidatesFor('pg_isready', ['HOME=/', 'PATH=/usr/lib/postgresql/16/bin:/usr/bin']), ['/usr/lib/postgresql/16/bin/pg_isready', '/usr/bin/pg_isready']);
  t.equal(candidatesFor('x', []).length, 6, 'a default PATH without one');
});

t.test('outcomes in a few words', async (t) => {
  const o = (x: Partial<ExecOutcome> & { outcome: ExecOutcome['outcome'] }) => ({ output: '', truncated: false, ...x }) as ExecOutcome;
  t.equal(describeOutcome(o({ outcome: 'exited', exitCode: 2, output: '127.0.0.1:5432 - no response\n' })), 'exit status 2: 127.0.0.1:5432 - no response');
  t.equal(describeOutcome(o({ outcome: 'exited', signal: 'SIGKILL' })), 'killed by SIGKILL');
  t.equal(describeOutcome(o({ outcome: 'timeout' })), 'still running after 10 s, killed');
  t.equal(describeOutcome(o({ outcome: 'failed', code: 'ENOENT', errno: -2, syscall: 'execve' })), 'execve ENOENT');
  t.equal(describeHealth({ status: 'unhealthy', failingStreak: 3, lastExitCode: 1, lastOutput: 'no\nresponse\n' }), 'unhealthy, failing streak 3; last check: exit 1: response');
  t.equal(describeHealth({ status: 'starting', failingStreak: 0 }), 'starting');
});

const target: Target = { netnsFd: 3, description: 'netns blue' };

t.test('--ready-exec retries a failing command, and fails at once when it cannot run', async (t) => {
  const native = fakeNative();
  const outcomes: ExecOutcome[] = [
    { outcome: 'exited', exitCode: 2, output: 'no response', truncated: false },
    { outcome: 'timeout', output: '', truncated: false },
    { outcome: 'exited', exitCode: 0, output: 'accepting connections', truncated: false },
  ];
  const specs: unknown[] = [];
  native.execInTarget = async (spec) => {
    specs.push(spec);
    return outcomes.shift() as ExecOutcome;
  };
  const progress: string[] = [];
  const check = execCheck(native, target, { command: 'pg_isready -q', argv: ['pg_isready', '-q'] }, { PATH: '/bin', NOTIFY_SOCKET: '/x', LISTEN_FDS: '1', NSPROXY_TO: 'y' });
  const result = await waitUntilReady([check], { timeoutMs: 60_000, onProgress: (p) => progress.push(p.lastError) });
  t.equal(result.attempts, 3);
  t.same(progress, ['exit status 2: no response', 'still running after 10 s, killed']);
  const spec = specs[0] as { pid: number; uid: number; env: string[]; candidates: string[] };
  t.equal(spec.pid, 0, 'a --netns target has no process: netns only');
  t.equal(spec.uid, -1, "and runs as nsproxy's own user");
  t.same(spec.env, ['PATH=/bin'], "with nsproxy's environment, minus what belongs to its service");
  t.same(spec.candidates, ['/bin/pg_isready']);

  native.execInTarget = async () => ({ outcome: 'failed', code: 'ENOENT', errno: -2, syscall: 'execve', output: '', truncated: false });
  let calls = 0;
  const wrapped = native.execInTarget;
  native.execInTarget = (spec) => (calls++, wrapped(spec));
  await t.rejects(waitUntilReady([execCheck(native, target, { command: 'pg_isready', argv: ['pg_isready'] }, { PATH: '/bin' })], { timeoutMs: 10_000, onProgress: () => undefined }), {
    code: 'NSPROXY_ERR_NOT_READY',
    message: /^--ready-exec 'pg_isready' in netns blue: execve ENOENT; 'pg_isready' is not in the target's PATH \(\/bin\); give its full path inside the target$/,
  });
  t.equal(calls, 1, 'a command that does not exist is not retried');
});

t.test('the deadline message says what was waited for, and the last result', async (t) => {
  const native = fakeNative();
  native.execInTarget = async () => ({ outcome: 'exited', exitCode: 1, output: '', truncated: false });
  await t.rejects(waitUntilReady([execCheck(native, target, { command: 'test -e /ready', argv: ['test', '-e', '/ready'] }, {})], { timeoutMs: 300, onProgress: () => undefined }), {
    code: 'NSPROXY_ERR_NOT_READY',
    message: "--ready-exec 'test -e /ready' in netns blue did not succeed within 300 ms (last: exit status 1); check the command with nsproxy check --ready-exec, or raise --ready-timeout",
  });
});
