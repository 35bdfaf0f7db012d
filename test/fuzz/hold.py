#!/usr/bin/env python3
"""hold.py — many connections open at once through nsproxy, with traffic, all checked.

    python3 test/fuzz/hold.py --connections 9000 [--bytes 16384] [-- NSPROXY-OPTIONS...]

Both ends live in this one process (the server's sockets inside the target namespace, as in
fuzz.py), so its fd limit bounds the count: it raises its soft RLIMIT_NOFILE to the hard one,
and the hard one too when it is below what the count needs and it may (nsproxy inherits both);
when it may not, it says so at once and exits 2.
Phases: every client connects and says who it is (an 8-byte index); then, with all of them
open, every pair sends --bytes each way at once, each byte checked against its sender's
pattern; then a census of what is still open (every connection must be), of nsproxy's sockets,
and a clean close of each pair (client FIN, then server FIN), where both ends must see EOF.
The last line of stdout is a JSON summary. Exit 0 when every connection was intact.
"""
import argparse
import asyncio
import json
import os
import resource
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peers import Environment  # noqa: E402
from wire import PATTERN_SIZE, End, make_pattern  # noqa: E402

WAIT = 120.0


async def open_all(env, n, loop):
    """n clients through the proxy; the server ends found by the index each client sends first."""
    servers = {}
    arrived = asyncio.Event()

    async def identify(sock):
        sock.setblocking(False)
        head = b''
        while len(head) < 8:
            chunk = await loop.sock_recv(sock, 8 - len(head))
            if not chunk:
                raise RuntimeError('a client closed before saying who it is')
            head += chunk
        servers[struct.unpack('Q', head)[0]] = sock
        if len(servers) == n:
            arrived.set()

    async def acceptor():
        # Counted here, not as len(servers) + len(pending): a finished identify() is in both
        # until its done-callback runs, and that sum once stopped the loop one accept short.
        pending = set()
        for _ in range(n):
            sock, _ = await loop.sock_accept(env.proxied)
            task = asyncio.ensure_future(identify(sock))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)

    accepting = asyncio.ensure_future(acceptor())
    clients = []
    sem = asyncio.Semaphore(256)  # connects in flight at once

    async def connect(i):
        async with sem:
            s = socket.socket()
            s.setblocking(False)
            await loop.sock_connect(s, ('127.0.0.1', env.proxy_port))
            await loop.sock_sendall(s, struct.pack('Q', i))
            clients.append((i, s))

    await asyncio.wait_for(asyncio.gather(*(connect(i) for i in range(n))), WAIT)
    # The acceptor failing (EMFILE, say) ends the wait at once, with its error, not after WAIT.
    waiting = asyncio.ensure_future(arrived.wait())
    done, _ = await asyncio.wait({accepting, waiting}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    if accepting in done and accepting.exception() is not None:
        waiting.cancel()
        raise RuntimeError(f'accepting the server ends failed: {accepting.exception()!r}')
    if not done:
        raise RuntimeError(f'only {len(servers)} of {n} server ends arrived within {WAIT:.0f} s')
    await asyncio.wait_for(waiting, WAIT)
    await accepting
    return sorted(clients), servers


async def run(args, env):
    loop = asyncio.get_running_loop()
    pattern = make_pattern('hold')
    t0 = time.monotonic()
    clients, servers = await open_all(env, args.connections, loop)
    opened = time.monotonic() - t0
    pairs = []
    for i, c in clients:
        a, b = (i * 7919) % PATTERN_SIZE, (i * 104729 + 12345) % PATTERN_SIZE
        pairs.append((End(loop, c, pattern, a, b, f'client {i}'), End(loop, servers[i], pattern, b, a, f'server {i}')))
    for c, s in pairs:
        c.resume()
        s.resume()
        c.write(args.bytes, 64 * 1024)
        s.write(args.bytes, 64 * 1024)

    async def both_received(c, s):
        await c.until(lambda: c.received >= args.bytes or c.end is not None, WAIT, 'data')
        await s.until(lambda: s.received >= args.bytes or s.end is not None, WAIT, 'data')

    print(f'# opened {args.connections} in {opened:.1f} s', file=sys.stderr, flush=True)
    await asyncio.gather(*(both_received(c, s) for c, s in pairs), return_exceptions=True)
    print(f'# traffic done at {time.monotonic() - t0:.1f} s', file=sys.stderr, flush=True)
    intact = sum(1 for c, s in pairs for e in (c, s) if e.received == args.bytes and e.corrupt is None and e.end is None)
    still_open = sum(1 for c, s in pairs if c.end is None and s.end is None)
    proxy_sockets = sum(env_socket_count(pid) for pid in env.proxy_pids())

    # A clean close of every pair: the client's FIN, then the server's; both must see EOF.
    async def close(c, s):
        c.shutdown()
        await s.until(lambda: s.end is not None, WAIT, 'client FIN')
        s.shutdown()
        await c.until(lambda: c.end is not None, WAIT, 'server FIN')

    await asyncio.gather(*(close(c, s) for c, s in pairs), return_exceptions=True)
    clean = sum(1 for c, s in pairs if c.end == 'eof' and s.end == 'eof')
    print(f'# closed at {time.monotonic() - t0:.1f} s', file=sys.stderr, flush=True)
    for c, s in pairs:
        c.close()
        s.close()
    return {'connections': args.connections, 'bytes_each_way': args.bytes, 'open_seconds': round(opened, 2),
            'intact_ends': intact, 'open_after_traffic': still_open, 'proxy_sockets': proxy_sockets,
            'clean_closes': clean}


def env_socket_count(pid):
    n = 0
    for fd in os.listdir(f'/proc/{pid}/fd'):
        try:
            n += os.readlink(f'/proc/{pid}/fd/{fd}').startswith('socket:')
        except OSError:
            pass
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--connections', type=int, default=9000)
    ap.add_argument('--bytes', type=int, default=16384, help='bytes each way per connection')
    ap.add_argument('nsproxy_args', nargs='*')
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * args.connections + 1000  # both ends here; nsproxy needs as many
    if hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))  # root with CAP_SYS_RESOURCE
            print(f'# raised the hard RLIMIT_NOFILE from {hard} to {need}', file=sys.stderr)
            hard = need
        except (ValueError, OSError) as e:
            print(f'hold.py: the hard RLIMIT_NOFILE is {hard}, below the {need} that {args.connections} '
                  f'connections need, and it cannot be raised ({e}); run with fewer --connections', file=sys.stderr)
            return 2
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    extra = ['--connections-max', str(args.connections + 100), '--backlog', '4096', *args.nsproxy_args]
    env = Environment('nsproxy', nsproxy_args=extra, log=lambda m: print(m, file=sys.stderr))
    try:
        result = asyncio.run(run(args, env))
        result['health'] = env.stop_and_check()
    finally:
        env.close()
    print(json.dumps(result), flush=True)
    ok = (result['intact_ends'] == 2 * args.connections and result['clean_closes'] == args.connections
          and not result['health'].get('error'))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
