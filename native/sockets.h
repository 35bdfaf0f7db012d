// sockets.h — socket helpers that know nothing of N-API or of the engine:
// numeric endpoints, host listening sockets, and checks on sockets passed by systemd.
#pragma once

#include <sys/socket.h>

#include <string>

#include "syserror.h"
#include "unique_fd.h"

namespace nsproxy {

// A numeric IPv4 or IPv6 address and port, ready for bind()/connect().
struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;

  int family() const { return addr.ss_family; }
};

// Parses a numeric IP literal (no brackets) and port; false if `ip` is not numeric.
bool ParseEndpoint(const std::string& ip, int port, Endpoint* out);

// "127.0.0.1:5432" or "[::1]:5432".
std::string FormatEndpoint(const sockaddr* addr);

// A non-blocking, close-on-exec TCP socket bound to `where` and listening.
UniqueFd ListenTcp(const Endpoint& where, int backlog, SysError* error);

// What a passed file descriptor is, as far as nsproxy cares.
struct SocketInfo {
  bool is_socket = false;
  int type = 0;        // SOCK_STREAM, ...
  int family = 0;      // AF_INET, AF_INET6, AF_UNIX, ...
  bool listening = false;
  std::string local;   // bound address, for logs ("" for non-IP)
};

// Fills *info; returns false with *error for a bad fd. A non-socket is not an error (is_socket=false).
bool DescribeSocket(int fd, SocketInfo* info, SysError* error);

}  // namespace nsproxy
