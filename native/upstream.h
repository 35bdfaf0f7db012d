// upstream.h — where a worker gets the sockets it connects to the target with, all born in the
// target's network namespace:
//   thread mode (root): the worker thread itself entered the netns; socket() is enough.
//   helper mode (rootless): an NsHelper process makes them; the worker keeps a small pool per
//     address family, refilled asynchronously in batches, so a new connection normally takes a
//     ready socket and never waits for a round trip to the helper.
// The worker takes a socket *before* it accepts a client, so that a client is accepted only
// when it can be served: with the pool empty or fds exhausted, clients wait in the backlog.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <vector>

#include "ns_helper.h"
#include "syserror.h"
#include "unique_fd.h"

namespace nsproxy {

class UpstreamSockets {
 public:
  UpstreamSockets() = default;
  ~UpstreamSockets();
  UpstreamSockets(const UpstreamSockets&) = delete;
  UpstreamSockets& operator=(const UpstreamSockets&) = delete;

  // Makes sockets in `netns_fd` from now on: with setns() on the calling thread when
  // `userns_fd` is -1, else through a new helper that joins `userns_fd` first (waited for, up
  // to a few seconds: call it before serving). Sockets made for a previous namespace are
  // dropped. The fds are duplicated, not kept.
  bool Enter(int netns_fd, int userns_fd, SysError* error);

  // Asks the helper for a pool's worth of sockets of `family`, unless enough are there or asked.
  void Prefill(int family);

  // A new non-blocking TCP socket of `family` inside the namespace. Invalid with *error on
  // failure; in helper mode EAGAIN means "none ready yet, asked for": channel() becomes
  // readable when they arrive.
  UniqueFd Take(int family, SysError* error);
  // A socket taken but not used (accept() found nobody): kept for the next client.
  void Return(int family, UniqueFd fd);

  // Helper mode: the channel to watch for readability (-1 in thread mode or with no helper).
  // `generation` changes whenever a new helper (and so a new channel) took over.
  int channel() const { return helper_.running() ? helper_.channel() : -1; }
  uint64_t generation() const { return generation_; }

  // What OnReadable() found.
  struct News {
    bool sockets = false;      // sockets arrived: a pool that was empty may not be any more
    bool helper_died = false;  // the helper is gone (killed, or it failed to make sockets)
    SysError failure;          // why, when it said so
    pid_t died_pid = 0;
  };
  News OnReadable();

  // Helper mode, after helper_died: forks a new helper (its hello is read by OnReadable()).
  bool Respawn(SysError* error);
  bool helper_mode() const { return helper_mode_; }

  static constexpr int kBatch = 16;  // sockets per request to the helper
  static constexpr int kLow = 8;     // ask for more when a pool falls below this

 private:
  struct Pool {
    std::vector<int> fds;
    bool requested = false;
  };
  Pool& PoolFor(int family) { return family == AF_INET6 ? v6_ : v4_; }
  void Drop();

  bool helper_mode_ = false;
  uint64_t generation_ = 0;
  UniqueFd netns_;
  UniqueFd userns_;
  NsHelper helper_;
  Pool v4_;
  Pool v6_;
};

}  // namespace nsproxy
