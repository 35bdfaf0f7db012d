// The differential fuzzer (test/fuzz/) in npm test: a fixed seed and a few hundred seeded TCP
// conversations, each run directly into the target namespace (twice) and through the proxy; what
// each end observed (bytes, order, how its stream ended) must be the same. Through nsproxy as
// root, and as an ordinary user (the helper path) over its pipe quota (8 KiB pipes); and through
// systemd-socket-proxyd, whose half-close and reset differences show that the harness can see a
// difference. `npm run fuzz` runs it for longer.
import * as path from 'node:path';

import t from 'tap';

import { requireProduct } from './helpers/checks';
import { REPO_ROOT, childEnv } from './helpers/env';
import { Proc, runCommand } from './helpers/procs';

const FUZZ_PY = path.join(REPO_ROOT, 'test', 'fuzz', 'fuzz.py');

interface Summary {
  conversations: number;
  gib: number;
  differences: number;
  same_bytes: number;
  nondeterministic: number;
  harness_errors: number;
  health: { error?: string; active_at_stop?: number; sockmapTotal?: number; migrations?: number };
  pipe_sizes: number[];
}

async function fuzz(t: tap.Test, args: string[]): Promise<Summary> {
  const proc = new Proc('fuzz.py', 'python3', [FUZZ_PY, '--max-bytes', String(2 * 1024 * 1024), ...args], { env: childEnv() });
  // The fuzzer deletes its namespace itself; killed (a timeout) it could not. Its children die with it.
  t.teardown(async () => {
    await proc.stop('SIGKILL', 1000);
    await runCommand('ip', ['netns', 'del', `nsproxy-fuzz-${proc.pid}`]);
  });
  const timeout = setTimeout(() => proc.signal('SIGKILL'), 150_000);
  const exit = await proc.closed;
  clearTimeout(timeout);
  const lines = proc.stdout.lines;
  for (const line of lines.filter((l) => l.startsWith('DIFFERENCE')).slice(0, 3)) t.comment(line.slice(0, 2000));
  t.equal(exit.signal, null, 'the fuzzer finished (not killed at 150 s)');
  if (exit.code === 2) t.comment(proc.stderr.text.slice(-4000));
  const summary = JSON.parse(lines.filter((l) => l.startsWith('{')).pop() ?? '{}') as Summary;
  t.comment(`${summary.conversations} conversations, ${summary.gib} GiB, ${summary.differences} differences`);
  t.equal(summary.nondeterministic, 0, 'every conversation ran the same way twice directly (the generator is deterministic)');
  t.equal(summary.harness_errors, 0, 'no conversation hung on the direct path');
  return summary;
}

// Each engine as root. Under auto, connections join sockmap in mid-conversation (after one
// exchange: as many as possible); started on sockmap with a tiny bulk threshold, they move to
// splice in mid-conversation, hundreds of times.
const ENGINES: Array<[string, string[], number]> = [
  ['auto (the default)', [], 300],
  ['auto, joining sockmap in mid-conversation (--sockmap-after 1)', ['--engine', 'auto', '--sockmap-after', '1'], 300],
  ['splice', ['--engine', 'splice'], 250],
  ['sockmap', ['--engine', 'sockmap'], 250],
  ['auto, leaving sockmap in mid-conversation (--sockmap-after 0 --sockmap-bulk 4K)', ['--engine', 'auto', '--sockmap-after', '0', '--sockmap-bulk', '4K'], 300],
];
for (const [name, options, count] of ENGINES) {
  t.test(`nsproxy as root, engine ${name}: no difference from a direct connection`, async (t) => {
    if (!requireProduct(t)) return;
    const s = await fuzz(t, ['--seed', 'npm-test', '--count', String(count), '--concurrency', '100', '--', ...options]);
    t.equal(s.conversations, count, 'all conversations ran');
    t.equal(s.differences, 0, 'no difference');
    t.equal(s.health.error, undefined, 'nsproxy stayed up and stopped cleanly');
    t.equal(s.health.active_at_stop, 0, 'no connection left behind');
    if (name.startsWith('splice')) t.equal(s.health.sockmapTotal, 0, 'none went through sockmap');
    if (name.startsWith('sockmap') || name.includes('leaving')) t.ok((s.health.sockmapTotal ?? 0) > count * 0.8, `${s.health.sockmapTotal} of ${count} went through sockmap`);
    if (name.includes('joining')) t.ok((s.health.sockmapTotal ?? 0) > count / 4, `${s.health.sockmapTotal} of ${count} joined sockmap in mid-conversation`);
    if (name.includes('leaving')) t.ok((s.health.migrations ?? 0) > count / 10, `${s.health.migrations} moved to splice in mid-conversation`);
    if (name.startsWith('auto (')) t.comment(`${s.health.sockmapTotal} of ${count} joined sockmap, ${s.health.migrations} left it`);
  });
}

t.test('a reply followed by a reset (a server answering early, then closing unread): 50 of 50', async (t) => {
  if (!requireProduct(t)) return;
  // 1003-byte request, 3 bytes read, 800-byte reply, close() with the rest unread: RST.
  const s = await fuzz(t, ['--seed', 'npm-test', '--scenario', 'rst-after-reply', '--count', '50']);
  t.equal(s.same_bytes, 50, 'the whole reply reached the client every time, as directly');
  t.equal(s.differences, 0, 'and then the reset, as directly');
  const proxyd = await fuzz(t, ['--seed', 'npm-test', '--scenario', 'rst-after-reply', '--count', '50', '--peer', 'socket-proxyd']);
  t.comment(`socket-proxyd: reply complete ${proxyd.same_bytes}/50, ends as directly ${50 - proxyd.differences}/50 (it closes with FIN)`);
});

t.test('nsproxy as an ordinary user (helper path), over its pipe quota: 8 KiB pipes', async (t) => {
  if (!requireProduct(t)) return;
  // --small-pipes: a process of the user first holds pipes up to fs.pipe-user-pages-soft, as a
  // busy rootless user's would; from then on the user's new pipes get 2 pages and cannot grow.
  const s = await fuzz(t, ['--seed', 'npm-test-rootless', '--count', '250', '--concurrency', '80', '--user', 'nsproxy-test', '--small-pipes']);
  t.equal(s.differences, 0, 'no difference');
  t.equal(s.health.error, undefined, 'nsproxy stayed up and stopped cleanly');
  t.ok(s.pipe_sizes.length > 0 && s.pipe_sizes.every((size) => size === 8192), `nsproxy's pipes were 8 KiB (seen: ${s.pipe_sizes.join(', ')} bytes)`);
});

for (const version of ['v1', 'v2']) {
  t.test(`--proxy-protocol ${version}: every header exact (checked against a reference), and no difference`, async (t) => {
    if (!requireProduct(t)) return;
    const s = await fuzz(t, ['--seed', `npm-test-${version}`, '--count', '150', '--proxy-protocol', version]);
    t.equal(s.differences, 0, 'no difference, and no header that differs from the reference');
  });
}

t.test('systemd-socket-proxyd: the harness sees its differences', async (t) => {
  const s = await fuzz(t, ['--seed', 'npm-test', '--count', '100', '--concurrency', '100', '--peer', 'socket-proxyd']);
  t.ok(s.differences > 0, `socket-proxyd differs from a direct connection (${s.differences} of 100: resets seen as EOF, half-closes)`);
});
