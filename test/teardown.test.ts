// The addon when its environment goes away without Engine.stop(): a worker_thread terminated
// while its engine forwards busy connections, and process.exit() mid-traffic. The engine threads
// post events until they are joined; the cleanup hook must join them before the thread-safe
// function is finalized and frees what they post to. A crash (SIGSEGV, SIGABRT) fails the test.
import * as path from 'node:path';

import t from 'tap';

import { requireProduct } from './helpers/checks';
import { ADDON, NODE, REPO_ROOT, childEnv } from './helpers/env';
import { makeNetns, startServerInNetns } from './helpers/namespaces';
import { runCommand } from './helpers/procs';

const SCRIPT = path.join(REPO_ROOT, 'test', 'fixtures', 'engine-teardown.js');

for (const [mode, rounds] of [['worker', '15'], ['exit', '1']] as const) {
  t.test(`engine torn down with its environment (${mode})`, async (t) => {
    if (!requireProduct(t)) return;
    const ns = await makeNetns(t);
    await startServerInNetns(t, ns, 'multi', ['127.0.0.1:7000']);
    for (let i = 0; i < (mode === 'exit' ? 5 : 1); i++) {
      const r = await runCommand(NODE, [SCRIPT, ADDON, `/run/netns/${ns}`, '7000', mode, rounds], { env: childEnv(), timeoutMs: 60_000 });
      t.equal(r.signal, null, `no crash (${r.signal ?? 'no signal'})`);
      t.equal(r.code, 0, `exit 0${r.stderr ? `: ${r.stderr.slice(0, 500)}` : ''}`);
      t.match(r.stdout, /done/, 'it got to the end');
    }
  });
}
