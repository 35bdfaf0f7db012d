// nsproxy under `systemd-socket-activate`, which binds the sockets, waits for the
// first connection, then execs nsproxy with LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES
// (like systemd; the PID stays the same across the exec).
import type { TestLike } from './env';
import { spawnNsproxy, type Nsproxy } from './nsproxy';

export async function spawnActivated(
  t: TestLike,
  listens: string[],
  fdnames: string[] | null,
  args: string[],
  as: { asUser?: string[]; mainJs?: string } = {},
): Promise<Nsproxy> {
  const wrapper = [...(as.asUser ?? []), 'systemd-socket-activate'];
  for (const l of listens) wrapper.push('-l', l);
  if (fdnames) wrapper.push(`--fdname=${fdnames.join(':')}`);
  const px = spawnNsproxy(t, args, { wrapper, readyTimeoutMs: 60000, mainJs: as.mainJs });
  // systemd-socket-activate prints "Listening on ADDR as FD." per socket on stderr
  for (const l of listens) {
    await px.proc.stderr.waitFor((line) => line.startsWith(`Listening on ${l} as `), 20000, `systemd-socket-activate listening on ${l}`);
  }
  return px;
}
