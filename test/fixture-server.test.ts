// Self-test of the harness (no nsproxy): the fixture server's protocols, checked
// with the client helpers, and the namespace helpers' set-up and clean-up.
// If this fails, failures of the other integration tests say nothing about nsproxy.
import t from 'tap';
import { readlinkSync, statSync } from 'node:fs';
import { makeNetns, startServerInNetns, startUnshareServer } from './helpers/namespaces';
import { Proc, mustRun, waitForStdoutLine } from './helpers/procs';
import { NODE, SERVER_JS, childEnv, type TestLike } from './helpers/env';
import { closeFirstExpected, keystreamBytes, randomSeed, sha256 } from './helpers/payload';
import { echoPingPong, freePort, halfCloseRequest, hashRoundTrip, readUntilEof, resetMidUpload } from './helpers/client';

/** The fixture server in the host namespace, on a free loopback port. */
async function hostServer(t: TestLike, mode: string): Promise<{ proc: Proc; port: number }> {
  const port = await freePort();
  const p = new Proc(`host server ${mode}`, NODE, [SERVER_JS, '--mode', mode, '--listen', `127.0.0.1:${port}`], { env: childEnv() });
  t.teardown(() => p.stop());
  await waitForStdoutLine(p, (l) => l === 'listening', 20000, 'listening');
  return { proc: p, port };
}

t.test('hash mode: both directions check out', async (t) => {
  const { port } = await hostServer(t, 'hash');
  const seed = randomSeed('self-');
  const r = await hashRoundTrip(port, '127.0.0.1', 3 * 1024 * 1024 + 17, seed, { upBytes: 2 * 1024 * 1024 + 5 });
  t.equal(r.error, null);
  t.equal(r.eof, true);
  t.equal(r.downBytes, 3 * 1024 * 1024 + 17);
  t.equal(r.downSha, r.downExpectedSha);
  t.equal(r.downFirstMismatch, -1);
  t.equal(r.downExpectedSha, sha256(keystreamBytes(seed, 3 * 1024 * 1024 + 17)));
  t.equal(r.serverSha, r.upSha);
  t.equal(r.serverCount, 2 * 1024 * 1024 + 5);
  const zero = await hashRoundTrip(port, '127.0.0.1', 0, randomSeed(), { upBytes: 0 });
  t.equal(zero.serverCount, 0);
  t.equal(zero.serverSha, sha256(''));
});

t.test('multi mode dispatches; echo, reply-after-eof, close-first, sink', async (t) => {
  const { proc, port } = await hostServer(t, 'multi');
  const r = await hashRoundTrip(port, '127.0.0.1', 100000, randomSeed(), { preamble: 'hash\n' });
  t.equal(r.downSha, r.downExpectedSha);
  t.equal(r.serverSha, r.upSha);

  const pp = await echoPingPong(port, '127.0.0.1', ['ping', 'pong', 'x'.repeat(70000)], 'echo\n');
  t.same(pp.replies, ['ping', 'pong', 'x'.repeat(70000)]);
  t.equal(pp.final.eof, true);
  t.equal(pp.final.data.length, 0);

  const hc = await halfCloseRequest(port, 'hello', { preamble: 'reply-after-eof\n' });
  t.equal(hc.data.toString(), 'GOT:hello');
  t.equal(hc.eof, true);

  const cf = await readUntilEof(port, '127.0.0.1', 'close-first\n');
  t.equal(cf.eof, true);
  t.equal(cf.data.length, closeFirstExpected().length);
  t.equal(sha256(cf.data), sha256(closeFirstExpected()));

  const sink = await halfCloseRequest(port, Buffer.alloc(123456), { preamble: 'sink\n' });
  t.equal(sink.data.toString(), '123456\n');

  const bad = await halfCloseRequest(port, 'nope\n');
  t.match(bad.data.toString(), /^ERR unknown mode/);

  await resetMidUpload(port, '127.0.0.1', 'sink\n', 1024 * 1024);
  const ev = await (async () => {
    const line = await waitForStdoutLine(proc, (l) => l.startsWith('{') && l.includes('"error":"ECONNRESET"'), 20000, 'reset close');
    return JSON.parse(line) as { mode: string; error: string };
  })();
  t.equal(ev.mode, 'sink');
  t.ok(proc.running, 'the server survives a reset');
  const again = await hashRoundTrip(port, '127.0.0.1', 1000, randomSeed(), { preamble: 'hash\n' });
  t.equal(again.serverSha, again.upSha);
});

t.test('namespace helpers', async (t) => {
  let name = '';
  let pids: number[] = [];
  await t.test('create', async (t) => {
    name = await makeNetns(t);
    const list = await mustRun('ip', ['netns', 'list']);
    t.match(list, name);
    const s1 = await startServerInNetns(t, name, 'echo', ['127.0.0.1:5000', '[::1]:5000']);
    const s2 = await startUnshareServer(t, 'hash', ['127.0.0.1:5000']);
    pids = [s1.pid, s2.pid];
    const self = readlinkSync('/proc/self/ns/net');
    t.not(readlinkSync(`/proc/${s1.pid}/ns/net`), self);
    t.not(readlinkSync(`/proc/${s2.pid}/ns/net`), self);
    t.not(readlinkSync(`/proc/${s1.pid}/ns/net`), readlinkSync(`/proc/${s2.pid}/ns/net`));
    // the `ip netns exec` server really is in the named namespace
    t.equal(readlinkSync(`/proc/${s1.pid}/ns/net`), `net:[${statSync(`/run/netns/${name}`).ino}]`);
  });
  await t.test('cleaned up', async (t) => {
    const list = await mustRun('ip', ['netns', 'list']);
    t.notMatch(list, name);
    for (const pid of pids) {
      let alive = true;
      try {
        process.kill(pid, 0);
      } catch {
        alive = false;
      }
      t.notOk(alive, `pid ${pid} is gone`);
    }
  });
});
