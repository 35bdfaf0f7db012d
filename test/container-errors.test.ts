// Start-up failures of --container (issue 3 contract): exit 2 for bad usage or
// configuration (unknown container, podman missing, unknown runc id, a network the
// container is not on, conflicting target options), exit 1 for runtime failures
// (container not running, --ready-timeout exceeded). Each one: exactly one stderr
// line `nsproxy: <what is wrong>; <what to do>`, no stack trace.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NODE } from './helpers/env';
import { runNsproxy, stderrLines } from './helpers/nsproxy';
import { assertOneStderrLine, requireProduct } from './helpers/checks';
import { inspectContainer, podmanEnv, podmanOk, requirePodman, runContainer, sleep, uniqueName } from './helpers/podman';
import { requireRunc } from './helpers/runc';
import type { RunResult } from './helpers/procs';

const TO = '127.0.0.1:8080';

type Tap = tap.Test;

/** assertOneStderrLine, and the line itself as a comment (for reading the messages). */
function check(t: Tap, r: RunResult, code: number): void {
  assertOneStderrLine(t, r, code);
  t.comment(`exit ${r.code}: ${stderrLines(r.stderr).join(' | ')}`);
}

function mentions(t: Tap, r: RunResult, re: RegExp, what: string): void {
  t.match(stderrLines(r.stderr)[0] ?? '', re, `the message ${what}`, { stderr: r.stderr });
}

t.test('podman: unknown container -> exit 2', async (t) => {
  if (!requireProduct(t)) return;
  if (!(await requirePodman(t))) return;
  const name = uniqueName('does-not-exist');
  const r = await runNsproxy(['--container', name, '--to', TO, '--listen', '127.0.0.1:0'], podmanEnv());
  check(t, r, 2);
  mentions(t, r, new RegExp(name), 'names the container');
});

t.test('podman: container created but never started -> exit 1', async (t) => {
  if (!requireProduct(t)) return;
  if (!(await requirePodman(t))) return;
  const c = await runContainer(t, { cmd: ['sleep', '1000'], createOnly: true });
  const t0 = Date.now();
  const r = await runNsproxy(['--container', c.name, '--to', TO, '--listen', '127.0.0.1:0'], podmanEnv());
  t.comment(`exited after ${Date.now() - t0} ms`);
  check(t, r, 1);
  mentions(t, r, new RegExp(c.name), 'names the container');
});

t.test('podman: stopped (exited) container -> exit 1', async (t) => {
  if (!requireProduct(t)) return;
  if (!(await requirePodman(t))) return;
  const c = await runContainer(t, { cmd: ['sleep', '1000'] });
  await podmanOk(['stop', '-t', '0', c.name]);
  for (let i = 0; i < 100 && (await inspectContainer(c.name)).running; i++) await sleep(100);
  const st = await inspectContainer(c.name);
  t.same([st.running, st.status], [false, 'exited'], 'the container is stopped');
  const t0 = Date.now();
  const r = await runNsproxy(['--container', c.name, '--to', TO, '--listen', '127.0.0.1:0'], podmanEnv());
  t.comment(`exited after ${Date.now() - t0} ms`);
  check(t, r, 1);
  mentions(t, r, new RegExp(c.name), 'names the container');
});

t.test('podman not in PATH -> exit 2', async (t) => {
  if (!requireProduct(t)) return;
  // PATH: an empty dir, and a dir holding only node (node's own dir also holds podman)
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsproxy-nopodman-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const empty = path.join(tmp, 'empty');
  const nodeOnly = path.join(tmp, 'node-only');
  fs.mkdirSync(empty);
  fs.mkdirSync(nodeOnly);
  fs.symlinkSync(NODE, path.join(nodeOnly, 'node'));
  const r = await runNsproxy(['--container', 'anything', '--to', TO, '--listen', '127.0.0.1:0'], podmanEnv({ PATH: `${empty}:${nodeOnly}` }));
  check(t, r, 2);
  mentions(t, r, /podman/, 'names podman');
});

t.test('runc: state of an unknown id -> exit 2', async (t) => {
  if (!requireProduct(t)) return;
  if (!(await requireRunc(t))) return;
  const id = uniqueName('no-such-runc');
  const r = await runNsproxy(['--container', id, '--runtime', 'runc', '--to', TO, '--listen', '127.0.0.1:0']);
  check(t, r, 2);
  mentions(t, r, new RegExp(id), 'names the id');
  const root = fs.mkdtempSync('/tmp/nsproxy-runc-root-');
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const r2 = await runNsproxy(['--container', id, '--runtime', 'runc', '--runc-root', root, '--to', TO, '--listen', '127.0.0.1:0']);
  check(t, r2, 2);
});

t.test('--runtime that is neither podman nor runc -> exit 2', async (t) => {
  if (!requireProduct(t)) return;
  const r = await runNsproxy(['--container', 'x', '--runtime', 'lxc', '--to', TO, '--listen', '127.0.0.1:0'], podmanEnv());
  check(t, r, 2);
});

t.test('--to @nonexistent-network:80 -> exit 2', async (t) => {
  if (!requireProduct(t)) return;
  if (!(await requirePodman(t))) return;
  const c = await runContainer(t, { cmd: ['sleep', '1000'] });
  const r = await runNsproxy(['--container', c.name, '--to', '@nonexistent-network:80', '--listen', '127.0.0.1:0'], podmanEnv());
  check(t, r, 2);
  mentions(t, r, /nonexistent-network/, 'names the network');
});

t.test('--ready-timeout 2s and nothing listens -> exit 1 after about 2 s', async (t) => {
  if (!requireProduct(t)) return;
  if (!(await requirePodman(t))) return;
  const c = await runContainer(t, { cmd: ['sleep', '1000'] });
  const t0 = Date.now();
  const r = await runNsproxy(['--container', c.name, '--to', TO, '--listen', '127.0.0.1:0', '--ready-timeout', '2s'], podmanEnv(), 30000);
  const elapsed = Date.now() - t0;
  t.comment(`exited after ${elapsed} ms`);
  check(t, r, 1);
  t.ok(elapsed >= 2000, `not before the 2 s timeout (${elapsed} ms)`);
  t.ok(elapsed < 10000, `soon after it (${elapsed} ms < 10 s)`);
  mentions(t, r, /127\.0\.0\.1:8080/, 'names the probed address');
  mentions(t, r, new RegExp(c.name), 'names the container');
});

t.test('--container with --pid or --netns -> exit 2', async (t) => {
  if (!requireProduct(t)) return;
  if (!(await requirePodman(t))) return;
  // all real: only the combination is wrong
  const c = await runContainer(t, { cmd: ['sleep', '1000'] });
  const r = await runNsproxy(['--container', c.name, '--pid', String(c.pid), '--to', TO, '--listen', '127.0.0.1:0'], podmanEnv());
  check(t, r, 2);
  const r2 = await runNsproxy(['--container', c.name, '--netns', `/proc/${c.pid}/ns/net`, '--to', TO, '--listen', '127.0.0.1:0'], podmanEnv());
  check(t, r2, 2);
});
