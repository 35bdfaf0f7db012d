// CPU time of a process, for tests that must prove a daemon does not spin.
import { readdirSync, readFileSync } from 'node:fs';

const CLK_TCK = 100;  // USER_HZ on Linux, whatever the kernel's HZ

/** utime + stime of `pid` (all its threads), in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;  // fields 14 and 15 of stat(5)
}

/** The share of one core `pid` used over the next `ms` milliseconds. */
export async function cpuShare(pid: number, ms: number): Promise<number> {
  const before = cpuSeconds(pid);
  const started = Date.now();
  await new Promise((resolve) => setTimeout(resolve, ms));
  return (cpuSeconds(pid) - before) / ((Date.now() - started) / 1000);
}

/** Open file descriptors of `pid`. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}
