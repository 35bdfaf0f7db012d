#!/usr/bin/env python3
"""stall.py — a receiver that stops reading, behind nsproxy: how much can the sender push?

    python3 test/fuzz/stall.py [--seconds 3] [-- NSPROXY-OPTIONS...]

A direct TCP connection (and splice) gives the sender backpressure: once the receiver's buffer,
the proxy's pipe and the sender's own buffer are full, send() says EAGAIN. A kernel redirect
(sockmap) has none: its psock queue grows as fast as the sender sends. nsproxy moves such a
connection to splice once the kernel holds --sockmap-backlog-cap for it. This measures what the
server managed to send into a client that reads nothing for --seconds, then lets the client read
it all and checks every byte. The last line of stdout is a JSON summary.
"""
import argparse
import asyncio
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peers import Environment  # noqa: E402
from wire import End, make_pattern  # noqa: E402


async def run(env, seconds):
    loop = asyncio.get_running_loop()
    pattern = make_pattern('stall')
    client = socket.socket()
    client.setblocking(False)
    await loop.sock_connect(client, ('127.0.0.1', env.proxy_port))
    server, _ = await loop.sock_accept(env.proxied)
    server.setblocking(False)
    c = End(loop, client, pattern, 0, 12345, 'client')   # never resumed: reads nothing yet
    s = End(loop, server, pattern, 12345, 0, 'server')
    s.write(1 << 40, 1 << 20)                             # more than it can ever send
    started = time.monotonic()
    samples = []
    while time.monotonic() - started < seconds:
        await asyncio.sleep(0.25)
        samples.append(s.written)
    pushed = s.written
    s.close()  # stops its writing (and closes: FIN); the client reads everything, then EOF
    c.resume()
    await c.until(lambda: c.end is not None, 120, 'everything, then EOF')
    return {'seconds': seconds, 'sent_while_stalled': pushed, 'still_growing': samples[-1] - samples[len(samples) // 2],
            'received': c.received, 'corrupt': c.corrupt, 'end': c.end}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seconds', type=float, default=3)
    ap.add_argument('nsproxy_args', nargs='*')
    args = ap.parse_args()
    env = Environment('nsproxy', nsproxy_args=args.nsproxy_args, log=lambda m: print(m, file=sys.stderr))
    try:
        result = asyncio.run(run(env, args.seconds))
        result['health'] = env.stop_and_check()
    finally:
        env.close()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
