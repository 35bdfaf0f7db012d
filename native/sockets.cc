// sockets.cc — see sockets.h.
#include "sockets.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "unique_fd.h"

namespace nsproxy {

bool ParseEndpoint(const std::string& ip, int port, Endpoint* out) {
  *out = Endpoint{};
  if (port < 0 || port > 65535) return false;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->addr);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out->len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->addr);
  if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out->len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

std::string FormatEndpoint(const sockaddr* addr) {
  char ip[INET6_ADDRSTRLEN] = "";
  if (addr->sa_family == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(addr);
    inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof ip);
    return std::string(ip) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (addr->sa_family == AF_INET6) {
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(addr);
    inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  if (addr->sa_family == AF_UNIX) {
    auto* un = reinterpret_cast<const sockaddr_un*>(addr);
    if (un->sun_path[0] == '\0') return "@" + std::string(un->sun_path + 1);
    return un->sun_path;
  }
  return "";
}

UniqueFd ListenTcp(const Endpoint& where, int backlog, SysError* error) {
  UniqueFd fd(socket(where.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
  int one = 1;
  bool ok = (fd.valid() || error->Set("socket")) &&
            (setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 || error->Set("setsockopt")) &&
            // Accepted sockets inherit TCP_NODELAY: small request/response protocols (PostgreSQL) want it.
            (setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0 || error->Set("setsockopt")) &&
            (bind(fd.get(), reinterpret_cast<const sockaddr*>(&where.addr), where.len) == 0 || error->Set("bind")) &&
            (listen(fd.get(), backlog) == 0 || error->Set("listen"));
  if (!ok) fd.reset();
  return fd;
}

static int IntOption(int fd, int level, int name, int* value) {
  socklen_t len = sizeof *value;
  return getsockopt(fd, level, name, value, &len);
}

bool DescribeSocket(int fd, SocketInfo* info, SysError* error) {
  *info = SocketInfo{};
  if (fcntl(fd, F_GETFD) < 0) {
    error->Set("fcntl");
    return false;
  }
  if (IntOption(fd, SOL_SOCKET, SO_TYPE, &info->type) < 0) {
    if (errno == ENOTSOCK) return true;
    error->Set("getsockopt");
    return false;
  }
  info->is_socket = true;
  int accepting = 0;
  if (IntOption(fd, SOL_SOCKET, SO_DOMAIN, &info->family) < 0 ||
      IntOption(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting) < 0) {
    error->Set("getsockopt");
    return false;
  }
  info->listening = accepting != 0;
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
    info->local = FormatEndpoint(reinterpret_cast<sockaddr*>(&local));
  }
  return true;
}

}  // namespace nsproxy
