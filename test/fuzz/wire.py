"""wire.py — one end of a TCP conversation, driven by the fuzzer, observed byte for byte.

An End owns a non-blocking socket and runs on the asyncio loop through add_reader/add_writer
callbacks, never through awaitable recv(): a read is either done (and accounted) or not started,
so stalling a reader never loses bytes. Every byte received is checked against the sender's
pattern stream at that offset, so the observation of an end is small and exact:

    received   how many bytes arrived, in order
    corrupt    offset of the first byte that is not the sender's byte at that offset (or None)
    end        how the incoming stream ended: 'eof', 'reset', another errno name, or 'open'

What a side wrote is not part of the observation: when a write fails depends on when a reset
arrives, which a proxy legitimately delays. What the *other* side received is compared instead.
"""
import asyncio
import collections
import errno
import fcntl
import socket
import struct
import termios

PATTERN_SIZE = 1 << 20
SIOCOUTQNSD = 0x894B
TCP_CLOSE = 7  # tcpi_state


def make_pattern(seed):
    """A pseudo-random block, doubled so that any window of up to PATTERN_SIZE bytes is one slice."""
    import random
    block = random.Random(seed).randbytes(PATTERN_SIZE)
    return block + block


class Timeout(Exception):
    pass


def errno_name(err):
    return errno.errorcode.get(err, f'E{err}')


class End:
    """One socket of a conversation. `out_start` and `in_start` are offsets into the pattern: where
    this side's outgoing stream starts, and where the peer's (what we receive) starts."""

    READ_CHUNK = 256 * 1024

    def __init__(self, loop, sock, pattern, out_start, in_start, name):
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.pattern = memoryview(pattern)
        self.out_start = out_start
        self.in_start = in_start
        self.name = name
        self.received = 0
        self.corrupt = None
        self.end = None          # 'eof', 'reset', 'EPIPE', ...; None while open
        self.written = 0         # accepted by the kernel
        self.werr = None         # first write error (informational only)
        self.reading = False
        self.closed = False      # we closed it (close/abort)
        self.shut = False        # we shut down our sending side
        self._out = collections.deque()  # [bytes left, bytes per send() call], one per write()
        self._writer = False
        self._buf = bytearray(self.READ_CHUNK)
        self._view = memoryview(self._buf)
        self._waiters = []       # (predicate, future)

    # ---- reading -------------------------------------------------------------------------

    def resume(self):
        """Read whatever arrives, as it arrives."""
        if self.reading or self.closed or self.end is not None:
            return
        self.reading = True
        self.loop.add_reader(self.fd, self._on_readable)

    def stall(self):
        """Stop reading: what arrives waits in the kernel (the peer's writes back up)."""
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False

    def _account(self, n):
        pos = (self.in_start + self.received) % PATTERN_SIZE
        if self.corrupt is None and self._view[:n] != self.pattern[pos:pos + n]:
            got = bytes(self._view[:n])
            want = bytes(self.pattern[pos:pos + n])
            self.corrupt = self.received + next(i for i in range(n) if got[i] != want[i])
        self.received += n

    def _recv_once(self, limit):
        """One recv(); True if the stream may have more now."""
        try:
            n = self.sock.recv_into(self._view[:limit])
        except BlockingIOError:
            return False
        except InterruptedError:
            return True
        except ConnectionResetError:
            self._ended('reset')
            return False
        except OSError as e:
            self._ended(errno_name(e.errno))
            return False
        if n == 0:
            self._ended('eof')
            return False
        self._account(n)
        return True

    def _on_readable(self):
        # A bounded number of reads per wake-up, so that one busy end does not starve the others.
        for _ in range(16):
            if not self._recv_once(self.READ_CHUNK):
                break
        self._check()

    def _ended(self, how):
        if how == 'eof' and self.werr == 'ECONNRESET':
            how = 'reset'  # a send() reported the reset first (and consumed it): still a reset
        self.end = how
        self.stall()
        self._check()

    async def read_exactly(self, n, timeout):
        """While stalled: take exactly n bytes (the server that reads only a request's head)."""
        deadline = self.loop.time() + timeout
        want = self.received + n
        while self.received < want and self.end is None:
            if not self._recv_once(want - self.received):
                if self.end is not None:
                    break
                if self.loop.time() > deadline:
                    raise Timeout(f'{self.name}: read_exactly({n})')
                await asyncio.sleep(0.001)
        self._check()

    def pending(self):
        """Bytes waiting unread in the kernel (FIONREAD)."""
        return struct.unpack('i', fcntl.ioctl(self.fd, termios.FIONREAD, b'\0\0\0\0'))[0]

    def unsent(self):
        """Bytes written but not yet put on the wire (SIOCOUTQNSD): Nagle, a closed window.
        0 once the connection is gone (a reset purged the queue; the counter would be stale)."""
        if self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == TCP_CLOSE:
            return 0
        return struct.unpack('i', fcntl.ioctl(self.fd, SIOCOUTQNSD, b'\0\0\0\0'))[0]

    # ---- writing -------------------------------------------------------------------------

    def write(self, n, chunk):
        """Queue n more bytes of our stream, sent `chunk` bytes per send() call."""
        if self.werr is not None or self.closed or self.shut or n == 0:
            return
        self._out.append([n, chunk])
        self._on_writable()

    def _on_writable(self):
        for _ in range(4096):  # bounded: 1-byte writes must not hold the loop
            if not self._out:
                break
            left, chunk = self._out[0]
            size = min(left, chunk, PATTERN_SIZE)
            pos = (self.out_start + self.written) % PATTERN_SIZE
            try:
                sent = self.sock.send(self.pattern[pos:pos + size])
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as e:
                self.werr = errno_name(e.errno)
                self._out.clear()
                break
            self.written += sent
            if sent == left:
                self._out.popleft()
            else:
                self._out[0][0] -= sent
        want = bool(self._out)
        if want and not self._writer:
            self.loop.add_writer(self.fd, self._on_writable)
        elif not want and self._writer:
            self.loop.remove_writer(self.fd)
        self._writer = want
        self._check()

    def writing(self):
        return bool(self._out)

    # ---- ending --------------------------------------------------------------------------

    def shutdown(self):
        self.shut = True
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.werr = self.werr or errno_name(e.errno)

    def close(self, abort=False):
        """close(); with `abort`, SO_LINGER 0 first: an RST whatever is queued."""
        if self.closed:
            return
        self.stall()
        if self._writer:
            self.loop.remove_writer(self.fd)
            self._writer = False
        self._out.clear()
        if abort:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        self.closed = True
        self.sock.close()
        self._check()

    def soerr(self):
        if self.closed:
            return None
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        return errno_name(err) if err else None

    # ---- waiting -------------------------------------------------------------------------

    def _check(self):
        if not self._waiters:
            return
        still = []
        for predicate, fut in self._waiters:
            if fut.done():
                continue
            if predicate():
                fut.set_result(None)
            else:
                still.append((predicate, fut))
        self._waiters = still

    async def until(self, predicate, timeout, what):
        if predicate():
            return
        fut = self.loop.create_future()
        self._waiters.append((predicate, fut))
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise Timeout(f'{self.name}: {what}') from None

    def observation(self):
        return {'received': self.received, 'corrupt': self.corrupt,
                'end': self.end or ('closed' if self.closed else 'open')}
