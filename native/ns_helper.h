// ns_helper.h — sockets made inside a namespace we may not enter ourselves.
//
// An unprivileged process cannot setns(CLONE_NEWNET) into a rootless container's netns: that
// needs CAP_SYS_ADMIN over the namespace's owning user namespace. The owner (same uid) gets all
// capabilities there by joining that user namespace first — but setns(CLONE_NEWUSER) requires a
// single-threaded caller, and Node is not. So a forked child (one thread) joins the owning userns
// and then the netns, and from then on makes sockets on request and passes them back over a
// socketpair with SCM_RIGHTS. The daemon itself stays in the host namespaces, holds no
// capabilities, and connects and splices the sockets it receives as it would its own.
//
// The child runs only async-signal-safe calls (it was forked from a multithreaded process),
// holds no fd but its channel, dies with its parent (PR_SET_PDEATHSIG) and ignores SIGPIPE.
#pragma once

#include <sys/types.h>

#include <vector>

#include "syserror.h"
#include "unique_fd.h"

namespace nsproxy {

class NsHelper {
 public:
  NsHelper() = default;
  ~NsHelper();  // SIGKILL and reap
  NsHelper(const NsHelper&) = delete;
  NsHelper& operator=(const NsHelper&) = delete;

  // Forks a helper that joins `userns_fd` then `netns_fd`. True once the helper said it is in.
  bool Spawn(int userns_fd, int netns_fd, SysError* error);
  void Kill();

  bool running() const { return pid_ > 0; }
  // The daemon's end of the channel (non-blocking SOCK_SEQPACKET): readable when sockets arrive.
  int channel() const { return channel_.get(); }

  // Asks for `count` (1..kMaxBatch) new TCP sockets of `family` (AF_INET, AF_INET6).
  bool Request(int family, int count, SysError* error);

  // Receives one reply: appends the sockets to *out and sets *family. Returns false with
  // *error on failure; EAGAIN when no reply is there yet (unless `wait`).
  bool Receive(bool wait, int* family, std::vector<int>* out, SysError* error);

  static constexpr int kMaxBatch = 32;

 private:
  pid_t pid_ = -1;
  UniqueFd channel_;
};

// One socket of `family` made inside the netns: in this thread with setns() when `userns_fd`
// is -1 (the caller must then be on a thread of its own), else through a one-shot helper.
int SocketInNetns(int netns_fd, int userns_fd, int family, SysError* error);

}  // namespace nsproxy
