// proxy_header.h — the PROXY protocol header (HAProxy's spec, versions 1 and 2) that tells the
// service who the client is: sent on the upstream connection before any byte of the client's.
// nginx, HAProxy, Traefik, pgbouncer and others read it.
#pragma once

#include <sys/socket.h>

#include <string>

namespace nsproxy {

enum class ProxyProtocol { kNone = 0, kV1 = 1, kV2 = 2 };

// The header for a connection from `client` that arrived at `local` (the address it connected
// to). Addresses that are not IPv4/IPv6 (a Unix socket client) give v1's "PROXY UNKNOWN" and
// v2's LOCAL command, which tell the service to use the connection's own addresses.
std::string ProxyHeader(ProxyProtocol version, const sockaddr_storage& client, const sockaddr_storage& local);

}  // namespace nsproxy
