// log.ts — pino, written synchronously to stdout (no worker-thread transport: a daemon must not
// lose its last lines when it dies). Under systemd, when $JOURNAL_STREAM says stdout is the
// journal, lines are plain text with a syslog priority prefix: "<4>connect failed to=... code=...".
// On a terminal, one readable line per event (log-pretty.ts).
import { fstatSync, writeSync } from 'node:fs';

import pino, { type Logger } from 'pino';

import type { LogLevel } from './config';
import { formatFields } from './log-fields';
import { prettyLine } from './log-pretty';

export type { Logger };

/** json: pino's lines (pipes, files); journal: journald (JOURNAL_STREAM); pretty: a terminal. */
export type LogFormat = 'json' | 'journal' | 'pretty';

/** pino level number -> syslog priority (sd-daemon(3) prefixes). */
const PRIORITY: Record<number, number> = { 10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2 };

/** One pino JSON record as a journal line. */
export function journalLine(record: Record<string, unknown>): string {
  const priority = PRIORITY[Number(record['level'])] ?? 6;
  const fields = formatFields(record);
  return `<${priority}>${String(record['msg'] ?? '')}${fields ? ` ${fields}` : ''}\n`;
}

/** Whether fd is a terminal. */
export function isTerminal(fd: number): boolean {
  // node:tty only when fd is a character device at all: loading it costs every start ~2 ms.
  try {
    return fstatSync(fd).isCharacterDevice() && (require('node:tty') as typeof import('node:tty')).isatty(fd);
  } catch {
    return false;  // closed
  }
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

export function createLogger(level: LogLevel, format: LogFormat): Logger {
  if (format === 'journal') {
    const stream = { write: (line: string) => void writeSync(1, journalLine(JSON.parse(line) as Record<string, unknown>)) };
    return pino({ level, base: undefined, timestamp: false }, stream);
  }
  if (format === 'pretty') {
    const colour = process.env['NO_COLOR'] === undefined && process.env['TERM'] !== 'dumb';
    const stream = { write: (line: string) => void writeSync(1, prettyLine(JSON.parse(line) as Record<string, unknown>, colour)) };
    return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, stream);
  }
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 1, sync: true }));
}
