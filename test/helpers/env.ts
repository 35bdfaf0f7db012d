// Paths and the environment for processes the integration tests start.
import * as path from 'node:path';
import * as fs from 'node:fs';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const MAIN_JS = path.join(REPO_ROOT, 'dist', 'main.js');
export const ADDON = path.join(REPO_ROOT, 'build', 'Release', 'nsproxy.node');
export const SERVER_JS = path.join(REPO_ROOT, 'test', 'fixtures', 'server.js');
export const NODE = process.execPath;
export const SOCKET_PROXYD = '/lib/systemd/systemd-socket-proxyd';

/** The version the CLI must print for --version. */
export function packageVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** Whether the built product (dist/main.js and the addon) exists. */
export function productBuilt(): boolean {
  return fs.existsSync(MAIN_JS) && fs.existsSync(ADDON);
}

/** Minimal view of a tap Test that the helpers need (keeps helpers independent of tap's types). */
export interface TestLike {
  teardown(fn: () => unknown): void;
  comment(...args: unknown[]): void;
}

// Variables that must not leak from the test runner into the processes under test:
// tap's loader hooks (NODE_OPTIONS), socket activation and journald/notify settings.
const STRIP = /^(NODE_OPTIONS|TAP|_TAPJS_|TS_NODE_|LISTEN_(FDS|PID|FDNAMES|PIDFDID)$|NOTIFY_SOCKET$|JOURNAL_STREAM$|NSPROXY_)/;

/** A clean environment for a child process, plus `extra`. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !STRIP.test(k)) env[k] = v;
  }
  return { ...env, ...extra };
}
