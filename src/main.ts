#!/usr/bin/env node
// main.ts — the nsproxy executable: the bundled CLI with its code cache (bundle.ts), or the
// modules of dist/ one by one when there is no bundle.
import { loadBundle } from './bundle';

const { main } = loadBundle()?.cli ?? (require('./cli') as typeof import('./cli'));

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`nsproxy: ${String(err)}\n`);
    process.exit(1);
  },
);
