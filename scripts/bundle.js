#!/usr/bin/env node
// scripts/bundle.js — the last step of `npm run build`, after tsc: bundles dist/cli.js and its
// dependencies into dist/nsproxy.js (esbuild), then makes its V8 code cache, dist/nsproxy.js.cache,
// by running one real start-up of nsproxy against this process's own network namespace
// (scripts/code-cache.js). See src/bundle.ts for why; a missing or stale cache only costs
// start-up time, so a failed training run is a warning, not an error.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const esbuild = require('esbuild');

const DIST = path.join(__dirname, '..', 'dist');

/**
 * What the bundle leaves out of its dependencies, and why: each of these would load Node
 * modules at every start-up that nsproxy never needs.
 *  - pino's transports run in worker threads; nsproxy never uses them (it logs synchronously to
 *    stdout: a daemon must not lose its last lines). Out go thread-stream and node:worker_threads.
 *  - pino asks node:worker_threads only whether it runs on the main thread: nsproxy always does.
 *  - sonic-boom (pino's destination) loads node:assert for one check when it closes; node:assert
 *    sets up process.stderr as it loads, and when stderr is a pipe or the journal's socket that
 *    means node:net and the stream machinery. A plain function does the same check.
 */
const STUBS = [
  {
    request: /^\.\/(lib\/)?transport$/,
    importer: /[\\/]node_modules[\\/]pino[\\/]/,
    contents: "module.exports = function transport() { throw new Error('pino transports are left out of nsproxy\\'s bundle'); };",
  },
  {
    request: /^worker_threads$/,
    importer: /[\\/]node_modules[\\/]pino[\\/]lib[\\/]tools\.js$/,
    contents: 'module.exports = { isMainThread: true };',
  },
  {
    request: /^assert$/,
    importer: /[\\/]node_modules[\\/]sonic-boom[\\/]index\.js$/,
    contents: "module.exports = function assert(ok, message) { if (!ok) throw new Error(message || 'assertion failed'); };",
  },
];

const stubs = {
  name: 'nsproxy-stubs',
  setup(build) {
    const used = new Set();
    STUBS.forEach((stub, i) => {
      build.onResolve({ filter: stub.request }, (args) => {
        if (!stub.importer.test(args.importer)) return undefined;
        used.add(i);
        return { path: String(i), namespace: 'nsproxy-stub' };
      });
    });
    build.onLoad({ filter: /.*/, namespace: 'nsproxy-stub' }, (args) => ({ contents: STUBS[Number(args.path)].contents, loader: 'js' }));
    // A dependency that moved its code leaves a stub unused: then the bundle still works, only
    // its start-up is slower again. Say so.
    build.onEnd(() => {
      STUBS.forEach((stub, i) => {
        if (!used.has(i)) process.stderr.write(`bundle: warning: nothing required ${stub.request} from ${stub.importer}: update STUBS in scripts/bundle.js\n`);
      });
    });
  },
};

async function main() {
  await esbuild.build({
    entryPoints: [path.join(DIST, 'cli.js')],
    outfile: path.join(DIST, 'nsproxy.js'),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: 'external',  // dist/nsproxy.js.map, for reading stack traces; never loaded
    logLevel: 'warning',
    // yargs proper serves only --help, --version and bad usage (src/args.ts): it loads from
    // node_modules then, and the bundle every start-up reads stays small.
    external: ['yargs'],
    plugins: [stubs],
  });

  fs.rmSync(path.join(DIST, 'nsproxy.js.cache'), { force: true });
  // The training run gets main.js' own node flags: V8 rejects a cache made under other flags.
  const shebang = /^#!\/usr\/bin\/env -S node(.*)$/m.exec(fs.readFileSync(path.join(DIST, 'main.js'), 'utf8').split('\n')[0]);
  const flags = shebang ? shebang[1].trim().split(/\s+/).filter(Boolean) : [];
  const train = spawnSync(process.execPath, [...flags, path.join(__dirname, 'code-cache.js')], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 60_000 });
  const said = (train.stderr || '').trim();
  if (!fs.existsSync(path.join(DIST, 'nsproxy.js.cache'))) {
    process.stderr.write(`bundle: warning: no code cache made (nsproxy starts slower): ${train.error?.message || said.split('\n').pop() || `exit ${train.status}`}\n`);
  } else if (said) {
    process.stderr.write(`bundle: note: the code cache's training run said:\n${said.replace(/^/gm, '  ')}\n`);
  }
}

main().catch((err) => {
  process.stderr.write(`bundle: ${err.message}\n`);
  process.exit(1);
});
