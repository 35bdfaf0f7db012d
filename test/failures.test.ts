// Failure paths on one daemon: the server closes first, the client resets
// mid-upload and mid-download, the server resets mid-upload, the target port is
// closed. After each, a fresh hash round trip must still succeed through the
// same daemon. The server runs in `multi` mode (the first line picks the mode)
// in an `ip netns add` namespace, so it can be stopped and started again there.
import t from 'tap';
import { makeNetns, startServerInNetns, type TestServer } from './helpers/namespaces';
import { startNsproxy, type Nsproxy } from './helpers/nsproxy';
import { hashRoundTrip, readUntilEof, resetMidDownload, resetMidUpload, uploadUntilClosed } from './helpers/client';
import { closeFirstExpected, randomSeed, sha256 } from './helpers/payload';
import { assertCleanStop, assertHashOk, assertRunning, requireProduct } from './helpers/checks';

const MiB = 1024 * 1024;
const TARGET_PORT = 5432;
const TARGET = `127.0.0.1:${TARGET_PORT}`;

type Tap = tap.Test;

async function freshRoundTrip(t: Tap, px: Nsproxy, port: number): Promise<void> {
  assertRunning(t, px);
  const r = await hashRoundTrip(port, '127.0.0.1', MiB, randomSeed('after-'), { preamble: 'hash\n' });
  assertHashOk(t, r, 'fresh round trip through the same daemon');
}

t.test('failure paths', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  let server: TestServer = await startServerInNetns(t, ns, 'multi', [TARGET]);
  const px = await startNsproxy(t, ['--netns', ns, '--to', TARGET, '--listen', '127.0.0.1:0']);
  const port = px.listening[0].port;
  await freshRoundTrip(t, px, port);

  await t.test('server closes first: all bytes arrive, then EOF', async (t) => {
    // we send only the mode line and never half-close before the server's EOF
    const r = await readUntilEof(port, '127.0.0.1', 'close-first\n');
    const want = closeFirstExpected();
    t.equal(r.timedOut, false, 'no hang');
    t.equal(r.error, null, 'no socket error');
    t.equal(r.eof, true, 'EOF (FIN) after the data');
    t.equal(r.data.length, want.length, `all ${want.length} bytes`);
    t.equal(sha256(r.data), sha256(want), 'same bytes (SHA-256)');
    t.equal(r.data.subarray(0, 4).toString(), 'BYE\n', 'starts with BYE');
    await freshRoundTrip(t, px, port);
  });

  await t.test('client resets mid-upload: the server side is closed, the daemon survives', async (t) => {
    const mark = server.mark();
    const sent = await resetMidUpload(port, '127.0.0.1', 'sink\n', 4 * MiB);
    t.ok(sent.sent >= 4 * MiB, `uploaded ${sent.sent} bytes, then RST`);
    const ev = await server.waitForClose((e) => e.mode === 'sink', 30000, mark);
    t.comment(`server side ended with ${ev.error ?? 'EOF'} after ${ev.bytesIn} bytes`);
    t.ok(ev.error === null || ev.error === 'ECONNRESET' || ev.error === 'EPIPE', `reset or closed (${ev.error ?? 'EOF'})`);
    await freshRoundTrip(t, px, port);
  });

  await t.test('client resets mid-download: the server side is closed, the daemon survives', async (t) => {
    // ask for far more than we read; nsproxy is splicing into our socket when the RST arrives
    const mark = server.mark();
    const got = await resetMidDownload(port, '127.0.0.1', `hash\n${randomSeed('rst-')} ${1024 * MiB}\n`, 2 * MiB);
    t.ok(got >= 2 * MiB, `read ${got} bytes, then RST`);
    const ev = await server.waitForClose((e) => e.mode === 'hash', 30000, mark);
    t.comment(`server side ended with ${ev.error ?? 'EOF'} after sending ${ev.bytesOut} bytes`);
    t.ok(ev.bytesOut < 1024 * MiB, 'the server stopped before sending everything');
    await freshRoundTrip(t, px, port);
  });

  await t.test('server resets mid-upload: the client is closed, the daemon survives (no SIGPIPE death)', async (t) => {
    const mark = server.mark();
    const r = await uploadUntilClosed(port, '127.0.0.1', 'reset\n', 512 * MiB, 60000);
    t.equal(r.timedOut, false, 'the client connection ended (no hang)');
    t.ok(r.error !== null || r.eof, `closed under the client (${r.error ?? 'EOF'}) after ${r.sent} bytes`);
    t.ok(r.sent < 512 * MiB, 'the upload did not silently vanish into a dead connection');
    await server.waitForClose((e) => e.mode === 'reset', 30000, mark);
    await freshRoundTrip(t, px, port);
  });

  await t.test('target port closed: client closed promptly, "connect failed" ECONNREFUSED, daemon goes on', async (t) => {
    await server.stop();
    const r = await readUntilEof(port, '127.0.0.1', `hash\n${randomSeed('refused-')} 1000\n`, 20000);
    t.equal(r.timedOut, false, 'the client was closed (within 20 s)');
    t.equal(r.data.length, 0, 'no data');
    t.ok(r.eof || r.error !== null, `closed (${r.error ?? 'EOF'})`);
    const warn = await px.waitForLog((l) => l.msg === 'connect failed', 20000, '"connect failed"');
    t.equal(warn.level, 40, 'a warn line');
    t.equal(warn.code, 'ECONNREFUSED', 'code ECONNREFUSED');
    t.equal(warn.to, TARGET, 'names the target');
    assertRunning(t, px);
    // the same port comes back in the same namespace: the daemon must use it
    server = await startServerInNetns(t, ns, 'multi', [TARGET]);
    await freshRoundTrip(t, px, port);
  });

  await assertCleanStop(t, px);
});
