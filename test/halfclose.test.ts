// Half-close: the client sends, shutdown(SHUT_WR)s, and must still read the
// server's full answer. systemd-socket-proxyd fails this; nsproxy must not.
import t from 'tap';
import * as crypto from 'node:crypto';
import { existsSync } from 'node:fs';
import { startUnshareServer } from './helpers/namespaces';
import { startNsproxy } from './helpers/nsproxy';
import { freePort, halfCloseRequest } from './helpers/client';
import { assertCleanStop, requireProduct } from './helpers/checks';
import { SOCKET_PROXYD } from './helpers/env';
import { Proc } from './helpers/procs';

const TARGET_PORT = 5432;

t.test('half-close through nsproxy', async (t) => {
  if (!requireProduct(t)) return;
  const server = await startUnshareServer(t, 'reply-after-eof', [`127.0.0.1:${TARGET_PORT}`]);
  const px = await startNsproxy(t, ['--pid', String(server.pid), '--to', `127.0.0.1:${TARGET_PORT}`, '--listen', '127.0.0.1:0']);
  const port = px.listening[0].port;

  await t.test('send "hello", SHUT_WR, read "GOT:hello"', async (t) => {
    const r = await halfCloseRequest(port, 'hello');
    t.equal(r.timedOut, false, 'answered (no hang)');
    t.equal(r.error, null, 'no socket error');
    t.equal(r.data.toString('utf8'), 'GOT:hello', 'the full answer after our half-close');
    t.equal(r.eof, true, 'then EOF');
  });

  await t.test('2 MiB request, SHUT_WR, 2 MiB + 4 answer', async (t) => {
    const payload = crypto.randomBytes(2 * 1024 * 1024);
    const r = await halfCloseRequest(port, payload);
    t.equal(r.error, null, 'no socket error');
    t.equal(r.eof, true, 'EOF');
    t.equal(r.data.length, payload.length + 4, 'length');
    t.ok(r.data.equals(Buffer.concat([Buffer.from('GOT:'), payload])), 'GOT: + the same bytes');
  });

  await t.test('empty request: SHUT_WR at once, read "GOT:"', async (t) => {
    const r = await halfCloseRequest(port, '');
    t.equal(r.data.toString('utf8'), 'GOT:', 'answer');
    t.equal(r.eof, true, 'EOF');
  });

  await assertCleanStop(t, px);

  if (!existsSync(SOCKET_PROXYD)) {
    t.comment(`${SOCKET_PROXYD} not installed: no comparison`);
    return;
  }
  await t.test('for comparison: the same request through systemd-socket-proxyd (recorded, not asserted)', async (t) => {
    const p = await freePort();
    const proxyd = new Proc('socket-proxyd', 'systemd-socket-activate', [
      '-l', `127.0.0.1:${p}`, 'nsenter', '-t', String(server.pid), '-n', SOCKET_PROXYD, `127.0.0.1:${TARGET_PORT}`,
    ]);
    t.teardown(() => proxyd.stop('SIGTERM', 5000));
    await proxyd.stderr.waitFor((l) => l.startsWith(`Listening on 127.0.0.1:${p}`), 20000, 'systemd-socket-activate listening');
    const r = await halfCloseRequest(p, 'hello', { timeoutMs: 10000 });
    t.comment(
      `systemd-socket-proxyd answered ${JSON.stringify(r.data.toString('utf8'))} ` +
        `(eof=${r.eof}, error=${r.error}, timedOut=${r.timedOut}); nsproxy answered "GOT:hello"`,
    );
    t.pass('recorded');
  });
});
