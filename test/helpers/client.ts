// TCP clients speaking the fixture server's protocols (test/fixtures/server.js).
// They never assert themselves: they return what happened, the tests assert.
import * as net from 'node:net';
import * as crypto from 'node:crypto';
import { keystream } from './payload';

const CHUNK = 64 * 1024;

/** Binds port 0 on host, reads the port, closes. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address() as net.AddressInfo;
      srv.close(() => resolve(addr.port));
    });
  });
}

/** `[::1]`-style host for IPv6 literals in HOST:PORT strings. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** How a connection ended, as the clients below record it. */
export interface Ending {
  /** a FIN arrived (as opposed to a reset or a timeout) */
  eof: boolean;
  error: string | null;
  timedOut: boolean;
}

/**
 * Connects (half-open allowed) and records how the connection ends: the peer's FIN (answered
 * by `onEnd`, by default ending our side too), the first error code, or our own timeout, after
 * which the socket is destroyed. `settle` runs once, on close.
 */
export function trackedConnection(
  port: number,
  host: string,
  timeoutMs: number,
  settle: (ending: Ending) => void,
  onEnd: (sock: net.Socket) => void = (sock) => sock.end(),
): net.Socket {
  const ending: Ending = { eof: false, error: null, timedOut: false };
  const sock = net.connect({ host, port, allowHalfOpen: true });
  const timer = setTimeout(() => {
    ending.timedOut = true;
    sock.destroy();
  }, timeoutMs);
  sock.on('end', () => {
    ending.eof = true;
    onEnd(sock);
  });
  sock.on('error', (e: NodeJS.ErrnoException) => {
    ending.error ??= e.code ?? e.message;
  });
  sock.on('close', () => {
    clearTimeout(timer);
    settle(ending);
  });
  return sock;
}

export interface HashResult {
  seed: string;
  /** bytes the server was asked to send, and what arrived */
  downRequested: number;
  downBytes: number;
  downExpectedSha: string;
  downSha: string;
  /** first offset where the download differs from keystream(seed), or -1 */
  downFirstMismatch: number;
  /** what we uploaded (keystream('up:' + seed)) */
  upBytes: number;
  upSha: string;
  /** what the server says it received: `<sha256hex> <count>` */
  serverSha: string | null;
  serverCount: number | null;
  trailer: string;
  /** true when the stream ended with a FIN (not a reset, not a timeout) */
  eof: boolean;
  error: string | null;
}

export interface HashOpts {
  /** upload size (default: same as nbytes) */
  upBytes?: number;
  /** sent before the header, e.g. 'hash\n' for a `multi` server */
  preamble?: string;
  /** connect to this Unix socket instead of host:port */
  path?: string;
  timeoutMs?: number;
}

/**
 * The `hash` protocol: send `<seed> <nbytes>\n`, then upBytes of keystream('up:' + seed),
 * then shutdown(SHUT_WR); meanwhile read nbytes of keystream(seed) and the server's
 * `<sha256 of what it got> <count>\n` trailer, then EOF. Both directions are checked
 * by SHA-256 (and the download byte by byte against the regenerated keystream).
 */
export function hashRoundTrip(port: number, host: string, nbytes: number, seed: string, opts: HashOpts = {}): Promise<HashResult> {
  const upTotal = opts.upBytes ?? nbytes;
  const timeoutMs = opts.timeoutMs ?? 120000;
  return new Promise((resolve) => {
    const expected = keystream(seed);
    const expectedHash = crypto.createHash('sha256');
    const downHash = crypto.createHash('sha256');
    const upHash = crypto.createHash('sha256');
    const upGen = keystream(`up:${seed}`);
    let downBytes = 0;
    let firstMismatch = -1;
    let trailer = Buffer.alloc(0);
    let upSent = 0;
    let error: string | null = null;
    let eof = false;
    let settled = false;

    const sock = opts.path ? net.connect({ path: opts.path, allowHalfOpen: true }) : net.connect({ host, port, allowHalfOpen: true });
    const timer = setTimeout(() => {
      error = `timeout after ${timeoutMs} ms (down ${downBytes}/${nbytes}, up ${upSent}/${upTotal})`;
      sock.destroy();
    }, timeoutMs);

    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const text = trailer.toString('utf8');
      const m = /^([0-9a-f]{64}) (\d+)\n$/.exec(text);
      resolve({
        seed,
        downRequested: nbytes,
        downBytes,
        downExpectedSha: expectedHash.digest('hex'),
        downSha: downHash.digest('hex'),
        downFirstMismatch: firstMismatch,
        upBytes: upSent,
        upSha: upHash.digest('hex'),
        serverSha: m ? m[1] : null,
        serverCount: m ? Number(m[2]) : null,
        trailer: text,
        eof,
        error,
      });
    };

    const pump = (): void => {
      while (upSent < upTotal) {
        if (sock.destroyed) return;
        const n = Math.min(CHUNK, upTotal - upSent);
        const b = upGen(n);
        upHash.update(b);
        upSent += n;
        if (!sock.write(b)) {
          sock.once('drain', pump);
          return;
        }
      }
      sock.end();
    };

    sock.on('connect', () => {
      sock.write(`${opts.preamble ?? ''}${seed} ${nbytes}\n`);
      pump();
    });
    sock.on('data', (d: Buffer) => {
      const want = nbytes - downBytes;
      const body = want > 0 ? d.subarray(0, Math.min(want, d.length)) : Buffer.alloc(0);
      if (body.length > 0) {
        const exp = expected(body.length);
        expectedHash.update(exp);
        downHash.update(body);
        if (firstMismatch < 0 && !exp.equals(body)) {
          for (let i = 0; i < body.length; i++) {
            if (exp[i] !== body[i]) {
              firstMismatch = downBytes + i;
              break;
            }
          }
        }
        downBytes += body.length;
      }
      const rest = d.subarray(body.length);
      if (rest.length > 0 && trailer.length < 4096) trailer = Buffer.concat([trailer, rest]);
    });
    sock.on('end', () => {
      eof = true;
      // our side may still be writing (server answered early): let it finish
      if (upSent >= upTotal) sock.end();
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      error = error ?? `${e.code ?? ''} ${e.message}`.trim();
    });
    sock.on('close', finish);
  });
}

export interface StreamResult extends Ending {
  data: Buffer;
}

/**
 * Connect, send `send` (may be empty), and read until the peer's EOF WITHOUT
 * half-closing our side first; after the EOF, end our side too. Never rejects.
 */
export function readUntilEof(port: number, host: string, send: string | Buffer, timeoutMs = 30000): Promise<StreamResult> {
  return converse(port, host, send, false, timeoutMs);
}

/**
 * Half-close request: send payload, shutdown(SHUT_WR), read the whole answer until EOF.
 * Never rejects: socket-proxyd comparisons need to record whatever happens.
 */
export function halfCloseRequest(
  port: number,
  payload: string | Buffer,
  opts: { host?: string; preamble?: string; timeoutMs?: number } = {},
): Promise<StreamResult> {
  const pre = Buffer.from(opts.preamble ?? '');
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return converse(port, opts.host ?? '127.0.0.1', Buffer.concat([pre, body]), true, opts.timeoutMs ?? 30000);
}

function converse(port: number, host: string, send: string | Buffer, halfClose: boolean, timeoutMs: number): Promise<StreamResult> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    const sock = trackedConnection(port, host, timeoutMs, (ending) => resolve({ data: Buffer.concat(parts), ...ending }));
    sock.on('connect', () => {
      if (halfClose) sock.end(send);
      else if (send.length > 0) sock.write(send);
    });
    sock.on('data', (d: Buffer) => parts.push(d));
  });
}

export interface PingPongResult {
  /** replies in order, one per message */
  replies: string[];
  final: StreamResult;
}

export interface PingPongOpts {
  /** wait this long before each message after the first (a connection that stays open a while) */
  gapMs?: number;
  /** after the last echo, do not half-close: wait for the other side to end the connection */
  holdOpen?: boolean;
}

/**
 * Interactive echo: send each message and wait for exactly its echo before the
 * next (proves forwarding without any half-close), then half-close and read to EOF.
 */
export function echoPingPong(port: number, host: string, messages: string[], preamble = '', timeoutMs = 30000, opts: PingPongOpts = {}): Promise<PingPongResult> {
  return new Promise((resolve) => {
    const replies: string[] = [];
    let buf = Buffer.alloc(0);
    let i = 0;
    const tail: Buffer[] = [];
    const sock = trackedConnection(port, host, timeoutMs, (ending) => resolve({ replies, final: { data: Buffer.concat(tail), ...ending } }));
    const sendNext = (): void => {
      if (i < messages.length) {
        const message = messages[i];
        if (i > 0 && opts.gapMs) setTimeout(() => sock.write(message), opts.gapMs);
        else sock.write(message);
      } else if (!opts.holdOpen) {
        sock.end();
      }
    };
    sock.on('connect', () => {
      if (preamble) sock.write(preamble);
      sendNext();
    });
    sock.on('data', (d: Buffer) => {
      if (i >= messages.length) {
        tail.push(d);
        return;
      }
      buf = Buffer.concat([buf, d]);
      while (i < messages.length && buf.length >= Buffer.byteLength(messages[i])) {
        const n = Buffer.byteLength(messages[i]);
        replies.push(buf.subarray(0, n).toString('utf8'));
        buf = buf.subarray(n);
        i++;
        sendNext();
      }
      if (i >= messages.length && buf.length > 0) tail.push(buf);
    });
  });
}

export interface ResetResult {
  /** bytes handed to the kernel before the reset */
  sent: number;
  /** bytes the socket reported as written */
  bytesWritten: number;
}

/**
 * Starts a large upload (`send` first), and after `resetAfter` bytes have been
 * written (and drained to the kernel) aborts with RST (socket.resetAndDestroy()).
 */
export function resetMidUpload(port: number, host: string, send: string, resetAfter: number, timeoutMs = 30000): Promise<ResetResult> {
  return new Promise((resolve, reject) => {
    const gen = keystream(`reset:${port}`);
    let sent = 0;
    const sock = net.connect({ host, port, allowHalfOpen: true });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`resetMidUpload: timeout after ${timeoutMs} ms, sent ${sent}`));
    }, timeoutMs);
    sock.on('error', () => {
      /* the reset we cause may surface here */
    });
    const pump = (): void => {
      while (sent < resetAfter) {
        const b = gen(CHUNK);
        sent += b.length;
        if (!sock.write(b)) {
          sock.once('drain', pump);
          return;
        }
      }
      // everything is in the kernel now; more is "in flight" from the server's view
      const bytesWritten = sock.bytesWritten;
      sock.write(gen(CHUNK));
      sock.resetAndDestroy();
      sock.once('close', () => {
        clearTimeout(timer);
        resolve({ sent, bytesWritten });
      });
    };
    sock.on('connect', () => {
      sock.write(send);
      pump();
    });
  });
}

export interface UploadResult extends Ending {
  /** bytes handed to the socket before it closed */
  sent: number;
}

/**
 * Uploads up to maxBytes (after `send`) without reading any answer, until the
 * connection is closed under us (reset or EOF) or everything is sent.
 */
export function uploadUntilClosed(port: number, host: string, send: string, maxBytes: number, timeoutMs = 60000): Promise<UploadResult> {
  return new Promise((resolve) => {
    const gen = keystream(`upload:${port}`);
    let sent = 0;
    const sock = trackedConnection(port, host, timeoutMs, (ending) => resolve({ sent, ...ending }), (s) => s.destroy());
    const pump = (): void => {
      while (sent < maxBytes) {
        if (sock.destroyed) return;
        const b = gen(CHUNK);
        sent += b.length;
        if (!sock.write(b)) {
          sock.once('drain', pump);
          return;
        }
      }
      sock.end();
    };
    sock.on('connect', () => {
      sock.write(send);
      pump();
    });
    sock.on('data', () => undefined);
  });
}

/**
 * Sends `send` (e.g. a hash request for a large download), reads until at least
 * `resetAfter` bytes have arrived, then aborts with RST. Resolves with the bytes read.
 */
export function resetMidDownload(port: number, host: string, send: string, resetAfter: number, timeoutMs = 30000): Promise<number> {
  return new Promise((resolve, reject) => {
    let got = 0;
    let done = false;
    const sock = net.connect({ host, port, allowHalfOpen: true });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`resetMidDownload: timeout after ${timeoutMs} ms, got ${got}`));
    }, timeoutMs);
    sock.on('error', () => {
      /* the reset we cause may surface here */
    });
    sock.on('connect', () => sock.write(send));
    sock.on('data', (d: Buffer) => {
      got += d.length;
      if (!done && got >= resetAfter) {
        done = true;
        sock.resetAndDestroy();
      }
    });
    sock.on('close', () => {
      clearTimeout(timer);
      if (done) resolve(got);
      else reject(new Error(`resetMidDownload: closed by the peer after ${got} bytes, before the reset`));
    });
  });
}
