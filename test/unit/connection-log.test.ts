import t from 'tap';

import { connectionLogger, endOf } from '../../src/connection-log';
import type { Logger } from '../../src/log';

function recorder(): { log: Logger; lines: Array<{ level: string; fields: Record<string, unknown>; msg: string }> } {
  const lines: Array<{ level: string; fields: Record<string, unknown>; msg: string }> = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => lines.push({ level, fields, msg });
  return { log: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } as unknown as Logger, lines };
}

const listeners = [{ fd: 3, address: '127.0.0.1:5432', source: 'listen' as const }];
const endpoints = () => [{ address: '127.0.0.1', port: 5433, family: 4 as const }];

t.test('--log-connections: one info line per connection when it ends', async (t) => {
  const { log, lines } = recorder();
  const onEvents = connectionLogger(log, listeners, endpoints, true);
  onEvents([
    { type: 'opened', id: 1, listener: 0, peer: '127.0.0.1:40000' },
    { type: 'opened', id: 2, listener: 0, peer: '[::1]:40001' },
    { type: 'closed', id: 1, listener: 0, bytesIn: 10, bytesOut: 20, durationMs: 12.345 },
    { type: 'connect-failed', id: 3, listener: 0, code: 'ECONNREFUSED', syscall: 'connect' },  // 'opened' lost
    { type: 'closed', id: 3, listener: 0, bytesIn: 0, bytesOut: 0, durationMs: 0.1 },
    { type: 'closed', id: 2, listener: 0, bytesIn: 5, bytesOut: 0, durationMs: 3, code: 'ECONNRESET', syscall: 'recv' },
  ]);
  const info = lines.filter((l) => l.level === 'info');
  t.same(info.map((l) => l.msg), ['connection', 'connection', 'connection']);
  t.same(info[0]?.fields, { id: 1, client: '127.0.0.1:40000', listener: '127.0.0.1:5432', to: '127.0.0.1:5433', bytesIn: 10, bytesOut: 20, durationMs: 12.3, end: 'closed' });
  t.equal(info[1]?.fields.end, 'connect failed (ECONNREFUSED)');
  t.equal(info[1]?.fields.client, 'unknown', "no 'opened' event for it in this batch: the client is unknown");
  t.same([info[2]?.fields.client, info[2]?.fields.end], ['[::1]:40001', 'reset (recv ECONNRESET)']);
  t.equal(lines.filter((l) => l.level === 'warn').length, 1, 'the connect failure is a warning as before');
});

t.test('without it, connections are debug lines only', async (t) => {
  const { log, lines } = recorder();
  connectionLogger(log, listeners, endpoints, false)([
    { type: 'opened', id: 1, listener: 0, peer: '127.0.0.1:1' },
    { type: 'closed', id: 1, listener: 0, bytesIn: 1, bytesOut: 1, durationMs: 1 },
  ]);
  t.same(lines.map((l) => l.level), ['debug', 'debug']);
  t.equal(endOf({ type: 'closed', id: 1, listener: 0, code: 'ETIMEDOUT', syscall: 'send' }), 'error (send ETIMEDOUT)');
});
