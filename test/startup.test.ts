// What a start-up loads (issue 10): dist/main.js runs the bundle with the code cache that
// `npm run build` made, V8 accepts that cache under main.js' own node flags, and a plain daemon
// start loads none of what it does not need: not yargs (only --help, --version and bad usage do),
// not node:child_process (--container only), nor node:net, node:worker_threads or node:assert
// (pino's transports and the like). Never a timing: those are in bench/ (coldstart, idlerss).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import { requireProduct } from './helpers/checks';
import { childEnv, MAIN_JS, NODE, REPO_ROOT } from './helpers/env';
import { startUnshareServer } from './helpers/namespaces';
import { runCommand } from './helpers/procs';

/** node with nothing but PATH in its environment: tap hooks every node the tests spawn (through
 * NODE_OPTIONS it puts back), and those hooks load modules of their own. */
function bareNode(args: string[], timeoutMs = 30000) {
  return runCommand('env', ['-i', `PATH=${process.env['PATH'] ?? '/usr/bin:/bin'}`, NODE, ...args], { env: childEnv(), cwd: REPO_ROOT, timeoutMs });
}

/** The node flags in main.js' #! line (`#!/usr/bin/env -S node FLAGS`). */
function mainFlags(): string[] {
  const shebang = /^#!\/usr\/bin\/env -S node(.*)$/.exec(readFileSync(MAIN_JS, 'utf8').split('\n')[0] ?? '');
  return shebang ? (shebang[1] as string).trim().split(/\s+/).filter(Boolean) : [];
}

t.test('the bundle is there and V8 accepts its code cache under main.js\' flags', async (t) => {
  if (!requireProduct(t)) return;
  const probe = `const b = require(${JSON.stringify(join(REPO_ROOT, 'dist', 'bundle.js'))}).loadBundle();
process.stdout.write(JSON.stringify({ bundled: b !== undefined, rejected: b?.script.cachedDataRejected }));`;
  const r = await bareNode([...mainFlags(), '-e', probe]);
  t.equal(r.code, 0, 'ran', { stderr: r.stderr });
  t.strictSame(JSON.parse(r.stdout), { bundled: true, rejected: false }, 'bundle loaded, code cache accepted');
});

t.test('a daemon start loads only what it needs', async (t) => {
  if (!requireProduct(t)) return;
  const server = await startUnshareServer(t, 'echo', ['127.0.0.1:5000']);
  const dir = mkdtempSync(join(tmpdir(), 'nsproxy-startup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const report = join(dir, 'loaded.json');
  // Preloaded into nsproxy: at exit, what Node loaded (built-in modules) and which files require() loaded.
  writeFileSync(join(dir, 'preload.js'), `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(report)},
  JSON.stringify({ builtins: process.moduleLoadList, files: Object.keys(require.cache) })));\n`);
  const r = await bareNode([...mainFlags(), '-r', join(dir, 'preload.js'), MAIN_JS, '--pid', String(server.pid), '--to', '127.0.0.1:5000', '--listen', '127.0.0.1:0', '--exit-idle-time', '200ms']);
  t.equal(r.code, 0, 'nsproxy became ready and exited idle', { stdout: r.stdout, stderr: r.stderr });
  t.match(r.stdout, /"msg":"ready"/, 'it was ready');
  const loaded = JSON.parse(readFileSync(report, 'utf8')) as { builtins: string[]; files: string[] };
  t.notOk(loaded.files.some((f) => f.endsWith(join('dist', 'cli.js'))), 'the CLI ran from the bundle, not from dist/ module by module', { files: loaded.files });
  t.strictSame(loaded.files.filter((f) => /[\\/]node_modules[\\/]/.test(f)), [], 'nothing from node_modules (yargs, pino: pino is in the bundle)');
  for (const name of ['net', 'child_process', 'worker_threads', 'assert', 'tty']) {
    t.notOk(loaded.builtins.includes(`NativeModule ${name}`), `node:${name} not loaded`);
  }
});
