// status.ts — the STATUS= line systemctl status shows, from the engine's counters.
import type { EngineStats } from './native';

export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function statusLine(prefix: string, stats: EngineStats, engine = 'splice'): string {
  const line = `${prefix}; ${stats.active} active, ${stats.total} total, ${formatBytes(stats.bytesIn)} in, ${formatBytes(stats.bytesOut)} out`;
  if (engine === 'splice') return line;
  return `${line}; ${engine}: ${stats.sockmapActive} on sockmap, ${stats.active - stats.sockmapActive} on splice, ${stats.migrations} of ${stats.sockmapTotal} moved to splice${stats.sockmapLosses ? `, ${stats.sockmapLosses} reset for bytes the kernel dropped` : ''}`;
}
