// log-pretty.ts — one readable line per log record for a terminal: time, level, message, then
// the fields as key=value, e.g. "14:20:58.123  WARN connect failed to=127.0.0.1:5432 code=ECONNREFUSED".
// JSON stays the format for pipes and files; journal lines for journald (log.ts).
import { formatFields } from './log-fields';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
// ANSI colours for the level word: dim, dim, plain, yellow, red, red
const COLOURS: Record<number, string> = { 10: '2', 20: '2', 40: '33', 50: '31', 60: '31' };

/** One pino record as a terminal line; `colour` adds ANSI colours to the level word. */
export function prettyLine(record: Record<string, unknown>, colour: boolean): string {
  const level = Number(record['level']);
  const time = typeof record['time'] === 'string' ? (record['time'] as string).slice(11, 23) : new Date().toISOString().slice(11, 23);
  const word = (LEVELS[level] ?? String(level)).padStart(5);
  const code = COLOURS[level];
  const shown = colour && code ? `\x1b[${code}m${word}\x1b[0m` : word;
  const fields = formatFields(record);
  return `${time} ${shown} ${String(record['msg'] ?? '')}${fields ? ` ${fields}` : ''}\n`;
}
