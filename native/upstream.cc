// upstream.cc — see upstream.h.
#include "upstream.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netns.h"

namespace nsproxy {

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
  if (!netns_.valid() || !userns_.valid()) {
    error->Set("fcntl");
    return false;
  }
  return Spawn(error);
}

bool UpstreamSockets::Spawn(SysError* error) {
  generation_++;
  return helper_.Spawn(userns_.get(), netns_.get(), error);
}

bool UpstreamSockets::Respawn(SysError* error) {
  Drop();
  return Spawn(error);
}

void UpstreamSockets::Accept(int family, std::vector<int>* fds) {
  Pool& pool = PoolFor(family);
  pool.fds.insert(pool.fds.end(), fds->begin(), fds->end());
  pool.requested = false;
  fds->clear();
}

void UpstreamSockets::Prefill(int family) {
  if (!helper_mode_ || !helper_.running()) return;
  Pool& pool = PoolFor(family);
  SysError ignored;
  if (!pool.requested && pool.fds.size() < static_cast<size_t>(kLow)) {
    pool.requested = helper_.Request(family, kBatch, &ignored);
  }
}

void UpstreamSockets::OnReadable() {
  std::vector<int> fds;
  for (;;) {
    int family = 0;
    SysError error;
    bool ok = helper_.Receive(false, &family, &fds, &error);
    if (family != 0) Accept(family, &fds);
    if (!ok) {
      if (error.err == ECONNRESET) helper_.Kill();  // gone: Take() spawns a new one
      return;
    }
  }
}

int UpstreamSockets::Take(int family, SysError* error) {
  if (!helper_mode_) {
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) error->Set("socket");
    return fd;
  }
  if (!helper_.running() && !Respawn(error)) return -1;
  Pool& pool = PoolFor(family);
  if (pool.fds.empty()) {
    // Nothing ready: ask (unless asked already) and wait for this family's batch.
    if (!pool.requested && !(pool.requested = helper_.Request(family, kBatch, error))) return -1;
    std::vector<int> fds;
    while (pool.fds.empty()) {
      int got = 0;
      bool ok = helper_.Receive(true, &got, &fds, error);
      if (got != 0) Accept(got, &fds);
      if (!ok) {
        if (error->err == ECONNRESET) helper_.Kill();
        if (pool.fds.empty()) return -1;
      }
    }
  }
  int fd = pool.fds.back();
  pool.fds.pop_back();
  Prefill(family);
  return fd;
}

}  // namespace nsproxy
