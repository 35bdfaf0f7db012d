// --connections-max is exact: at the limit nsproxy stops accepting, and the next client waits in
// the kernel's accept queue (it is neither accepted-and-dropped nor refused) until a slot frees.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import * as net from 'node:net';

import t from 'tap';

import { assertCleanStop, requireProduct } from './helpers/checks';
import { makeNetns, startServerInNetns } from './helpers/namespaces';
import { startNsproxy } from './helpers/nsproxy';
import { mustRun } from './helpers/procs';

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Resolves with the first `n` bytes the socket receives. */
function receive(socket: net.Socket, n: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (chunk: Buffer) => {
      got += chunk.toString();
      if (got.length >= n) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

/** Connections waiting in the listener's accept queue (Recv-Q of a LISTEN socket in ss). */
async function acceptQueue(port: number): Promise<number> {
  const out = await mustRun('ss', ['-Hltn', `sport = :${port}`]);
  const fields = out.trim().split(/\s+/);
  return Number(fields[1]);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** How many epoll sets of process `pid` have `fd` registered (the "tfd:" lines of their fdinfo). */
function epollsWatching(pid: number, fd: number): number {
  let count = 0;
  for (const entry of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${entry}`) !== 'anon_inode:[eventpoll]') continue;
      const info = readFileSync(`/proc/${pid}/fdinfo/${entry}`, 'utf8');
      if (new RegExp(`^tfd:\\s+${fd}\\s`, 'm').test(info)) count++;
    } catch {
      /* closed meanwhile */
    }
  }
  return count;
}

t.test('--connections-max 2: the third client waits in the backlog, then gets through', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'echo', ['127.0.0.1:7000']);
  const px = await startNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0', '--connections-max', '2']);
  await px.ready();
  const port = px.listening[0]!.port;

  const first = await connect(port);
  const second = await connect(port);
  t.teardown(() => {
    first.destroy();
    second.destroy();
  });
  first.write('one');
  second.write('two');
  t.equal(await receive(first, 3), 'one', 'first connection forwarded');
  t.equal(await receive(second, 3), 'two', 'second connection forwarded');

  const third = await connect(port); // the kernel completes the handshake; nsproxy must not accept
  t.teardown(() => third.destroy());
  let thirdReply = '';
  third.on('data', (chunk: Buffer) => (thirdReply += chunk.toString()));
  third.write('three');
  // Give a wrong implementation every chance to accept it, then look at the kernel's queue.
  for (let i = 0; i < 10; i++) {
    await sleep(50);
    t.equal(await acceptQueue(port), 1, `third client still in the accept queue (check ${i + 1})`);
  }
  t.equal(thirdReply, '', 'nothing forwarded for the third client at the limit');

  first.end();
  t.equal(await receive(third, 5), 'three', 'third client forwarded once a slot freed');
  t.equal(await acceptQueue(port), 0, 'accept queue empty');
  second.destroy();
  third.destroy();
  await assertCleanStop(t, px);
});

t.test('--threads 2 --connections-max 1: a slot freed by one worker wakes the other', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'echo', ['127.0.0.1:7000']);
  const px = await startNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0', '--connections-max', '1', '--threads', '2']);
  const port = px.listening[0]!.port;
  // A chain of staggered clients: each holds the one slot a while, the next one waits in the
  // backlog; whichever worker parked at the limit must serve it as soon as the slot frees.
  const delays: number[] = [];
  let holder = await connect(port);
  holder.write('0');
  await receive(holder, 1);
  for (let i = 1; i <= 12; i++) {
    const next = await connect(port);
    next.write(String(i % 10));
    const echoed = receive(next, 1);
    await sleep(i % 2 ? 30 : 120);
    const freed = Date.now();
    holder.destroy();
    await echoed;
    delays.push(Date.now() - freed);
    holder = next;
  }
  holder.destroy();
  t.comment(`served after the slot freed: ${delays.join(', ')} ms`);
  t.ok(Math.max(...delays) < 100, `every client served within 100 ms of a slot freeing (max ${Math.max(...delays)} ms)`);
  // Once slots are free again, both workers watch the listener again: none stays parked (a
  // parked worker that owns no connection used to stay out for good).
  await sleep(200);
  const fd = Number(px.listening[0]!.fd);
  t.equal(epollsWatching(px.pid, fd), 2, 'both engine threads watch the listener again');
  await assertCleanStop(t, px);
});
