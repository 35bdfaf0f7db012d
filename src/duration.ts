// duration.ts — time spans as systemd writes them (systemd.time(7)): "90" (seconds), "90s",
// "500ms", "250us", "2min", "1m30s", "1h", "2d", "1w", "1M", "1y", and "infinity"; in ms.
import { NsproxyError } from './errors';

const SECOND = 1000;
const DAY = 86_400 * SECOND;
// systemd's own unit words; "m" is minutes and "M" months, as in systemd.
const UNITS: Record<string, number> = {
  us: 0.001, usec: 0.001, µs: 0.001, μs: 0.001,
  ms: 1, msec: 1,
  s: SECOND, sec: SECOND, second: SECOND, seconds: SECOND,
  m: 60 * SECOND, min: 60 * SECOND, minute: 60 * SECOND, minutes: 60 * SECOND,
  h: 3600 * SECOND, hr: 3600 * SECOND, hour: 3600 * SECOND, hours: 3600 * SECOND,
  d: DAY, day: DAY, days: DAY,
  w: 7 * DAY, week: 7 * DAY, weeks: 7 * DAY,
  M: 30.44 * DAY, month: 30.44 * DAY, months: 30.44 * DAY,
  y: 365.25 * DAY, year: 365.25 * DAY, years: 365.25 * DAY,
};

/** A time span in ms; Infinity for "infinity". */
export function parseDuration(option: string, text: string): number {
  const compact = text.replace(/\s+/g, '');
  if (compact === 'infinity') return Infinity;
  if (/^\d+(\.\d+)?$/.test(compact)) return Number(compact) * SECOND;
  const parts = [...compact.matchAll(/(\d+(?:\.\d+)?)([a-zA-Zµμ]+)/g)];
  const valid = parts.length > 0 && parts.map((p) => p[0]).join('') === compact && parts.every((p) => UNITS[p[2] as string] !== undefined);
  if (!valid) {
    throw new NsproxyError('NSPROXY_ERR_USAGE', `${option} '${text}': not a time span; write e.g. 90s, 500ms, 2min, 1m30s, 1d or infinity`);
  }
  return parts.reduce((sum, p) => sum + Number(p[1]) * (UNITS[p[2] as string] as number), 0);
}

/** "60 s", "1.5 s", "450 ms", "infinity": for logs, messages and STATUS= lines. */
export function formatDuration(ms: number): string {
  if (ms === Infinity) return 'infinity';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = Math.round(ms / 100) / 10;
  return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
}
