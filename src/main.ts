#!/usr/bin/env node
// main.ts — the nsproxy executable.
import { main } from './cli';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`nsproxy: ${String(err)}\n`);
    process.exit(1);
  },
);
