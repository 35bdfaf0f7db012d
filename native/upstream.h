// upstream.h — where a worker gets the sockets it connects to the target with, all born in the
// target's network namespace:
//   thread mode (root): the worker thread itself entered the netns; socket() is enough.
//   helper mode (rootless): an NsHelper process makes them; the worker keeps a small pool per
//     address family, refilled asynchronously in batches, so a new connection normally takes a
//     ready socket and never waits for a round trip to the helper.
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
  // `userns_fd` is -1, else through a new helper that joins `userns_fd` first. Sockets made for
  // a previous namespace are dropped. The fds are duplicated, not kept.
  bool Enter(int netns_fd, int userns_fd, SysError* error);

  // Fetches a pool's worth of sockets of `family` ahead of the first connection.
  void Prefill(int family);

  // A new non-blocking TCP socket of `family` inside the namespace, or -1 with *error.
  int Take(int family, SysError* error);

  // Helper mode: the channel to watch for readability (-1 in thread mode), and what to do then.
  // `generation` changes whenever a new helper (and so a new channel) took over.
  int channel() const { return helper_.running() ? helper_.channel() : -1; }
  uint64_t generation() const { return generation_; }
  void OnReadable();

  static constexpr int kBatch = 16;  // sockets per request to the helper
  static constexpr int kLow = 8;     // ask for more when a pool falls below this

 private:
  struct Pool {
    std::vector<int> fds;
    bool requested = false;
  };
  Pool& PoolFor(int family) { return family == AF_INET6 ? v6_ : v4_; }
  void Drop();
  bool Respawn(SysError* error);
  void Accept(int family, std::vector<int>* fds);

  bool Spawn(SysError* error);

  bool helper_mode_ = false;
  uint64_t generation_ = 0;
  UniqueFd netns_;
  UniqueFd userns_;
  NsHelper helper_;
  Pool v4_;
  Pool v6_;
};

}  // namespace nsproxy
