// upstream.cc — see upstream.h.
#include "upstream.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netns.h"

namespace nsproxy {

namespace {
constexpr int kHelloTimeoutMs = 5000;
constexpr size_t kThreadModeSpares = 1;  // per family: the socket taken before an accept() that found nobody
}  // namespace

UpstreamSockets::~UpstreamSockets() { Drop(); }

void UpstreamSockets::Drop() {
  for (Pool* pool : {&v4_, &v6_}) {
    for (int fd : pool->fds) close(fd);
    pool->fds.clear();
    pool->requested = false;
  }
}

bool UpstreamSockets::Enter(int netns_fd, int userns_fd, SysError* error) {
  Drop();
  helper_.Kill();
  helper_mode_ = userns_fd >= 0;
  if (!helper_mode_) {
    netns_.reset();
    userns_.reset();
    return EnterNetns(netns_fd, error);
  }
  netns_.reset(fcntl(netns_fd, F_DUPFD_CLOEXEC, 0));
  userns_.reset(fcntl(userns_fd, F_DUPFD_CLOEXEC, 0));
  if (!netns_.valid() || !userns_.valid()) return error->Set("fcntl");
  generation_++;
  return helper_.Spawn(userns_.get(), netns_.get(), error) && helper_.WaitHello(kHelloTimeoutMs, error);
}

bool UpstreamSockets::Respawn(SysError* error) {
  for (Pool* pool : {&v4_, &v6_}) pool->requested = false;  // those requests died with the helper
  generation_++;
  return helper_.Spawn(userns_.get(), netns_.get(), error);
}

void UpstreamSockets::Prefill(int family) {
  if (!helper_mode_ || !helper_.running()) return;
  Pool& pool = PoolFor(family);
  SysError ignored;  // a dead helper shows up as EOF on its channel: OnReadable() handles it
  if (!pool.requested && pool.fds.size() < static_cast<size_t>(kLow)) {
    pool.requested = helper_.Request(family, kBatch, &ignored);
  }
}

UpstreamSockets::News UpstreamSockets::OnReadable() {
  News news;
  for (;;) {
    int family = 0;
    std::vector<int> fds;
    SysError error;
    bool ok = helper_.Receive(&family, &fds, &error);
    if (family == AF_INET || family == AF_INET6) {
      Pool& pool = PoolFor(family);
      pool.fds.insert(pool.fds.end(), fds.begin(), fds.end());
      pool.requested = false;
      news.sockets = news.sockets || !fds.empty();
    } else {
      for (int fd : fds) close(fd);
    }
    if (!ok) {
      if (error.err == EAGAIN) return news;
      // Gone (ECONNRESET: killed, or exited after failing to enter), or it failed to make
      // sockets: either way this helper is done. The caller respawns one.
      news.helper_died = true;
      news.died_pid = helper_.pid();
      news.failure = error;
      helper_.Kill();
      return news;
    }
  }
}

UniqueFd UpstreamSockets::Take(int family, SysError* error) {
  Pool& pool = PoolFor(family);
  if (!pool.fds.empty()) {
    UniqueFd fd(pool.fds.back());
    pool.fds.pop_back();
    Prefill(family);
    return fd;
  }
  if (!helper_mode_) {
    UniqueFd fd(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
    if (!fd.valid()) error->Set("socket");
    return fd;
  }
  Prefill(family);
  error->Set("socket", EAGAIN);
  return UniqueFd();
}

void UpstreamSockets::Return(int family, UniqueFd fd) {
  Pool& pool = PoolFor(family);
  if (helper_mode_ || pool.fds.size() < kThreadModeSpares) pool.fds.push_back(fd.release());
}

}  // namespace nsproxy
