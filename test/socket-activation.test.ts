// Socket activation: LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES as systemd passes them
// (through systemd-socket-activate), and the ways they can be wrong.
import t from 'tap';
import * as net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { startUnshareServer, type TestServer } from './helpers/namespaces';
import { MAIN_JS, NODE, runShell, startNsproxy } from './helpers/nsproxy';
import { spawnActivated } from './helpers/activation';
import { freePort, hashRoundTrip } from './helpers/client';
import { randomSeed } from './helpers/payload';
import { assertCleanStop, assertHashOk, assertOneStderrLine, hashProblem, requireProduct } from './helpers/checks';
import type { HashResult } from './helpers/client';

const TARGET_PORT = 5432;
const MiB = 1024 * 1024;

type Tap = tap.Test;

// Generous for 1 MiB on loopback, short enough that a stalled data path fails the
// subtest instead of the whole file's 240 s timeout.
const RT_TIMEOUT = 30000;

/** Asserts the activating round trip; false (stop this subtest) when it failed. */
function firstOk(t: Tap, r: HashResult): boolean {
  assertHashOk(t, r, 'first (activating) connection');
  if (hashProblem(r) === null) return true;
  t.comment('the activating connection failed: skipping the rest of this subtest');
  return false;
}

async function target(t: Tap): Promise<TestServer> {
  return startUnshareServer(t, 'hash', [`127.0.0.1:${TARGET_PORT}`]);
}

t.test('one socket (--fdname=db): the first connection waits in the backlog and goes through', async (t) => {
  if (!requireProduct(t)) return;
  const server = await target(t);
  const port = await freePort();
  const px = await spawnActivated(t, [`127.0.0.1:${port}`], ['db'], ['--pid', String(server.pid), '--to', `127.0.0.1:${TARGET_PORT}`]);
  // connect before nsproxy exists: systemd-socket-activate execs it on this connection
  const first = hashRoundTrip(port, '127.0.0.1', MiB, randomSeed('sa-'), { timeoutMs: RT_TIMEOUT });
  await px.ready();
  const firstResult = await first;
  t.same(
    px.listening.map((l) => ({ address: l.address, source: l.source, fd: l.fd, name: l.name })),
    [{ address: `127.0.0.1:${port}`, source: 'systemd', fd: 3, name: 'db' }],
    'exactly the passed socket (no default listener when systemd passes sockets)',
  );
  if (!firstOk(t, firstResult)) return;
  assertHashOk(t, await hashRoundTrip(port, '127.0.0.1', MiB, randomSeed('sa-'), { timeoutMs: RT_TIMEOUT }), 'second connection');
  await assertCleanStop(t, px);
});

t.test('a Unix socket (ListenStream=/path), keepalive on: forwards', async (t) => {
  if (!requireProduct(t)) return;
  const server = await target(t);
  const dir = mkdtempSync(path.join(tmpdir(), 'nsproxy-unix-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sock = path.join(dir, 'db.sock');
  const px = await spawnActivated(t, [sock], ['db'], ['--pid', String(server.pid), '--to', `127.0.0.1:${TARGET_PORT}`, '--keepalive', '1min']);
  const first = hashRoundTrip(0, '', MiB, randomSeed('ux-'), { timeoutMs: RT_TIMEOUT, path: sock });
  await px.ready();
  if (!firstOk(t, await first)) return;
  assertHashOk(t, await hashRoundTrip(0, '', MiB, randomSeed('ux-'), { timeoutMs: RT_TIMEOUT, path: sock }), 'second connection');
  await assertCleanStop(t, px);
});

t.test('two sockets (-l A -l B --fdname=a:b): both forward', async (t) => {
  if (!requireProduct(t)) return;
  const server = await target(t);
  const a = await freePort();
  const b = await freePort();
  const px = await spawnActivated(t, [`127.0.0.1:${a}`, `127.0.0.1:${b}`], ['a', 'b'], [
    '--pid', String(server.pid), '--to', `127.0.0.1:${TARGET_PORT}`,
  ]);
  const first = hashRoundTrip(b, '127.0.0.1', 256 * 1024, randomSeed('sa2-'), { timeoutMs: RT_TIMEOUT });
  await px.ready();
  const firstResult = await first;
  const got = px.listening
    .map((l) => ({ address: l.address, source: l.source, fd: l.fd, name: l.name }))
    .sort((x, y) => Number(x.fd) - Number(y.fd));
  t.same(
    got,
    [
      { address: `127.0.0.1:${a}`, source: 'systemd', fd: 3, name: 'a' },
      { address: `127.0.0.1:${b}`, source: 'systemd', fd: 4, name: 'b' },
    ],
    'both passed sockets, with their names',
  );
  if (!firstOk(t, firstResult)) return;
  assertHashOk(t, await hashRoundTrip(a, '127.0.0.1', MiB, randomSeed('sa2-'), { timeoutMs: RT_TIMEOUT }), 'via A');
  assertHashOk(t, await hashRoundTrip(b, '127.0.0.1', MiB, randomSeed('sa2-'), { timeoutMs: RT_TIMEOUT }), 'via B');
  await assertCleanStop(t, px);
});

t.test('a passed socket plus --listen: both forward', async (t) => {
  if (!requireProduct(t)) return;
  const server = await target(t);
  const a = await freePort();
  const px = await spawnActivated(t, [`127.0.0.1:${a}`], null, [
    '--pid', String(server.pid), '--to', `127.0.0.1:${TARGET_PORT}`, '--listen', '127.0.0.1:0',
  ]);
  const first = hashRoundTrip(a, '127.0.0.1', 256 * 1024, randomSeed('sa3-'), { timeoutMs: RT_TIMEOUT });
  await px.ready();
  const firstResult = await first;
  const sources = px.listening.map((l) => String(l.source)).sort();
  t.same(sources, ['listen', 'systemd'], 'one systemd socket and one --listen socket');
  const own = px.listening.find((l) => l.source === 'listen');
  t.ok(own && own.port > 0, '--listen got a port');
  if (!firstOk(t, firstResult)) return;
  if (own) assertHashOk(t, await hashRoundTrip(own.port, '127.0.0.1', MiB, randomSeed('sa3-'), { timeoutMs: RT_TIMEOUT }), 'via --listen');
  await assertCleanStop(t, px);
});

t.test('LISTEN_PID of another process: warn "ignoring LISTEN_FDS", --listen still works', async (t) => {
  if (!requireProduct(t)) return;
  const server = await target(t);
  const other = process.pid; // certainly not nsproxy's pid
  const px = await startNsproxy(t, ['--pid', String(server.pid), '--to', `127.0.0.1:${TARGET_PORT}`, '--listen', '127.0.0.1:0'], {
    env: { LISTEN_PID: String(other), LISTEN_FDS: '1', LISTEN_FDNAMES: 'db' },
  });
  const warn = px.logs.find((l) => l.msg.startsWith('ignoring LISTEN_FDS'));
  t.ok(warn, 'an "ignoring LISTEN_FDS" line', warn ? {} : { logs: px.logs });
  if (warn) {
    t.equal(warn.level, 40, 'at warn level');
    // the contract's wording, exactly; a hint may follow it
    const wording = `ignoring LISTEN_FDS: LISTEN_PID=${other} is not this process (${px.pid})`;
    t.ok(warn.msg.startsWith(wording), `the message starts with "${wording}"`, { msg: warn.msg });
  }
  t.same(px.listening.map((l) => l.source), ['listen'], 'only the --listen socket, fd 3 not used');
  assertHashOk(t, await hashRoundTrip(px.listening[0].port, '127.0.0.1', MiB, randomSeed('sa4-')), 'via --listen');
  await assertCleanStop(t, px);
});

t.test('LISTEN_PID of another process and no --listen: falls back to the default listener', async (t) => {
  if (!requireProduct(t)) return;
  const port = await freePort();
  const server = await startUnshareServer(t, 'hash', [`127.0.0.1:${port}`]);
  const px = await startNsproxy(t, ['--pid', String(server.pid), '--to', `127.0.0.1:${port}`], {
    env: { LISTEN_PID: '1', LISTEN_FDS: '1' },
  });
  t.ok(px.logs.some((l) => l.level === 40 && l.msg.startsWith('ignoring LISTEN_FDS')), 'warned');
  t.same(px.listening.map((l) => l.address), [`127.0.0.1:${port}`], 'default 127.0.0.1:<port of --to>');
  assertHashOk(t, await hashRoundTrip(port, '127.0.0.1', 256 * 1024, randomSeed('sa5-')));
  await assertCleanStop(t, px);
});

t.test('LISTEN_FDS=0 with our LISTEN_PID: exit 2, one stderr line', async (t) => {
  if (!requireProduct(t)) return;
  const server = await target(t);
  const r = await runShell('LISTEN_PID=$$ LISTEN_FDS=0 exec "$@"', [
    NODE, MAIN_JS, '--pid', String(server.pid), '--to', `127.0.0.1:${TARGET_PORT}`,
  ]);
  assertOneStderrLine(t, r, 2);
  t.match(r.stderr, /LISTEN_FDS|fd 3/, 'the error is about the passed fds');
});

t.test('passed fd is a regular file: exit 2, one stderr line', async (t) => {
  if (!requireProduct(t)) return;
  const server = await target(t);
  const r = await runShell('exec 3</etc/hostname; LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"', [
    NODE, MAIN_JS, '--pid', String(server.pid), '--to', `127.0.0.1:${TARGET_PORT}`,
  ]);
  assertOneStderrLine(t, r, 2);
  t.match(r.stderr, /LISTEN_FDS|fd 3/, 'the error is about the passed fds');
});

t.test('passed fd is a connected (not listening) TCP socket: exit 2, one stderr line', async (t) => {
  if (!requireProduct(t)) return;
  const server = await target(t);
  const conns = new Set<net.Socket>();
  const peer = net.createServer((s) => {
    conns.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => peer.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const c of conns) c.destroy();
        peer.close(() => resolve());
      }),
  );
  const peerPort = (peer.address() as net.AddressInfo).port;
  // bash's /dev/tcp opens a connected SOCK_STREAM socket on fd 3
  const r = await runShell(`exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/${peerPort}; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"' "$@"`, [
    NODE, MAIN_JS, '--pid', String(server.pid), '--to', `127.0.0.1:${TARGET_PORT}`,
  ]);
  assertOneStderrLine(t, r, 2);
  t.match(r.stderr, /LISTEN_FDS|fd 3/, 'the error is about the passed fds');
  t.equal(conns.size, 1, 'bash really connected fd 3');
});
