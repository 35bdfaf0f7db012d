// log.ts — pino, written synchronously to stdout (no worker-thread transport: a daemon must not
// lose its last lines when it dies). Under systemd, when $JOURNAL_STREAM says stdout is the
// journal, lines are plain text with a syslog priority prefix: "<4>connect failed to=... code=...".
import { fstatSync, writeSync } from 'node:fs';

import pino, { type Logger } from 'pino';

import type { LogLevel } from './config';

export type { Logger };

/** pino level number -> syslog priority (sd-daemon(3) prefixes). */
const PRIORITY: Record<number, number> = { 10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2 };
const OMIT = new Set(['level', 'time', 'pid', 'hostname', 'msg']);

function formatValue(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /[\s"=]/.test(text) ? JSON.stringify(text) : text;
}

/** One pino JSON record as a journal line. */
export function journalLine(record: Record<string, unknown>): string {
  const priority = PRIORITY[Number(record['level'])] ?? 6;
  const fields = Object.entries(record)
    .filter(([key]) => !OMIT.has(key))
    .map(([key, value]) => `${key}=${formatValue(value)}`);
  return `<${priority}>${[String(record['msg'] ?? ''), ...fields].join(' ')}\n`;
}

/** True when $JOURNAL_STREAM ("DEV:INODE") names the file behind fd (stdout). */
export function isJournalStream(env: NodeJS.ProcessEnv, fd = 1): boolean {
  const match = /^(\d+):(\d+)$/.exec(env['JOURNAL_STREAM'] ?? '');
  if (!match) return false;
  try {
    const stat = fstatSync(fd, { bigint: true });
    return stat.dev === BigInt(match[1] as string) && stat.ino === BigInt(match[2] as string);
  } catch {
    return false;
  }
}

export function createLogger(level: LogLevel, journal: boolean): Logger {
  if (journal) {
    const stream = { write: (line: string) => void writeSync(1, journalLine(JSON.parse(line) as Record<string, unknown>)) };
    return pino({ level, base: undefined, timestamp: false }, stream);
  }
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 1, sync: true }));
}
