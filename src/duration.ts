// duration.ts — systemd-style time spans ("90", "90s", "500ms", "2min", "1m30s", "1h"), in ms.
import { NsproxyError } from './errors';

const UNITS: Record<string, number> = {
  ms: 1, msec: 1,
  s: 1000, sec: 1000, second: 1000, seconds: 1000,
  m: 60_000, min: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hr: 3_600_000, hour: 3_600_000, hours: 3_600_000,
};

export function parseDuration(option: string, text: string): number {
  const compact = text.replace(/\s+/g, '');
  if (/^\d+(\.\d+)?$/.test(compact)) return Math.round(Number(compact) * 1000);
  const parts = [...compact.matchAll(/(\d+(?:\.\d+)?)([a-z]+)/g)];
  const valid = parts.length > 0 && parts.map((p) => p[0]).join('') === compact && parts.every((p) => UNITS[p[2] as string] !== undefined);
  if (!valid) {
    throw new NsproxyError('NSPROXY_ERR_USAGE', `${option} '${text}': not a time span; write e.g. 90s, 500ms, 2min or 1m30s`);
  }
  return Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * (UNITS[p[2] as string] as number), 0));
}

/** "3.2 s", "450 ms": for logs and STATUS= lines. */
export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
