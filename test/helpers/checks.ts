// Assertions shared by the integration tests.
import type {} from 'tap';
import { ADDON, MAIN_JS, productBuilt } from './env';
import type { HashResult } from './client';
import { stderrLines, type Nsproxy } from './nsproxy';
import type { RunResult } from './procs';

type Test = tap.Test;

/** Fails (does not skip) when the product is not built: CI must not pass vacuously. */
export function requireProduct(t: Test): boolean {
  if (productBuilt()) return true;
  t.fail(`the product is not built: need ${MAIN_JS} and ${ADDON} (npm run build && npx node-gyp rebuild)`);
  return false;
}

/** Both directions of a hash round trip arrived intact, then a clean EOF. */
export function assertHashOk(t: Test, r: HashResult, label = 'round trip'): void {
  t.equal(r.error, null, `${label}: no socket error`);
  t.equal(r.eof, true, `${label}: ended with EOF`);
  t.equal(r.downBytes, r.downRequested, `${label}: all ${r.downRequested} bytes arrived (server -> client)`);
  t.equal(r.downFirstMismatch, -1, `${label}: server -> client bytes match the keystream`);
  t.equal(r.downSha, r.downExpectedSha, `${label}: server -> client SHA-256`);
  t.equal(r.serverCount, r.upBytes, `${label}: the server got all ${r.upBytes} bytes (client -> server)`);
  t.equal(r.serverSha, r.upSha, `${label}: client -> server SHA-256`);
}

/** Compact description of what went wrong in a round trip, or null when it is fine. */
export function hashProblem(r: HashResult): string | null {
  const p: string[] = [];
  if (r.error !== null) p.push(`error ${r.error}`);
  if (!r.eof) p.push('no EOF');
  if (r.downBytes !== r.downRequested) p.push(`down ${r.downBytes}/${r.downRequested} bytes`);
  if (r.downFirstMismatch >= 0) p.push(`down differs at ${r.downFirstMismatch}`);
  if (r.downSha !== r.downExpectedSha) p.push('down sha differs');
  if (r.serverCount !== r.upBytes) p.push(`server got ${r.serverCount}/${r.upBytes} bytes`);
  if (r.serverSha !== r.upSha) p.push('up sha differs');
  return p.length ? `${r.seed}: ${p.join(', ')}` : null;
}

/** The daemon is still alive (by PID) and has not exited. */
export function assertRunning(t: Test, px: Nsproxy, label = 'nsproxy is still running'): void {
  let alive = px.running;
  if (alive) {
    try {
      process.kill(px.pid, 0);
    } catch {
      alive = false;
    }
  }
  t.ok(alive, label, alive ? {} : { output: px.describe() });
}

/** SIGTERM gives exit code 0 (clean stop) and stdout held only JSON log lines. */
export async function assertCleanStop(t: Test, px: Nsproxy): Promise<void> {
  const code = await px.stop();
  t.equal(code, 0, 'SIGTERM: exit code 0', code === 0 ? {} : { output: px.describe() });
  t.same(px.nonJsonLines, [], 'stdout held only JSON log lines');
}

/**
 * A start-up failure as the contract wants it: exit `code`, exactly one non-empty
 * stderr line `nsproxy: <what is wrong>; <what to do>`, no stack trace.
 */
export function assertOneStderrLine(t: Test, r: RunResult, code: number): void {
  const diag = { stderr: r.stderr, stdout: r.stdout.slice(0, 2000), exit: { code: r.code, signal: r.signal } };
  t.equal(r.timedOut, false, 'exited by itself (no hang)', r.timedOut ? diag : {});
  t.equal(r.code, code, `exit code ${code}`, r.code === code ? {} : diag);
  const lines = stderrLines(r.stderr);
  t.equal(lines.length, 1, 'exactly one non-empty stderr line', lines.length === 1 ? {} : diag);
  t.match(lines[0] ?? '', /^nsproxy: \S/, 'it starts with "nsproxy: "', diag);
  t.match(lines[0] ?? '', /^nsproxy: .*\S.*; .*\S/, 'it has the "<what is wrong>; <what to do>" shape', diag);
  t.notOk(
    stderrLines(r.stderr).some((l) => /^\s+at /.test(l)),
    'no stack trace line',
    diag,
  );
}
