// Backpressure on the small-message path: thousands of small writes echoed back while the client
// does not read, so nsproxy's sends fill the client's socket and it must park what it read
// (and later splice it on) without losing or reordering a byte.
import * as crypto from 'node:crypto';
import * as net from 'node:net';

import t from 'tap';

import { assertCleanStop, requireProduct } from './helpers/checks';
import { REPO_ROOT } from './helpers/env';
import { makeNetns, startServerInNetns } from './helpers/namespaces';
import { startNsproxy } from './helpers/nsproxy';
import { runCommand } from './helpers/procs';

/** Writes `messages` while paused, waits `stallMs`, then reads everything back; resolves the echo. */
function stalledEcho(port: number, messages: Buffer[], stallMs: number): Promise<{ echoed: Buffer; error: string | null }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | null = null;
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => {
      socket.pause();
      for (const message of messages) socket.write(message);
      socket.end();
      setTimeout(() => socket.resume(), stallMs);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (e: NodeJS.ErrnoException) => (error ??= e.code ?? e.message));
    socket.on('close', () => resolve({ echoed: Buffer.concat(chunks), error }));
  });
}

t.test('8 MiB in 1 KiB writes, echoed to a client that stalls: every byte, in order', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'echo', ['127.0.0.1:7000']);
  const px = await startNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0']);
  const messages = Array.from({ length: 8192 }, () => crypto.randomBytes(1024));
  const sent = Buffer.concat(messages);
  const { echoed, error } = await stalledEcho(px.listening[0]!.port, messages, 1500);
  t.equal(error, null, 'no socket error');
  t.equal(echoed.length, sent.length, 'as many bytes back as sent');
  t.equal(crypto.createHash('sha256').update(echoed).digest('hex'), crypto.createHash('sha256').update(sent).digest('hex'), 'SHA-256 of the echo matches');
  await assertCleanStop(t, px);
});

t.test('small messages trickled to a client whose buffers are full: parked in the pipe, none lost', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'echo', ['127.0.0.1:7000']);
  const px = await startNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0']);
  // 11 MB: more than nsproxy's socket send buffer (tcp_wmem max 4 MiB) and the client's together
  const client = await runCommand('python3', [`${REPO_ROOT}/test/fixtures/trickle-client.py`, String(px.listening[0]!.port), '16000'], { timeoutMs: 120000 });
  t.equal(client.code, 0, 'the client ran', { stderr: client.stderr });
  t.equal(client.stdout.trim(), '11200000 11200000 True', 'all 11.2 MB echoed, SHA-256 equal');
  await assertCleanStop(t, px);
});
