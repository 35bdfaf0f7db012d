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
 * pino's transports run in worker threads; nsproxy never uses them (it logs synchronously to
 * stdout: a daemon must not lose its last lines). Leaving them out of the bundle spares every
 * start-up loading thread-stream and node:worker_threads.
 */
const leaveOutPinoTransports = {
  name: 'leave-out-pino-transports',
  setup(build) {
    build.onResolve({ filter: /^\.\/(lib\/)?transport$/ }, (args) =>
      /[\\/]node_modules[\\/]pino[\\/]/.test(args.importer) ? { path: 'pino-transport', namespace: 'nsproxy-stub' } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'nsproxy-stub' }, () => ({
      contents: "module.exports = function transport() { throw new Error('pino transports are left out of nsproxy\\'s bundle'); };",
      loader: 'js',
    }));
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
    plugins: [leaveOutPinoTransports],
  });

  fs.rmSync(path.join(DIST, 'nsproxy.js.cache'), { force: true });
  const train = spawnSync(process.execPath, [path.join(__dirname, 'code-cache.js')], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 60_000 });
  if (!fs.existsSync(path.join(DIST, 'nsproxy.js.cache'))) {
    process.stderr.write(`bundle: warning: no code cache made (nsproxy starts slower): ${train.error?.message ?? train.stderr.trim().split('\n').pop() ?? `exit ${train.status}`}\n`);
  }
}

main().catch((err) => {
  process.stderr.write(`bundle: ${err.message}\n`);
  process.exit(1);
});
