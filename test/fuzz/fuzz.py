#!/usr/bin/env python3
"""fuzz.py — the differential fuzzer: every seeded TCP conversation runs directly into the target
namespace (twice) and through the proxy under test; what each end observed must be the same.

    python3 test/fuzz/fuzz.py --seconds 600 [--seed S] [--peer nsproxy|socket-proxyd]
                              [--user NAME] [--concurrency N] [-- NSPROXY-OPTIONS...]

Both ends live in this one process: the server's sockets are created inside the target netns
(setns on this thread around socket()), the client's on the host, so a conversation's steps run
in one event loop in a fixed order (scenarios.py says which orders are deterministic). For each
end the harness compares the bytes it received (count, and every byte checked against the
sender's stream) and how its stream ended (eof, reset, open, closed by itself).

A connection to a closed port cannot be refused by a proxy that already accepted it; the closest
it can do is to reset it before any byte, so a direct 'refused' is compared as 'reset'.

Exit status: 0 no difference, 1 differences (each printed with its seed and steps), 2 the
harness itself failed (set-up, a proxy died). The last line of stdout is a JSON summary.
Needs root (namespaces) and a built nsproxy (npm run build).
"""
import argparse
import asyncio
import json
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import proxy_protocol  # noqa: E402
from peers import Environment, ensure_user  # noqa: E402
from scenarios import NAMED, generate  # noqa: E402
from wire import PATTERN_SIZE, End, Timeout, make_pattern  # noqa: E402

WAIT = 60.0      # seconds any single step may take before it counts as a hang
GRACE = 0.02     # after settling, for a late FIN or RST to land before the snapshot


async def poll(predicate, what):
    """For kernel state no event reports (FIONREAD, SIOCOUTQNSD): check every millisecond."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise Timeout(what)
        await asyncio.sleep(0.001)


class Run:
    """One conversation on one path ('direct' or 'proxy')."""

    def __init__(self, h, conv, index, path):
        self.h = h
        self.conv = conv
        self.index = index
        self.path = path
        self.ends = {}
        self.header_problem = None

    async def connect(self):
        h, env = self.h, self.h.env
        loop = asyncio.get_running_loop()
        refused = self.conv['kind'] == 'refused'
        if self.path == 'proxy':
            client = socket.socket()
            port = env.refusing_port if refused else env.proxy_port
            listener, lock = env.proxied, h.proxy_lock
        else:
            client = env.ns.socket()
            port = env.closed_port if refused else env.direct_port
            listener, lock = env.direct, h.direct_lock
        client.setblocking(False)
        starts = random.Random(f'{h.seed}/{self.index}/streams')
        c_start, s_start = starts.randrange(PATTERN_SIZE), starts.randrange(PATTERN_SIZE)
        if refused:
            try:
                await asyncio.wait_for(loop.sock_connect(client, ('127.0.0.1', port)), WAIT)
            except (ConnectionRefusedError, ConnectionResetError):
                client.close()  # refused, or (through a proxy) reset as soon as it was accepted
                return False
            self.ends['c'] = End(loop, client, h.pattern, c_start, s_start, 'client')
            self.ends['c'].resume()
            return True
        async with lock:
            t0 = time.monotonic()
            await asyncio.wait_for(loop.sock_connect(client, ('127.0.0.1', port)), WAIT)
            t1 = time.monotonic()
            server, _ = await asyncio.wait_for(loop.sock_accept(listener), WAIT)
            if time.monotonic() - t0 > 1:
                print(f'# slow setup {self.index} {self.path}: connect {t1-t0:.2f}s accept {time.monotonic()-t1:.2f}s', file=sys.stderr)
        server.setblocking(False)
        if self.path == 'proxy' and h.args.proxy_protocol:
            problem = await self.take_proxy_header(server, client)
            if problem:
                self.header_problem = problem
        self.ends['c'] = End(loop, client, h.pattern, c_start, s_start, 'client')
        self.ends['s'] = End(loop, server, h.pattern, s_start, c_start, 'server')
        for e in self.ends.values():
            e.resume()  # both ends read from the start, unless a step stalls them
        return True

    async def take_proxy_header(self, server, client):
        """Reads the PROXY protocol header off the server's socket, byte for byte against the
        reference; a problem is a string (and a difference), None when it was exact."""
        deadline = asyncio.get_running_loop().time() + WAIT
        need = None
        while True:
            try:
                prefix = server.recv(256, socket.MSG_PEEK)
            except BlockingIOError:
                prefix = b''
            try:
                need = proxy_protocol.length(prefix) if prefix else None
            except ValueError as err:
                return str(err)
            if need is not None and len(prefix) >= need:
                break
            if asyncio.get_running_loop().time() > deadline:
                return 'no complete PROXY header'
            await asyncio.sleep(0.001)
        header = server.recv(need)
        want = proxy_protocol.expected(self.h.args.proxy_protocol, client.getsockname(), ('127.0.0.1', self.h.env.proxy_port))
        return None if header == want else f'PROXY header {header!r}, expected {want!r}'

    def peer(self, x):
        return self.ends['s' if x == 'c' else 'c']

    async def step(self, step):
        op = step[0]
        if op == 'sleep':
            await asyncio.sleep(step[1] / 1000)
            return
        e = self.ends.get(step[1])
        if e is None:
            return
        p = self.peer(step[1]) if len(self.ends) == 2 else None
        if op == 'write':
            _, _, n, chunk, wait = step
            e.write(n, chunk)
            if wait == 'sent':
                await e.until(lambda: not e.writing(), WAIT, 'write sent')
            elif wait == 'recv' and p is not None:
                await p.until(lambda: (not e.writing() and p.received >= e.written) or p.end is not None or p.closed,
                              WAIT, 'peer received the write')
        elif op == 'stall':
            e.stall()
        elif op == 'resume':
            e.resume()
        elif op == 'head':
            await e.read_exactly(step[2], WAIT)
        elif op in ('shut', 'close'):
            # As a program with blocking writes would: what it wrote goes out before its FIN.
            await e.until(lambda: not e.writing(), WAIT, f'own writes done before {op}')
            e.shutdown() if op == 'shut' else e.close()
        elif op in ('close_unread', 'abort'):
            # Everything written is on the wire (not held back by Nagle) before the RST: so
            # a direct peer has it, and a proxy's kernel has acknowledged it.
            await e.until(lambda: not e.writing(), WAIT, 'own writes done before the reset')
            await poll(lambda: e.unsent() == 0, f'{e.name}: unsent bytes before the reset')
            if op == 'close_unread':
                await poll(lambda: e.pending() >= 1, f'{e.name}: unread bytes never arrived')
            e.close(abort=(op == 'abort'))
        elif op == 'await_recv' and p is not None:
            await e.until(lambda: (not p.writing() and e.received >= p.written) or e.end is not None,
                          WAIT, 'received all the peer wrote')
        elif op == 'await_end':
            await e.until(lambda: e.end is not None, WAIT, 'the end of the stream')

    async def settle(self):
        for e in self.ends.values():
            if not e.closed:
                e.resume()
        for x, e in self.ends.items():
            if e.closed:
                continue
            p = self.peer(x) if len(self.ends) == 2 else None
            if p is None or p.closed or p.shut:
                await e.until(lambda: e.end is not None, WAIT if p is not None else 10.0, 'the end (settle)')
            else:
                await e.until(lambda: (not p.writing() and e.received >= p.written) or e.end is not None,
                              WAIT, 'all the data (settle)')
        await asyncio.sleep(GRACE)

    async def play(self):
        """The observation: per end, what it received and how its stream ended."""
        try:
            if not await self.connect():
                return {'c': {'received': 0, 'corrupt': None, 'end': 'reset'}}
            for i, step in enumerate(self.conv['steps']):
                try:
                    await self.step(step)
                except Timeout as t:
                    raise Timeout(f'step {i} {step}: {t}') from None
            await self.settle()
            observation = {x: e.observation() for x, e in sorted(self.ends.items())}
            if self.header_problem:
                observation['proxy_header'] = self.header_problem
            return observation
        except (Timeout, asyncio.TimeoutError, OSError) as err:
            return {'harness': f'{type(err).__name__}: {err}'}
        finally:
            for e in self.ends.values():
                if not e.closed:
                    e.close(abort=True)

    def moved(self):
        return sum(e.received for e in self.ends.values())


class Harness:
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.seed = args.seed
        self.pattern = make_pattern(args.seed)
        self.direct_lock = asyncio.Lock()
        self.proxy_lock = asyncio.Lock()
        self.conversations = 0
        self.bytes = 0
        self.differences = []
        self.nondeterministic = []
        self.harness_errors = 0
        self.slowest = []
        self.same_bytes = 0  # conversations where every end received as many bytes as directly
        self.pipe_sizes = set()  # capacities of nsproxy's pipes seen during the run

    async def one(self, index):
        conv = generate(self.seed, index, self.args.max_bytes, self.args.scenario)
        a, b, proxied = Run(self, conv, index, 'direct'), Run(self, conv, index, 'direct'), Run(self, conv, index, 'proxy')
        started = time.monotonic()
        obs_a, obs_b, obs_p = await asyncio.gather(a.play(), b.play(), proxied.play())
        self.slowest = sorted(self.slowest + [(time.monotonic() - started, index)], reverse=True)[:5]
        self.conversations += 1
        self.bytes += proxied.moved()
        record = {'seed': self.seed, 'index': index, 'kind': conv['kind'], 'steps': conv['steps'],
                  'direct': obs_a, 'proxy': obs_p}
        if 'harness' in obs_a or 'harness' in obs_b:
            self.harness_errors += 1
            record['direct_again'] = obs_b
            self.nondeterministic.append(record)
            return
        if obs_a != obs_b:
            record['direct_again'] = obs_b
            self.nondeterministic.append(record)
        if all(obs_p.get(x, {}).get('received') == o.get('received') for x, o in obs_a.items()):
            self.same_bytes += 1
        if obs_p != obs_a and obs_p != obs_b:
            self.differences.append(record)
            if len(self.differences) <= self.args.show:
                print(f'DIFFERENCE {json.dumps(record)}', flush=True)

    async def run(self):
        started = time.monotonic()
        sem = asyncio.Semaphore(self.args.concurrency)
        tasks = set()
        index = self.args.first
        last_report = started

        def done(task):
            tasks.discard(task)
            sem.release()
            if task.exception():
                raise task.exception()

        while True:
            elapsed = time.monotonic() - started
            if self.args.count is not None and index >= self.args.first + self.args.count:
                break
            if self.args.count is None and elapsed >= self.args.seconds:
                break
            if not self.env.alive():
                raise RuntimeError('the proxy under test died')
            await sem.acquire()
            task = asyncio.ensure_future(self.one(index))
            task.add_done_callback(done)
            tasks.add(task)
            index += 1
            if self.args.peer == 'nsproxy' and index % 10 == 0:
                self.pipe_sizes |= self.env.pipe_capacities()
            if time.monotonic() - last_report >= 10:
                last_report = time.monotonic()
                print(f'# {self.conversations} conversations, {self.bytes / 2**30:.2f} GiB, '
                      f'{len(self.differences)} differences, {int(elapsed)} s', file=sys.stderr, flush=True)
        while tasks:
            await asyncio.gather(*list(tasks), return_exceptions=True)
        return time.monotonic() - started


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--seconds', type=float, default=60, help='run for this long (default 60)')
    ap.add_argument('--count', type=int, help='run exactly this many conversations instead')
    ap.add_argument('--first', type=int, default=0, help='index of the first conversation (replay one: --first I --count 1)')
    ap.add_argument('--seed', default=None, help='seed (default: random, printed)')
    ap.add_argument('--peer', default='nsproxy', choices=['nsproxy', 'socket-proxyd'])
    ap.add_argument('--user', help='run nsproxy as this ordinary user against a namespace it owns (the rootless helper path)')
    ap.add_argument('--small-pipes', action='store_true', help='with --user: fill the user\'s pipe quota first, so nsproxy gets 8 KiB pipes')
    ap.add_argument('--concurrency', type=int, default=100)
    ap.add_argument('--max-bytes', type=int, default=8 * 1024 * 1024, help='largest single write (default 8 MiB)')
    ap.add_argument('--show', type=int, default=20, help='print at most this many differences')
    ap.add_argument('--proxy-protocol', choices=['v1', 'v2'], help='nsproxy sends a PROXY header; the server checks it against the reference and strips it')
    ap.add_argument('--scenario', choices=sorted(NAMED), help='run only this fixed conversation')
    ap.add_argument('--main-js', default=None, help='the nsproxy to run (default: dist/main.js of this checkout)')
    ap.add_argument('nsproxy_args', nargs='*', help='extra nsproxy options, after --')
    args = ap.parse_args()
    if args.seed is None:
        args.seed = str(random.SystemRandom().randrange(1 << 32))
    if os.geteuid() != 0:
        print('fuzz.py: needs root (it makes network namespaces); run it with sudo', file=sys.stderr)
        return 2
    user = ensure_user(args.user) if args.user else None
    extra = {'main_js': args.main_js} if args.main_js else {}
    if args.small_pipes:
        if not user:
            print('fuzz.py: --small-pipes needs --user (root is exempt from the pipe quota)', file=sys.stderr)
            return 2
        extra['small_pipes'] = True
    if args.proxy_protocol:
        args.nsproxy_args = [*args.nsproxy_args, '--proxy-protocol', args.proxy_protocol]
    env = Environment(args.peer, user=user, nsproxy_args=args.nsproxy_args, log=lambda m: print(m, file=sys.stderr), **extra)
    print(f'# seed {args.seed}, peer {args.peer}{" as " + user if user else ""}, concurrency {args.concurrency}', file=sys.stderr)
    try:
        harness = Harness(args, env)
        seconds = asyncio.run(harness.run())
        health = env.stop_and_check()
    finally:
        env.close()
    summary = {'seed': args.seed, 'peer': args.peer, 'user': user, 'conversations': harness.conversations,
               'gib': round(harness.bytes / 2**30, 3), 'seconds': round(seconds, 1),
               'differences': len(harness.differences), 'same_bytes': harness.same_bytes, 'nondeterministic': len(harness.nondeterministic),
               'harness_errors': harness.harness_errors, 'health': health,
               'slowest': [[round(t, 2), i] for t, i in harness.slowest], 'pipe_sizes': sorted(harness.pipe_sizes)}
    for record in harness.nondeterministic[:5]:
        print(f'NONDETERMINISTIC {json.dumps(record)}', file=sys.stderr)
    print(json.dumps(summary), flush=True)
    if health.get('error'):
        return 2
    return 1 if harness.differences else 0


if __name__ == '__main__':
    sys.exit(main())
