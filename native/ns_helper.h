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
// The child runs only async-signal-safe calls (it was forked from a multithreaded process).
// Its first act is to close every fd but the three it needs, so that it never holds a
// duplicate of a daemon socket (an fd stays in an epoll set until its last duplicate closes).
// It dies with its parent (PR_SET_PDEATHSIG), ignores SIGPIPE, and is not dumpable (no core,
// no ptrace by other processes of the user: it holds capabilities in the user namespace).
//
// The daemon's end of the channel is non-blocking: a worker never waits for the helper except
// in WaitHello(), which is bounded and used only before the worker serves anything.
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

  // Forks a helper that joins `userns_fd` then `netns_fd`. Returns at once: the helper says
  // whether it got in with its first reply (family 0), which Receive() or WaitHello() takes.
  bool Spawn(int userns_fd, int netns_fd, SysError* error);
  // Waits up to `timeout_ms` for the first reply. False with *error: the helper could not
  // enter (setns and its errno), died (ECHILD), or said nothing in time (ETIMEDOUT).
  bool WaitHello(int timeout_ms, SysError* error);
  void Kill();

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // The daemon's end of the channel (non-blocking SOCK_SEQPACKET): readable when replies arrive.
  int channel() const { return channel_.get(); }

  // Asks for `count` (1..kMaxBatch) new TCP sockets of `family` (AF_INET, AF_INET6).
  bool Request(int family, int count, SysError* error);

  // One reply, if there is one: appends the sockets to *out and sets *family (0: the hello).
  // False with *error: EAGAIN when no reply is waiting, ECONNRESET when the helper is gone,
  // setns/socket with the helper's errno when it failed.
  bool Receive(int* family, std::vector<int>* out, SysError* error);

  static constexpr int kMaxBatch = 32;

 private:
  pid_t pid_ = -1;
  UniqueFd channel_;
};

// One socket of `family` made inside the netns: in this thread with setns() when `userns_fd`
// is -1 (the caller must then be on a thread of its own), else through a one-shot helper.
UniqueFd SocketInNetns(int netns_fd, int userns_fd, int family, SysError* error);

}  // namespace nsproxy
