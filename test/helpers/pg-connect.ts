// A PostgreSQL session start over the wire, without a client library: StartupMessage (protocol
// 3.0, trust authentication), then read until ReadyForQuery ('Z': the server serves) or an
// ErrorResponse ('E': its message, e.g. "the database system is starting up"), then Terminate.
// Fast enough to run many attempts a second from several loops while a container restarts,
// which is how the readiness-after-restart tests count "starting up" errors.
import * as net from 'node:net';

export interface SessionResult {
  ok: boolean;
  /** the server's error message, or the socket error's code, or 'closed' / 'timeout' */
  error?: string;
  /** when the attempt started and ended (Date.now()) */
  startedAt: number;
  endedAt: number;
}

function startupMessage(user: string, database: string): Buffer {
  const body = Buffer.concat([
    Buffer.from([0, 3, 0, 0]), // protocol 3.0
    Buffer.from(`user\0${user}\0database\0${database}\0\0`, 'utf8'),
  ]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length + 4);
  return Buffer.concat([length, body]);
}

/** The 'M' (message) field of an ErrorResponse body. */
function errorMessage(body: Buffer): string {
  let at = 0;
  while (at < body.length && body[at] !== 0) {
    const type = String.fromCharCode(body[at] as number);
    const end = body.indexOf(0, at + 1);
    const value = body.toString('utf8', at + 1, end);
    if (type === 'M') return value;
    at = end + 1;
  }
  return 'error without a message';
}

/** One session start to host:port (trust auth as `postgres`); resolves, never rejects. */
export function pgSession(host: string, port: number, timeoutMs = 30000): Promise<SessionResult> {
  const startedAt = Date.now();
  return new Promise((resolve) => {
    let buffer = Buffer.alloc(0);
    let done = false;
    const socket = net.connect({ host, port });
    const finish = (ok: boolean, error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (ok) socket.end(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
      else socket.destroy();
      resolve({ ok, error, startedAt, endedAt: Date.now() });
    };
    const timer = setTimeout(() => finish(false, 'timeout'), timeoutMs);
    socket.on('connect', () => socket.write(startupMessage('postgres', 'postgres')));
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.length >= 5) {
        const type = String.fromCharCode(buffer[0] as number);
        const length = buffer.readUInt32BE(1);
        if (buffer.length < 1 + length) return;
        const body = buffer.subarray(5, 1 + length);
        buffer = buffer.subarray(1 + length);
        if (type === 'E') return finish(false, errorMessage(body));
        if (type === 'Z') return finish(true);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
    socket.on('close', () => finish(false, 'closed'));
  });
}

/**
 * `loops` parallel loops of session starts until stop() is called; returns every result.
 * `pauseMs` between two attempts of one loop.
 */
export function sessionLoops(host: string, port: number, loops: number, pauseMs = 20): { stop: () => Promise<SessionResult[]> } {
  const results: SessionResult[] = [];
  let running = true;
  const workers = Array.from({ length: loops }, async () => {
    while (running) {
      results.push(await pgSession(host, port));
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(workers);
      return results;
    },
  };
}

/** Counts results by outcome: "ok", or the error message. */
export function tally(results: SessionResult[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of results) {
    const key = r.ok ? 'ok' : (r.error ?? 'error');
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
