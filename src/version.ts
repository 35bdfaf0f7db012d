// version.ts — nsproxy's version, from package.json.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
  return manifest.version;
}
