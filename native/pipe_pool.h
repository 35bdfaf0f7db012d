// pipe_pool.h — a per-worker pool of pipes for splice(2).
// A connection holds a pipe only while bytes of one direction are in flight, so an idle
// connection costs its two sockets and nothing more (socket-proxyd keeps 4 pipe fds per connection).
#pragma once

#include <cstddef>
#include <vector>

#include "syserror.h"

namespace nsproxy {

struct Pipe {
  int read = -1;
  int write = -1;
  size_t capacity = 0;  // what F_GETPIPE_SZ says
  size_t fill = 0;      // bytes spliced in and not yet out

  bool valid() const { return read >= 0; }
};

class PipePool {
 public:
  // `size` is what we ask F_SETPIPE_SZ for; `keep` how many empty pipes to keep for reuse.
  PipePool(size_t size, size_t keep);
  ~PipePool();
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;

  // Hands out an empty pipe (reused or new). False with *error if none could be made.
  bool Get(Pipe* pipe, SysError* error);

  // Takes a pipe back. An empty one is kept (up to `keep`); one still holding bytes is closed,
  // because those bytes belong to a connection that is gone.
  void Put(Pipe* pipe);

  size_t idle() const { return free_.size(); }

 private:
  size_t size_;
  size_t keep_;
  std::vector<Pipe> free_;
};

}  // namespace nsproxy
