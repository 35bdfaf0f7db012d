"""scenarios.py — seeded TCP conversations whose outcome over a direct connection is deterministic.

A conversation is a list of steps, each done by the client ('c') or the server ('s'):

    ('write', X, n, chunk, wait)  X sends n bytes of its stream, `chunk` bytes per send(); then
                                  wait: 'none', 'sent' (all taken by the kernel) or 'recv' (the
                                  peer has received all X wrote so far)
    ('stall', X) / ('resume', X)  X stops / starts reading (backpressure builds up behind it)
    ('head', X, n)                X (stalled) reads exactly n bytes: a server that reads a header
    ('shut', X)                   shutdown(SHUT_WR): half-close
    ('close', X)                  close() with nothing unread: FIN
    ('close_unread', X)           close() with unread bytes waiting (X stalled): the kernel sends RST
    ('abort', X)                  SO_LINGER 0, close(): RST whatever is queued
    ('await_recv', X)             until X has received all its peer wrote so far (X reading)
    ('await_end', X)              until X sees EOF or a reset (X reading, its peer finished)
    ('sleep', ms)

Kind 'refused' conversations connect to a port where nothing listens.

The generator only emits sequences whose direct outcome does not depend on timing: a side that
resets has at most RESET_INFLIGHT bytes not yet confirmed at its peer (so they are all on the
wire, not dropped by the RST); a side whose peer closed or reset waits to see that end before
it writes again; 'close' comes only after everything sent to that side was received. The
harness checks this claim too: it runs every conversation directly twice and reports any
conversation whose two direct runs differ as non-deterministic, separately from differences.
"""
import random

KiB = 1024
MiB = 1024 * 1024
RESET_INFLIGHT = 16 * KiB


class Side:
    def __init__(self):
        self.written = 0       # bytes this side has queued so far
        self.confirmed = 0     # bytes of the peer's stream this side is known to have received
        self.stalled = False
        self.shut = False
        self.closed = False
        self.peer_done = None  # None, 'fin' (peer shut or closed) or 'rst' (peer reset)
        self.saw_end = False   # this side is known to have seen the end its peer caused
        self.big_write = False # a write with wait 'none' may still be in flight


def other(x):
    return 's' if x == 'c' else 'c'


class Generator:
    def __init__(self, rng, max_bytes):
        self.rng = rng
        self.max_bytes = max_bytes
        self.sides = {'c': Side(), 's': Side()}
        self.steps = []

    # ---- sizes -------------------------------------------------------------------------

    def size(self):
        r = self.rng.random()
        if r < 0.45:
            n = self.rng.randint(1, 1000)
        elif r < 0.75:
            n = self.rng.randint(1001, 64 * KiB)
        elif r < 0.92:
            n = self.rng.randint(64 * KiB, 1 * MiB)
        else:
            n = self.rng.randint(1 * MiB, self.max_bytes)
        return max(1, min(n, self.max_bytes))

    def chunk(self, n):
        if n <= 4 * KiB and self.rng.random() < 0.3:
            return 1  # 1-byte writes
        return self.rng.choice([n, 1 * KiB, 16 * KiB, 64 * KiB, 1 * MiB])

    # ---- bookkeeping -------------------------------------------------------------------

    def emit(self, *step):
        self.steps.append(step)

    def can_read(self, x):
        s = self.sides[x]
        return not s.closed and not s.stalled and not (s.peer_done and s.saw_end)

    def await_recv(self, x):
        s, p = self.sides[x], self.sides[other(x)]
        self.emit('await_recv', x)
        s.confirmed = p.written
        p.big_write = False

    def settle_reader(self, x):
        """x is reading: confirm what it got, and the end its peer caused."""
        s = self.sides[x]
        if s.peer_done and not s.saw_end:
            self.emit('await_end', x)
            s.saw_end = True
            s.confirmed = self.sides[other(x)].written
            self.sides[other(x)].big_write = False
        elif s.confirmed < self.sides[other(x)].written:
            self.await_recv(x)

    def writable(self, x):
        s = self.sides[x]
        if s.closed or s.shut:
            return False
        # Peer gone: write only once we have seen it go (else a reset races our write).
        return s.peer_done is None or s.saw_end

    def reset_allowed(self, x):
        """x may send an RST now without dropping bytes that a direct peer would have got."""
        s, p = self.sides[x], self.sides[other(x)]
        if p.closed:
            return True
        inflight = s.written - p.confirmed
        return inflight <= RESET_INFLIGHT and not s.big_write

    # ---- actions -------------------------------------------------------------------------

    def act_write(self, x):
        s, p = self.sides[x], self.sides[other(x)]
        n = self.size()
        if p.closed:
            # The peer is gone; a direct write fails or vanishes: keep it small.
            n = min(n, 1000)
        waits = ['none', 'sent', 'recv']
        if p.stalled or p.closed:
            waits = ['none']
        wait = self.rng.choice(waits) if n <= 64 * KiB else self.rng.choice([w for w in waits if w != 'sent'])
        self.emit('write', x, n, self.chunk(n), wait)
        s.written += n
        if wait == 'recv':
            p.confirmed = s.written
        else:
            s.big_write = s.big_write or n > RESET_INFLIGHT
        if p.closed:
            s.big_write = False

    def act_stall(self, x):
        # Everything sent so far is read first, so what x has read while stalled is exact.
        self.settle_reader(x)
        self.emit('stall', x)
        self.sides[x].stalled = True

    def act_resume(self, x):
        self.emit('resume', x)
        self.sides[x].stalled = False

    def act_head(self, x):
        s, p = self.sides[x], self.sides[other(x)]
        unread = p.written - s.confirmed
        n = self.rng.randint(1, min(unread, 64 * KiB))
        self.emit('head', x, n)
        s.confirmed += n

    def act_shut(self, x):
        self.emit('shut', x)
        self.sides[x].shut = True
        p = self.sides[other(x)]
        p.peer_done = p.peer_done or 'fin'

    def act_close(self, x):
        s = self.sides[x]
        if s.stalled:
            self.act_resume(x)
        self.settle_reader(x)
        self.emit('close', x)
        s.closed = True
        p = self.sides[other(x)]
        p.peer_done = p.peer_done or 'fin'

    def act_reset(self, x, how):
        s = self.sides[x]
        if not s.stalled:
            self.settle_reader(x)  # what x has read when it goes is then exact
        self.emit(how, x)
        s.closed = True
        p = self.sides[other(x)]
        if p.peer_done != 'fin' or not p.saw_end:
            p.peer_done = 'rst'
            p.saw_end = False

    # ---- the walk --------------------------------------------------------------------------

    def choices(self):
        out = []
        for x in ('c', 's'):
            s, p = self.sides[x], self.sides[other(x)]
            if s.closed:
                continue
            if self.writable(x):
                out.append((6, self.act_write, x))
            if self.can_read(x) and s.peer_done is None:
                out.append((1, self.act_stall, x))
            if s.stalled:
                out.append((3, self.act_resume, x))
            if s.stalled and p.written > s.confirmed and s.peer_done != 'rst':
                out.append((1, self.act_head, x))
            if self.can_read(x) and (p.written > s.confirmed or (s.peer_done and not s.saw_end)):
                out.append((4, lambda x=x: self.settle_reader(x), x))
            # A FIN goes after our own writes; those must not wait on a peer that stopped reading.
            blocked = p.stalled and s.written - p.confirmed > RESET_INFLIGHT
            if not s.shut and not blocked:
                out.append((1, self.act_shut, x))
            if not blocked:
                out.append((1, self.act_close, x))
            if self.reset_allowed(x):
                out.append((1, lambda x=x: self.act_reset(x, 'abort'), x))
                if s.stalled and p.written > s.confirmed and s.peer_done is None:
                    out.append((2, lambda x=x: self.act_reset(x, 'close_unread'), x))
        if self.rng.random() < 0.15:
            out.append((1, lambda: self.emit('sleep', self.rng.randint(0, 20)), None))
        return out

    def walk(self, max_steps):
        for _ in range(max_steps):
            options = self.choices()
            if not options:
                break
            weights = [w for w, _, _ in options]
            _, action, x = self.rng.choices(options, weights)[0]
            if x is None:
                action()
            else:
                action(x)
        return self.steps


def early_reply_then_reset(rng, head=None, body=None, reply=None):
    """The HTTP 413 shape: the server reads a head, answers, and closes with the body unread."""
    head = head or rng.randint(1, 16)
    body = body or rng.randint(1, 8 * KiB)
    reply = reply or rng.randint(1, 8 * KiB)
    return [('stall', 's'), ('write', 'c', head + body, head + body, 'sent'), ('head', 's', head),
            ('write', 's', reply, reply, 'none'), ('close_unread', 's')]


# Fixed conversations, by name (fuzz.py --scenario NAME).
NAMED = {
    # The measurement that opened the faithfulness issue: a 1003-byte request, 3 bytes read, an
    # 800-byte reply, close() with the rest unread: RST right behind the reply.
    'rst-after-reply': lambda rng: early_reply_then_reset(rng, head=3, body=1000, reply=800),
    # Many small segments, then an abort: every byte that reached the proxy must reach the server.
    'tiny-then-abort': lambda rng: [('write', 'c', rng.randint(100, 1000), 1, 'sent'), ('abort', 'c'), ('await_end', 's'), ('abort', 's')],
}


def generate(seed, index, max_bytes, scenario=None):
    """Conversation number `index` of run `seed`: the same pair always gives the same steps."""
    rng = random.Random(f'{seed}/{index}')
    if scenario is not None:
        return {'kind': 'tcp', 'steps': NAMED[scenario](rng)}
    r = rng.random()
    if r < 0.03:
        return {'kind': 'refused', 'steps': [('write', 'c', rng.randint(0, 100), 100, 'none')]}
    if r < 0.13:
        return {'kind': 'tcp', 'steps': early_reply_then_reset(rng)}
    return {'kind': 'tcp', 'steps': Generator(rng, max_bytes).walk(rng.randint(2, 24))}
