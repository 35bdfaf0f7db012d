// notify.cc — see notify.h.
#include "notify.h"

#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "unique_fd.h"

namespace nsproxy {

bool SdNotify(const std::string& socket_path, const std::string& state, SysError* error) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof addr.sun_path ||
      (socket_path[0] != '/' && socket_path[0] != '@')) {
    error->Set("sendto", EINVAL);
    return false;
  }
  memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  socklen_t len = offsetof(sockaddr_un, sun_path) + socket_path.size();

  UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    error->Set("socket");
    return false;
  }
  if (sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len) < 0) {
    error->Set("sendto");
    return false;
  }
  return true;
}

}  // namespace nsproxy
