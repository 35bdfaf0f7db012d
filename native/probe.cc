// probe.cc — see probe.h.
#include "probe.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "ns_helper.h"
#include "unique_fd.h"

namespace nsproxy {

int ProbeTcp(int netns_fd, int userns_fd, const Endpoint& target, int timeout_ms, const char** syscall) {
  SysError error;
  UniqueFd fd = SocketInNetns(netns_fd, userns_fd, target.family(), &error);
  if (!fd.valid()) {
    *syscall = error.syscall;
    return error.err;
  }
  *syscall = "connect";
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&target.addr), target.len) == 0) return 0;
  if (errno != EINPROGRESS) return errno;
  pollfd p{fd.get(), POLLOUT, 0};
  int ready = poll(&p, 1, timeout_ms);
  if (ready < 0) return errno;
  if (ready == 0) return ETIMEDOUT;
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

}  // namespace nsproxy
