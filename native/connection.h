// connection.h — one forwarded TCP connection: the client socket, the upstream socket created
// inside the target netns, and the two directions between them. Knows nothing of epoll: the
// worker calls Pump() for the directions an event concerns, and Pump() moves what it can.
#pragma once

#include <cstdint>

#include "pipe_pool.h"
#include "syserror.h"
#include "unique_fd.h"

namespace nsproxy {

// One direction of a connection: bytes read from `from` go through `pipe` to `to`.
struct Direction {
  int from = -1;       // not owned
  int to = -1;         // not owned
  Pipe pipe;           // borrowed from the pool while bytes are in flight
  bool eof = false;    // `from` said EOF
  bool shut = false;   // EOF forwarded: shutdown(to, SHUT_WR) done (or left to close())
  bool bulk = false;   // large reads lately: splice (zero-copy) rather than recv()+send()
  uint64_t bytes = 0;  // bytes delivered to `to`
};

class Connection {
 public:
  enum class State { kConnecting, kForwarding };

  Connection(uint64_t id, int listener, UniqueFd client, UniqueFd upstream, uint64_t started_us);

  enum Which : unsigned { kUp = 1, kDown = 2, kBoth = 3 };

  // The directions in `which`: move bytes until the kernel says EAGAIN (or a short read says
  // the source is drained — not for the directions in `drain`, whose source hung up, so that a
  // FIN queued behind the data is seen), forward EOF as shutdown(SHUT_WR), return idle pipes to
  // the pool. False, with *error, when the connection cannot go on.
  bool Pump(PipePool* pool, unsigned which, unsigned drain, SysError* error);

  // Both directions have seen EOF and forwarded it: nothing is left to do.
  bool finished() const { return up_.shut && down_.shut; }

  // Ends the connection: pipes back to the pool, sockets closed (with RST when `reset`, so a
  // reset on one side reaches the other instead of looking like a clean end).
  void Close(PipePool* pool, bool reset);

  uint64_t id() const { return id_; }
  int listener() const { return listener_; }
  int client_fd() const { return client_.get(); }
  int upstream_fd() const { return upstream_.get(); }
  uint64_t bytes_in() const { return up_.bytes; }     // client -> target
  uint64_t bytes_out() const { return down_.bytes; }  // target -> client
  uint64_t started_us() const { return started_us_; }

  State state = State::kConnecting;
  bool closed = false;  // closed, waiting to be freed after the current epoll batch

 private:
  uint64_t id_;
  int listener_;
  UniqueFd client_;
  UniqueFd upstream_;
  uint64_t started_us_;
  Direction up_;    // client -> upstream
  Direction down_;  // upstream -> client
};

}  // namespace nsproxy
