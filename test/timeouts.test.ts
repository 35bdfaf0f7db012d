// Connections that would hold a slot for ever: a target that never answers a SYN
// (--connect-timeout), and a client that vanished without a FIN or RST (--keepalive).
import * as net from 'node:net';

import t from 'tap';

import { requireProduct } from './helpers/checks';
import type { TestLike } from './helpers/env';
import { makeNetns, startServerInNetns } from './helpers/namespaces';
import { startNsproxy } from './helpers/nsproxy';
import { mustRun, Proc, registerNetns, unregisterNetns, waitForStdoutLine } from './helpers/procs';
import { childEnv } from './helpers/env';

/** Connects, sends a line, and resolves with how the connection ended and when. */
function untilEnd(port: number, host = '127.0.0.1'): Promise<{ end: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let end = '';
    sock.on('connect', () => sock.write('hello\n'));
    sock.on('data', () => undefined);
    sock.on('end', () => (end ||= 'EOF'));
    sock.on('error', (e: NodeJS.ErrnoException) => (end ||= e.code ?? 'error'));
    sock.on('close', () => resolve({ end: end || 'closed', ms: Date.now() - started }));
  });
}

t.test('--connect-timeout: a target that drops SYNs costs the client a reset after the timeout, not minutes', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  // A black hole: a listener whose accept queue (backlog 0) is full after one connection; the
  // kernel then drops every SYN to it silently. nsproxy's readiness probe is that one connection.
  const hole = new Proc('black hole', 'ip', ['netns', 'exec', ns, 'python3', '-c',
    "import socket, time\ns = socket.socket(); s.bind(('127.0.0.1', 7000)); s.listen(0); print('listening', flush=True); time.sleep(3600)"], { env: childEnv() });
  t.teardown(() => hole.stop('SIGKILL', 1000));
  await waitForStdoutLine(hole, (l) => l === 'listening', 10_000, 'the black hole');
  const px = await startNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0', '--connect-timeout', '1s']);
  const r = await untilEnd(px.listening[0]!.port);
  t.equal(r.end, 'ECONNRESET', 'the client gets a reset');
  t.ok(r.ms >= 900 && r.ms < 10_000, `after about the timeout (${r.ms} ms), not after the kernel's ~2 min of SYN retries`);
  const warn = await px.waitForLog((l) => l.msg === 'connect failed', 5000);
  t.equal(warn.code, 'ETIMEDOUT', '"connect failed" ETIMEDOUT is logged');
});

/** A client network namespace joined to the host by a veth pair: its address, and a way to cut it off. */
async function clientNamespace(t: TestLike): Promise<{ ns: string; host: string; client: string; cut: () => Promise<void> }> {
  const id = process.pid % 200;
  const ns = `nsproxy-tc-${process.pid}`;
  const [hostIf, clientIf] = [`nspth${id}`, `nsptc${id}`];
  const net24 = `10.253.${id}`;
  registerNetns(ns);
  await mustRun('ip', ['netns', 'add', ns]);
  t.teardown(async () => {
    await mustRun('ip', ['link', 'del', hostIf]).catch(() => undefined);
    await mustRun('ip', ['netns', 'del', ns]);
    unregisterNetns(ns);
  });
  await mustRun('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', clientIf, 'netns', ns]);
  await mustRun('ip', ['addr', 'add', `${net24}.1/30`, 'dev', hostIf]);
  await mustRun('ip', ['link', 'set', hostIf, 'up']);
  await mustRun('ip', ['-n', ns, 'addr', 'add', `${net24}.2/30`, 'dev', clientIf]);
  await mustRun('ip', ['-n', ns, 'link', 'set', clientIf, 'up']);
  await mustRun('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  // The client vanishes: packets to it go nowhere, and nothing answers with a FIN or RST.
  const cut = async () => void (await mustRun('ip', ['-n', ns, 'link', 'set', clientIf, 'down']));
  return { ns, host: `${net24}.1`, client: `${net24}.2`, cut };
}

t.test('--keepalive: a client that vanished without a word is found out, and its slot freed', async (t) => {
  if (!requireProduct(t)) return;
  const target = await makeNetns(t);
  await startServerInNetns(t, target, 'echo', ['127.0.0.1:7000']);
  const c = await clientNamespace(t);
  const px = await startNsproxy(t, ['--netns', target, '--to', '127.0.0.1:7000', '--listen', `${c.host}:0`, '--keepalive', '2s', '--log-level', 'debug']);
  const port = px.listening[0]!.port;
  const client = new Proc('vanishing client', 'ip', ['netns', 'exec', c.ns, 'python3', '-c',
    `import socket, time\ns = socket.create_connection(('${c.host}', ${port})); s.sendall(b'echo\\nhi\\n'); s.recv(100); print('connected', flush=True); time.sleep(3600)`], { env: childEnv() });
  t.teardown(() => client.stop('SIGKILL', 1000));
  await waitForStdoutLine(client, (l) => l === 'connected', 10_000, 'the client connected');
  await c.cut();
  const cutAt = Date.now();
  // Idle 2 s, then probes every 1 s; 4 unanswered probes: the kernel resets it (ETIMEDOUT).
  const closed = await px.waitForLog((l) => l.msg === 'connection closed', 30_000);
  t.equal(closed.code, 'ETIMEDOUT', 'the connection ended with ETIMEDOUT (keepalive)');
  t.comment(`found out ${Date.now() - cutAt} ms after the client vanished`);
});
