// probe.cc — see probe.h.
#include "probe.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "netns.h"
#include "unique_fd.h"

namespace nsproxy {

int ProbeTcp(int netns_fd, const Endpoint& target, int timeout_ms, const char** syscall) {
  SysError error;
  if (!EnterNetns(netns_fd, &error)) {
    *syscall = error.syscall;
    return error.err;
  }
  UniqueFd fd(socket(target.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
  *syscall = "socket";
  if (!fd.valid()) return errno;
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
