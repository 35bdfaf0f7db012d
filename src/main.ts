#!/usr/bin/env -S node --v8-pool-size=1
// main.ts — the nsproxy executable: the bundled CLI with its code cache (bundle.ts), or the
// modules of dist/ one by one when there is no bundle. --v8-pool-size=1: V8 needs no more than
// one helper thread for a control plane this small (the default is four); the flag applies when
// nsproxy runs as a program, not as `node dist/main.js` (see the README: NODE_OPTIONS).
import { loadBundle } from './bundle';

const { main } = loadBundle()?.cli ?? (require('./cli') as typeof import('./cli'));

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`nsproxy: ${String(err)}\n`);
    process.exit(1);
  },
);
