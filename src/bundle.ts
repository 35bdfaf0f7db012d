// bundle.ts — loads the CLI from dist/nsproxy.js, the one-file bundle of dist/ and its
// dependencies that `npm run build` makes (scripts/bundle.js), with the V8 code cache made beside
// it (dist/nsproxy.js.cache). One file instead of some sixty saves module resolution; the code
// cache saves parsing and compiling; together about half of what nsproxy's start-up added to a
// bare `node`. V8 checks the cache (its version, flags and the source) and ignores one that does
// not fit, for instance after a Node.js upgrade: then the code is compiled as usual, only slower,
// until the next `npm run build`.
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';

import type * as Cli from './cli';

export const BUNDLE = join(__dirname, 'nsproxy.js');
export const CODE_CACHE = `${BUNDLE}.cache`;

export interface LoadedBundle {
  cli: typeof Cli;
  /** the compiled bundle: scripts/code-cache.js asks it for the code cache after a run */
  script: Script;
}

/** The bundled CLI, or undefined when there is no bundle, or an older one than dist/cli.js
 * (dist/ rebuilt by tsc alone, without scripts/bundle.js: its modules are the newer code). */
export function loadBundle(): LoadedBundle | undefined {
  let source: string;
  try {
    if (statSync(join(__dirname, 'cli.js')).mtimeMs > statSync(BUNDLE).mtimeMs) return undefined;
    source = readFileSync(BUNDLE, 'utf8');
  } catch {
    return undefined;
  }
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(CODE_CACHE);
  } catch {
    cachedData = undefined;
  }
  // The CommonJS wrapper, as Node's own loader would give the file.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: BUNDLE, cachedData });
  const module = { exports: {} as typeof Cli };
  (script.runInThisContext() as (...args: unknown[]) => void)(module.exports, createRequire(BUNDLE), module, BUNDLE, __dirname);
  return { cli: module.exports, script };
}
