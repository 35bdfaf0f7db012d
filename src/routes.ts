// routes.ts — which address inside the namespace each listener forwards to. A systemd socket
// named NAME (FileDescriptorName=) takes --to NAME=...; every other listener the unnamed --to.
// Network destinations (@NETWORK:PORT) become the container's address on that network, looked
// up again at every (re)resolution.
import type { Endpoint } from './address';
import type { Destination, Route } from './config';
import { NsproxyError } from './errors';
import type { HostListener } from './listeners';
import type { Target } from './target';

/** The route of each listener, in listener order. */
export function routeListeners(listeners: HostListener[], routes: Route[]): Destination[] {
  const fallback = routes.find((route) => route.name === undefined);
  return listeners.map((listener) => {
    const route = routes.find((r) => r.name !== undefined && r.name === listener.name) ?? fallback;
    if (!route) {
      const which = listener.name ? `socket '${listener.name}' (fd ${listener.fd})` : `listener ${listener.address}`;
      throw new NsproxyError('NSPROXY_ERR_USAGE', `${which} has no --to; add --to ${listener.name ?? 'ADDR:PORT'}${listener.name ? '=ADDR:PORT' : ''} or an unnamed --to`);
    }
    return route.destination;
  });
}

export function resolveDestination(destination: Destination, target: Target): Endpoint {
  if (destination.kind === 'address') return destination.endpoint;
  const networks = target.container?.networks ?? {};
  const address = networks[destination.network];
  const ip = address?.ipv4 ?? address?.ipv6;
  if (!ip) {
    const on = Object.keys(networks);
    throw new NsproxyError(
      'NSPROXY_ERR_NO_ADDRESS',
      `${target.description} has no address on network '${destination.network}' (it is on: ${on.length ? on.join(', ') : 'no network'}); use one of those, or a numeric --to`,
    );
  }
  return { address: ip, port: destination.port, family: address?.ipv4 ? 4 : 6 };
}
