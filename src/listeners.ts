// listeners.ts — the host sockets nsproxy accepts on: those systemd passed, those --listen asks
// for, or else the default (the target's port on host loopback).
import { formatEndpoint, type Endpoint } from './address';
import type { Config } from './config';
import { errnoCode, NsproxyError } from './errors';
import type { Native } from './native';
import type { PassedSocket } from './systemd';

export interface HostListener {
  fd: number;
  /** the bound address, "127.0.0.1:5432" (the real port when --listen asked for port 0) */
  address: string;
  source: 'systemd' | 'listen';
  /** FileDescriptorName= for systemd sockets */
  name?: string;
}

function listenFailure(endpoint: Endpoint, err: unknown): NsproxyError {
  const where = formatEndpoint(endpoint);
  const code = errnoCode(err);
  const hint =
    code === 'EADDRINUSE'
      ? `something else is listening there (see ss -ltnp 'sport = :${endpoint.port}'); stop it or choose another --listen`
      : code === 'EADDRNOTAVAIL'
        ? 'that address is not configured on this host; choose another --listen'
        : code === 'EACCES'
          ? 'ports below 1024 need root or CAP_NET_BIND_SERVICE; or let a .socket unit listen'
          : 'choose another --listen';
  return new NsproxyError('NSPROXY_ERR_LISTEN_FAILED', `cannot listen on ${where}: ${code ?? (err as Error).message}; ${hint}`, { cause: err });
}

/** Opens the listeners; on failure closes whatever it opened and throws. */
export function openListeners(config: Config, passed: PassedSocket[], native: Native, closeFd: (fd: number) => void): HostListener[] {
  const listeners: HostListener[] = passed.map((socket) => ({ fd: socket.fd, address: socket.local, source: 'systemd', name: socket.name }));
  const wanted = config.listen.length > 0 || passed.length > 0 ? config.listen : [config.defaultListen];
  try {
    for (const endpoint of wanted) {
      let fd: number;
      try {
        fd = native.listenTcp(endpoint.address, endpoint.port, config.backlog);
      } catch (err) {
        throw listenFailure(endpoint, err);
      }
      listeners.push({ fd, address: native.describeSocket(fd).local, source: 'listen' });
    }
  } catch (err) {
    for (const listener of listeners) if (listener.source === 'listen') closeFd(listener.fd);
    throw err;
  }
  return listeners;
}
