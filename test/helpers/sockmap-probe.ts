// The sockmap probe (native/test/): built once per test file into a temp dir, run as root with its
// clients in one network namespace and its servers in another. Each command prints one JSON line.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT, type TestLike } from './env';
import { makeNetns } from './namespaces';
import { runCommand } from './procs';

export type ProbeResult = Record<string, unknown> & { pass: boolean };

export interface Probe {
  /** Runs `sockmap_probe COMMAND ARGS... --client-netns A --server-netns B`; the JSON it printed. */
  run(command: string, args?: string[], timeoutMs?: number): Promise<ProbeResult>;
  /** Whether this process may use sockmap here, and if not why (`sockmap_probe available`). */
  available(): Promise<{ available: boolean; reason: string }>;
}

/** Builds the probe (native/test/build-probe.sh) and makes the two namespaces; all removed on teardown. */
export async function setUpProbe(t: TestLike): Promise<Probe> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsproxy-sockmap-probe-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bin = path.join(dir, 'sockmap_probe');
  const build = await runCommand(path.join(REPO_ROOT, 'native', 'test', 'build-probe.sh'), [bin], { timeoutMs: 180000 });
  if (build.code !== 0) throw new Error(`building the sockmap probe failed: ${build.stderr}`);
  const clientNs = await makeNetns(t);
  const serverNs = await makeNetns(t);
  const parse = (stdout: string, what: string): ProbeResult => {
    const line = stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as ProbeResult;
    } catch {
      throw new Error(`${what}: no JSON result: ${stdout}`);
    }
  };
  return {
    async run(command, args = [], timeoutMs = 120000) {
      const argv = [command, ...args, '--client-netns', `/run/netns/${clientNs}`, '--server-netns', `/run/netns/${serverNs}`];
      const r = await runCommand(bin, argv, { timeoutMs });
      if (r.timedOut) throw new Error(`sockmap_probe ${argv.join(' ')} timed out: ${r.stdout}${r.stderr}`);
      if (r.code !== 0 && r.code !== 1) throw new Error(`sockmap_probe ${argv.join(' ')} failed (${r.code}): ${r.stderr}`);
      const result = parse(r.stdout, `sockmap_probe ${command}`);
      if ((r.code === 0) !== (result.pass === true)) throw new Error(`exit code ${r.code} and "pass" disagree: ${r.stdout}`);
      return result;
    },
    async available() {
      const r = await runCommand(bin, ['available'], { timeoutMs: 20000 });
      return parse(r.stdout, 'sockmap_probe available') as unknown as { available: boolean; reason: string };
    },
  };
}

/** The proxy's counters in a probe result. */
export function proxyStats(r: ProbeResult): Record<string, number | string> {
  return r.proxy as Record<string, number | string>;
}
