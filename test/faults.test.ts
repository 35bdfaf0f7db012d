// Faults the daemon must survive, each followed by a fresh round trip through the same daemon:
// the rootless helper killed mid-run, an fd-exhaustion storm, sockmap connections whose target
// died stalled behind clients that stopped reading, the target killed with transfers in flight,
// and SIGTERM with transfers in flight (those that finish within --drain-timeout are intact, the
// rest are reset, never cut with a FIN that would make them look complete).
import * as crypto from 'node:crypto';
import * as net from 'node:net';

import t from 'tap';

import { assertHashOk, requireProduct } from './helpers/checks';
import { hashRoundTrip, trackedConnection, type Ending } from './helpers/client';
import { cpuShare, fdCount } from './helpers/cpu';
import type { TestLike } from './helpers/env';
import { makeNetns, startServerInNetns } from './helpers/namespaces';
import { startNsproxy, type Nsproxy } from './helpers/nsproxy';
import { keystreamBytes, randomSeed } from './helpers/payload';
import { mustRun } from './helpers/procs';
import { childrenOf, commOf, startUserNsServer, testUser } from './helpers/users';

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function freshRoundTrip(t: tap.Test, port: number, px?: Nsproxy, label = 'a fresh round trip through the same daemon'): Promise<void> {
  const r = await hashRoundTrip(port, '127.0.0.1', MiB, randomSeed('fresh-'), { preamble: 'hash\n' });
  assertHashOk(t, r, label);
  // On a failure, what the daemon said about it.
  if (r.error !== null && px) t.comment(px.logs.filter((l) => Number(l.level) >= 40).slice(-10).map((l) => JSON.stringify(l)).join('\n'));
}

/** A client that connects, sends a line, and holds the connection open once echoed. */
function holdingEcho(port: number): { echoed: Promise<boolean>; close: () => void } {
  const sock = net.connect({ host: '127.0.0.1', port });
  sock.on('error', () => undefined);
  const echoed = new Promise<boolean>((resolve) => {
    sock.once('data', () => resolve(true));
    sock.once('close', () => resolve(false));
  });
  sock.write('echo\nping\n');
  return { echoed, close: () => sock.destroy() };
}

interface PacedResult {
  sentSha: string;
  echoSha: string;
  echoed: number;
  sent: number;
  eof: boolean;
  error: string | null;
}

/**
 * Sends `total` bytes to an echo server over `ms` milliseconds, half-closes, reads the echo to its
 * end. With `quietAfterMs`, it stops sending then, without a FIN, and only reads: a client that
 * writes may have a reset consumed by write() and then read an EOF after it, which would blur
 * "reset" and "FIN" (Node reports both).
 */
function pacedEcho(port: number, total: number, ms: number, quietAfterMs = Infinity): Promise<PacedResult> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const sent = crypto.createHash('sha256');
    const echo = crypto.createHash('sha256');
    const result: PacedResult = { sentSha: '', echoSha: '', echoed: 0, sent: 0, eof: false, error: null };
    const chunk = 64 * 1024;
    const steps = Math.ceil(total / chunk);
    sock.write('echo\n');
    const started = Date.now();
    const timer = setInterval(() => {
      if (Date.now() - started >= quietAfterMs) {
        clearInterval(timer);
        return;
      }
      if (result.sent >= total || sock.destroyed) {
        clearInterval(timer);
        if (!sock.destroyed) sock.end();
        return;
      }
      const data = crypto.randomBytes(Math.min(chunk, total - result.sent));
      sent.update(data);
      result.sent += data.length;
      sock.write(data);
    }, ms / steps);
    sock.on('data', (d: Buffer) => {
      echo.update(d);
      result.echoed += d.length;
    });
    sock.on('end', () => (result.eof = true));
    sock.on('error', (e: NodeJS.ErrnoException) => (result.error = e.code ?? e.message));
    sock.on('close', () => {
      clearInterval(timer);
      resolve({ ...result, sentSha: sent.digest('hex'), echoSha: echo.digest('hex') });
    });
  });
}

/** Sends `preamble`, then uploads and reads (discarding) until the connection ends: how it ended. */
function streamUntilEnd(port: number, preamble: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const junk = Buffer.alloc(64 * 1024, 0x5a);
    let end = '';
    const timer = setTimeout(() => {
      end = 'hang';
      sock.destroy();
    }, timeoutMs);
    // Until the socket buffers are full, yielding now and then: a target that died leaves nothing
    // to push back (the proxy discards what can no longer be delivered, as the reset would have),
    // and a loop that never yields would never read the rest of the stream and its reset.
    const upload = (): void => {
      for (let i = 0; i < 64; i++) {
        if (sock.destroyed || !sock.write(junk)) return;
      }
      setImmediate(upload);
    };
    sock.on('connect', () => {
      sock.write(preamble);
      upload();
    });
    sock.on('drain', upload);
    sock.on('data', () => undefined);
    sock.on('end', () => (end ||= 'EOF'));
    sock.on('error', (e: NodeJS.ErrnoException) => (end ||= e.code ?? 'error'));
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(end || 'closed');
    });
  });
}

async function rootNsproxy(t: TestLike, mode: 'multi' | 'echo', extra: string[] = []): Promise<{ px: Nsproxy; port: number; ns: string }> {
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, mode, ['127.0.0.1:7000']);
  const px = await startNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0', ...extra]);
  return { px, port: px.listening[0]!.port, ns };
}

t.test('the rootless helper killed mid-run: a new one takes over, transfers in flight go on', async (t) => {
  if (!requireProduct(t)) return;
  const user = await testUser(t);
  const server = await startUserNsServer(t, user, 'multi', ['127.0.0.1:7000']);
  const px = await startNsproxy(t, ['--pid', String(server.pid), '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0'], { wrapper: user.asUser, mainJs: user.mainJs });
  const port = px.listening[0]!.port;
  const helpers = () => childrenOf(px.pid).filter((pid) => commOf(pid) === 'nsproxy-helper');
  const [first] = helpers();
  t.ok(first, 'a helper runs');

  const inFlight = Array.from({ length: 16 }, (_, i) =>
    hashRoundTrip(port, '127.0.0.1', 8 * MiB, randomSeed(`hk${i}-`), { preamble: 'hash\n', upBytes: 8 * MiB, timeoutMs: 120_000 }),
  );
  await sleep(200);
  process.kill(first!, 'SIGKILL');
  // More new connections than the pool holds: some must wait for the new helper's sockets.
  const fresh = Array.from({ length: 48 }, (_, i) =>
    hashRoundTrip(port, '127.0.0.1', 64 * 1024, randomSeed(`hf${i}-`), { preamble: 'hash\n', upBytes: 16 * 1024, timeoutMs: 60_000 }),
  );
  const results = await Promise.all([...inFlight, ...fresh]);
  const broken = results.filter((r) => r.error !== null || !r.eof || r.downSha !== r.downExpectedSha || r.serverSha !== r.upSha);
  t.equal(broken.length, 0, `all ${results.length} transfers intact (16 in flight across the kill, 48 started after it)`);
  const line = await px.waitForLog((l) => l.msg === 'helper died; a new one takes over', 10_000);
  t.equal(line.helperPid, first, 'the death is logged with the helper\'s PID');
  const [second] = helpers();
  t.ok(second !== undefined && second !== first, `a new helper runs (${second})`);
  await freshRoundTrip(t, port, px);
});

t.test('an fd-exhaustion storm: no busy loop while saturated, and recovery', async (t) => {
  if (!requireProduct(t)) return;
  const { px, port } = await rootNsproxy(t, 'multi', ['--backlog', '1024']);
  // Room for a handful of connections only (each takes 2 fds).
  const soft = fdCount(px.pid) + 12;
  await mustRun('prlimit', [`--pid=${px.pid}`, `--nofile=${soft}:`]);
  const clients = Array.from({ length: 500 }, () => holdingEcho(port));
  await sleep(1500);
  const share = await cpuShare(px.pid, 3000);
  t.ok(share < 0.1, `saturated, nsproxy used ${(share * 100).toFixed(1)} % of a core (< 10 %)`);
  const served = (await Promise.all(clients.map((c) => Promise.race([c.echoed, sleep(10).then(() => false)])))).filter(Boolean).length;
  t.ok(served > 0 && served < 500, `only ${served} of 500 served while out of fds; the rest wait in the backlog`);
  const errors = px.logs.filter((l) => l.msg === 'accept failed');
  t.ok(errors.length > 0 && errors.length <= 8, `"accept failed" logged ${errors.length} times in ~5 s (at most once a second)`);
  t.equal(errors[0]?.code, 'EMFILE', 'with EMFILE');

  await mustRun('prlimit', [`--pid=${px.pid}`, '--nofile=20000:']);
  const echoed = await Promise.all(clients.map((c) => c.echoed));
  t.equal(echoed.filter(Boolean).length, 500, 'once fds are back, all 500 clients are served');
  for (const c of clients) c.close();
  await freshRoundTrip(t, port, px);
});

t.test('--engine sockmap: 128 connections whose target died wait for clients that stopped reading: no busy loop, and each ends intact once read', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  const server = await startServerInNetns(t, ns, 'multi', ['127.0.0.1:7000']);
  const px = await startNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0', '--engine', 'sockmap']);
  const port = px.listening[0]!.port;
  // Each asks for 200 MiB and reads nothing: the server fills every buffer on the way and dies.
  // What it sent is then in nsproxy's hands, and its end (FIN or reset) waits behind it.
  const clients = Array.from({ length: 128 }, (_, i) => {
    const seed = randomSeed(`stalled${i}-`);
    const got: Buffer[] = [];
    // Its own time limit never decides: the 60 s race below does.
    let sock!: net.Socket;
    const ended = new Promise<Ending>((resolve) => (sock = trackedConnection(port, '127.0.0.1', 120_000, resolve)));
    sock.write(`hash\n${seed} ${200 * MiB}\n`);
    sock.pause();
    sock.on('data', (d: Buffer) => got.push(d));
    return { seed, sock, got, ended };
  });
  await sleep(1000);
  server.proc.signal('SIGKILL');
  await sleep(1500);
  const share = await cpuShare(px.pid, 3000);
  // Polled every millisecond they took 13 % here; with the back-off, 3 %.
  t.ok(share < 0.07, `while they wait, nsproxy used ${(share * 100).toFixed(1)} % of a core (< 7 %)`);
  for (const c of clients) c.sock.resume();
  const ends = await Promise.race([Promise.all(clients.map((c) => c.ended)), sleep(60_000).then(() => null)]);
  t.ok(ends !== null, 'once the clients read, every connection ends within 60 s');
  t.comment(`ends: ${[...new Set((ends ?? []).map((e) => (e.eof ? 'EOF' : e.error ?? 'closed')))].join(', ')}`);
  // A connection the server had not accepted yet when it died is reset with nothing sent, as it
  // would be directly; every byte that came is the keystream's, in order.
  const damaged = clients.filter((c) => {
    const got = Buffer.concat(c.got);
    return !got.equals(keystreamBytes(c.seed, got.length));
  });
  t.equal(damaged.length, 0, 'what each client got is a prefix of its keystream, byte for byte');
  const served = clients.filter((c) => c.got.length > 0).length;
  t.ok(served > 0, `${served} of 128 were served before the target died`);
  await startServerInNetns(t, ns, 'multi', ['127.0.0.1:7000']);
  await freshRoundTrip(t, port, px);
});

// The faults whose handling depends on who moves the bytes, on each engine (as root, auto keeps
// these bulk transfers on splice; --engine sockmap keeps them in the kernel until their backlog
// passes the cap).
const ENGINES: Array<[string, string[]]> = [
  ['--engine auto', []],
  ['--engine sockmap', ['--engine', 'sockmap']],
  ['--engine splice', ['--engine', 'splice']],
];
for (const [engine, options] of ENGINES) {
  t.test(`${engine}: the target killed with 100 transfers in flight: every client sees a reset or EOF, never a hang`, async (t) => {
    if (!requireProduct(t)) return;
    const ns = await makeNetns(t);
    const server = await startServerInNetns(t, ns, 'multi', ['127.0.0.1:7000']);
    const px = await startNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0', ...options]);
    const port = px.listening[0]!.port;
    // Each asks for 1 GiB and uploads without end: both directions are busy when the target dies.
    const transfers = Array.from({ length: 100 }, (_, i) => streamUntilEnd(port, `hash\ntk${i} ${1024 * MiB}\n`, 60_000));
    await sleep(1000);
    server.proc.signal('SIGKILL');
    const ends = await Promise.all(transfers);
    t.equal(ends.filter((e) => e === 'hang').length, 0, 'no client hung (each saw its end within 60 s)');
    t.comment(`ends: ${[...new Set(ends)].join(', ')}`);
    t.ok(px.running, 'nsproxy is still running');
    await startServerInNetns(t, ns, 'multi', ['127.0.0.1:7000']);
    await freshRoundTrip(t, port, px);
  });

  t.test(`${engine}: SIGTERM with transfers in flight: those done within --drain-timeout are intact, the rest reset`, async (t) => {
    if (!requireProduct(t)) return;
    const { px, port } = await rootNsproxy(t, 'multi', ['--drain-timeout', '3s', ...options]);
    const short = Array.from({ length: 5 }, () => pacedEcho(port, 4 * MiB, 1000));
    // Quiet from 2 s on: still open, waiting for the rest of the echo, when the drain ends at 3.3 s.
    const long = Array.from({ length: 5 }, () => pacedEcho(port, 400 * MiB, 20_000, 2000));
    await sleep(300);
    px.proc.signal('SIGTERM');
    const [shorts, longs] = await Promise.all([Promise.all(short), Promise.all(long)]);
    for (const r of shorts) {
      t.ok(r.eof && r.error === null && r.echoed === r.sent && r.echoSha === r.sentSha, `a transfer done within the drain is intact (${r.echoed}/${r.sent} bytes, ${r.error ?? 'EOF'})`);
    }
    for (const r of longs) {
      t.ok(r.error !== null && !r.eof && r.echoed < 400 * MiB, `a transfer cut at the drain timeout is reset, not ended with EOF (${r.error ?? 'EOF'} after ${r.echoed} bytes)`);
    }
    const exit = await px.proc.exited;
    t.equal(exit.code, 0, 'nsproxy exits 0');
  });
}
