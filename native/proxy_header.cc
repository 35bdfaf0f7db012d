// proxy_header.cc — see proxy_header.h; the layouts are those of HAProxy's proxy-protocol.txt.
#include "proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace nsproxy {

namespace {

// Version 2: a fixed signature, then version and command, family and protocol, and the length of
// the addresses that follow, in network byte order.
constexpr char kV2Signature[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
constexpr uint8_t kV2Proxy = 0x21;      // version 2, command PROXY
constexpr uint8_t kV2Local = 0x20;      // version 2, command LOCAL
constexpr uint8_t kV2Tcp4 = 0x11;       // AF_INET, STREAM
constexpr uint8_t kV2Tcp6 = 0x21;       // AF_INET6, STREAM
constexpr uint8_t kV2Unspec = 0x00;

std::string V1(const sockaddr_storage& client, const sockaddr_storage& local) {
  char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
  uint16_t sport, dport;
  const char* proto;
  if (client.ss_family == AF_INET && local.ss_family == AF_INET) {
    auto* c = reinterpret_cast<const sockaddr_in*>(&client);
    auto* l = reinterpret_cast<const sockaddr_in*>(&local);
    inet_ntop(AF_INET, &c->sin_addr, src, sizeof src);
    inet_ntop(AF_INET, &l->sin_addr, dst, sizeof dst);
    sport = ntohs(c->sin_port);
    dport = ntohs(l->sin_port);
    proto = "TCP4";
  } else if (client.ss_family == AF_INET6 && local.ss_family == AF_INET6) {
    auto* c = reinterpret_cast<const sockaddr_in6*>(&client);
    auto* l = reinterpret_cast<const sockaddr_in6*>(&local);
    inet_ntop(AF_INET6, &c->sin6_addr, src, sizeof src);
    inet_ntop(AF_INET6, &l->sin6_addr, dst, sizeof dst);
    sport = ntohs(c->sin6_port);
    dport = ntohs(l->sin6_port);
    proto = "TCP6";
  } else {
    return "PROXY UNKNOWN\r\n";
  }
  return std::string("PROXY ") + proto + " " + src + " " + dst + " " + std::to_string(sport) + " " + std::to_string(dport) + "\r\n";
}

std::string V2(const sockaddr_storage& client, const sockaddr_storage& local) {
  std::string out(kV2Signature, sizeof kV2Signature);
  auto append = [&out](const void* data, size_t n) { out.append(static_cast<const char*>(data), n); };
  auto header = [&](uint8_t command, uint8_t family, uint16_t length) {
    out.push_back(static_cast<char>(command));
    out.push_back(static_cast<char>(family));
    uint16_t be = htons(length);
    append(&be, 2);
  };
  if (client.ss_family == AF_INET && local.ss_family == AF_INET) {
    auto* c = reinterpret_cast<const sockaddr_in*>(&client);
    auto* l = reinterpret_cast<const sockaddr_in*>(&local);
    header(kV2Proxy, kV2Tcp4, 12);
    append(&c->sin_addr, 4);
    append(&l->sin_addr, 4);
    append(&c->sin_port, 2);  // already in network byte order
    append(&l->sin_port, 2);
  } else if (client.ss_family == AF_INET6 && local.ss_family == AF_INET6) {
    auto* c = reinterpret_cast<const sockaddr_in6*>(&client);
    auto* l = reinterpret_cast<const sockaddr_in6*>(&local);
    header(kV2Proxy, kV2Tcp6, 36);
    append(&c->sin6_addr, 16);
    append(&l->sin6_addr, 16);
    append(&c->sin6_port, 2);
    append(&l->sin6_port, 2);
  } else {
    header(kV2Local, kV2Unspec, 0);
  }
  return out;
}

}  // namespace

std::string ProxyHeader(ProxyProtocol version, const sockaddr_storage& client, const sockaddr_storage& local) {
  switch (version) {
    case ProxyProtocol::kV1: return V1(client, local);
    case ProxyProtocol::kV2: return V2(client, local);
    case ProxyProtocol::kNone: break;
  }
  return std::string();
}

}  // namespace nsproxy
