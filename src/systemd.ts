// systemd.ts — the sockets systemd passes (sd_listen_fds(3) semantics) and sd_notify(3).
import { NsproxyError } from './errors';
import type { Native } from './native';

/** First passed fd, SD_LISTEN_FDS_START. */
export const LISTEN_FDS_START = 3;

export interface PassedSocket {
  fd: number;
  /** from LISTEN_FDNAMES (FileDescriptorName= in the .socket unit), "unknown" if unnamed */
  name: string;
  /** bound address, for logs */
  local: string;
}

export interface PassedSockets {
  sockets: PassedSocket[];
  /** why LISTEN_FDS was set but not for us (a log line for the caller), if so */
  ignored?: string;
}

const LISTEN_VARIABLES = ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'LISTEN_PIDFDID'];

function listenFdsError(message: string): NsproxyError {
  return new NsproxyError('NSPROXY_ERR_LISTEN_FDS', message);
}

/** Whether LISTEN_PIDFDID (systemd >= 259) names this process; true when it is not set. */
function pidfdMatches(env: NodeJS.ProcessEnv, pid: number, native: Native, closeFd: (fd: number) => void): boolean {
  const expected = env['LISTEN_PIDFDID'];
  if (expected === undefined || expected === '') return true;
  const pidfd = native.pidfdOpen(pid);
  try {
    return native.fdInode(pidfd) === expected;
  } finally {
    closeFd(pidfd);
  }
}

/**
 * The listening sockets passed to this process, checked: each must be a listening stream socket.
 * The LISTEN_* variables are removed from `env` either way, so that no child inherits them.
 */
export function takePassedSockets(env: NodeJS.ProcessEnv, pid: number, native: Native, closeFd: (fd: number) => void): PassedSockets {
  const fdsText = env['LISTEN_FDS'];
  const pidText = env['LISTEN_PID'];
  const names = (env['LISTEN_FDNAMES'] ?? '').split(':');
  const pidfdOk = fdsText !== undefined && pidText === String(pid) && pidfdMatches(env, pid, native, closeFd);
  for (const name of LISTEN_VARIABLES) delete env[name];

  if (fdsText === undefined) return { sockets: [] };
  if (pidText !== String(pid)) {
    return { sockets: [], ignored: `ignoring LISTEN_FDS: LISTEN_PID=${pidText ?? '(unset)'} is not this process (${pid}); run nsproxy with exec so that it keeps the PID systemd started` };
  }
  if (!pidfdOk) {
    return { sockets: [], ignored: 'ignoring LISTEN_FDS: LISTEN_PIDFDID does not match this process' };
  }
  if (!/^\d+$/.test(fdsText) || Number(fdsText) === 0) {
    throw listenFdsError(`LISTEN_FDS=${fdsText}: no sockets were passed; check the ListenStream= lines of the .socket unit`);
  }
  const sockets: PassedSocket[] = [];
  for (let i = 0; i < Number(fdsText); i++) {
    const fd = LISTEN_FDS_START + i;
    const name = names[i] || 'unknown';
    const label = `fd ${fd} (${name}) from LISTEN_FDS`;
    let info;
    try {
      info = native.describeSocket(fd);
    } catch (err) {
      throw listenFdsError(`${label} is not open (${(err as Error).message}); check the .socket unit`);
    }
    if (!info.isSocket || info.type !== native.constants.SOCK_STREAM) {
      throw listenFdsError(`${label} is not a stream socket; use ListenStream= in the .socket unit`);
    }
    if (!info.listening) {
      throw listenFdsError(`${label} is a connected socket, not a listening one; set Accept=no in the .socket unit`);
    }
    sockets.push({ fd, name, local: info.local });
  }
  return { sockets };
}

/** sd_notify: a no-op without $NOTIFY_SOCKET. Never fatal: a lost notification is logged by the caller. */
export function notify(env: NodeJS.ProcessEnv, native: Native, state: Record<string, string | number>): void {
  const socket = env['NOTIFY_SOCKET'];
  if (!socket) return;
  const message = Object.entries(state)
    .map(([key, value]) => `${key}=${value}`)
    .join('\n');
  native.sdNotify(socket, message);
}
