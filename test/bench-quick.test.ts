// The benchmark harness works: `npm run bench -- --quick` sets up its namespace and servers,
// runs every peer (direct, nsproxy, systemd-socket-proxyd, socat, a Node proxy) through every
// workload and gets a number for each metric. It asserts that, never a timing.
import t from 'tap';

import { REPO_ROOT } from './helpers/env';
import { runCommand } from './helpers/procs';

t.test('bench --quick: every peer ran every workload and produced numbers', async (t) => {
  const run = await runCommand(process.execPath, ['bench/quick-check.js'], { cwd: REPO_ROOT, timeoutMs: 200_000 });
  t.equal(run.timedOut, false, 'finished in time');
  t.equal(run.code, 0, 'quick-check passed', { stdout: run.stdout.slice(-3000), stderr: run.stderr.slice(-3000) });
  t.match(run.stdout + run.stderr, /nsproxy/, 'the report names nsproxy');
});
