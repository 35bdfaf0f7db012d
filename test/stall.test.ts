// A receiver that stops reading must slow its sender down, whatever the engine. With sockmap the
// kernel itself gives no backpressure (its psock queue grows as fast as the sender sends: 1 GiB
// and more, native/SOCKMAP.md (c)); nsproxy moves such a connection to splice once the kernel
// holds 4 MiB for it. test/fuzz/stall.py measures what a server pushed into a client that read
// nothing for 3 s, then lets the client read it all, byte for byte.
import * as path from 'node:path';

import t from 'tap';

import { requireProduct } from './helpers/checks';
import { REPO_ROOT, childEnv } from './helpers/env';
import { Proc, runCommand } from './helpers/procs';

const STALL_PY = path.join(REPO_ROOT, 'test', 'fuzz', 'stall.py');
const MiB = 1024 * 1024;

interface Stall {
  sent_while_stalled: number;
  still_growing: number;
  received: number;
  corrupt: number | null;
  end: string;
  health: { error?: string; migrations?: number; sockmapTotal?: number };
}

async function stall(t: tap.Test, options: string[]): Promise<Stall> {
  const proc = new Proc('stall.py', 'python3', [STALL_PY, '--', ...options], { env: childEnv() });
  t.teardown(async () => {
    await proc.stop('SIGKILL', 1000);
    await runCommand('ip', ['netns', 'del', `nsproxy-fuzz-${proc.pid}`]);
  });
  const timer = setTimeout(() => proc.signal('SIGKILL'), 120_000);
  await proc.closed;
  clearTimeout(timer);
  return JSON.parse(proc.stdout.lines.filter((l) => l.startsWith('{')).pop() ?? '{}') as Stall;
}

// auto starts a connection on splice (this one never joins: it is bulk from the first byte);
// with --sockmap-after 0 it starts on sockmap, as under --engine sockmap.
const ENGINES: Array<[string, string[]]> = [
  ['--engine sockmap', ['--engine', 'sockmap']],
  ['--engine auto --sockmap-after 0', ['--engine', 'auto', '--sockmap-after', '0']],
  ['--engine auto', ['--engine', 'auto']],
  ['--engine splice', ['--engine', 'splice']],
];
for (const [name, options] of ENGINES) {
  t.test(`${name}: a receiver that reads nothing stops its sender`, async (t) => {
    if (!requireProduct(t)) return;
    const r = await stall(t, options);
    t.comment(`the server pushed ${(r.sent_while_stalled / MiB).toFixed(1)} MiB into a client that read nothing for 3 s`);
    t.equal(r.still_growing, 0, 'and was blocked during the second half of it (backpressure)');
    t.ok(r.sent_while_stalled < 128 * MiB, 'bounded (the kernel held no more than a few buffers and the 4 MiB cap)');
    t.equal(r.received, r.sent_while_stalled, 'once the client read, every byte arrived');
    t.equal(r.corrupt, null, 'in order, unaltered');
    t.equal(r.end, 'eof', 'then EOF');
    t.equal(r.health.error, undefined, 'nsproxy stopped cleanly');
    const onSockmap = name.includes('sockmap');
    t.equal(r.health.sockmapTotal, onSockmap ? 1 : 0, onSockmap ? 'the connection started on sockmap' : 'the connection stayed on splice');
    t.equal(r.health.migrations, onSockmap ? 1 : 0, onSockmap ? 'and moved to splice' : 'and never moved');
  });
}
