// pipe_pool.cc — see pipe_pool.h.
#include "pipe_pool.h"

#include <fcntl.h>
#include <unistd.h>

namespace nsproxy {

static void ClosePipe(Pipe* pipe) {
  if (pipe->read >= 0) close(pipe->read);
  if (pipe->write >= 0) close(pipe->write);
  *pipe = Pipe{};
}

PipePool::PipePool(size_t size, size_t keep) : size_(size), keep_(keep) {}

PipePool::~PipePool() {
  for (Pipe& pipe : free_) ClosePipe(&pipe);
}

bool PipePool::Get(Pipe* pipe, SysError* error) {
  if (!free_.empty()) {
    *pipe = free_.back();
    free_.pop_back();
    return true;
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) return error->Set("pipe2");
  // Larger pipes mean fewer splice calls per megabyte. The kernel may refuse (EPERM above
  // pipe-max-size, or past the per-user quota fs.pipe-user-pages-soft, where an unprivileged
  // user's new pipes even shrink to 8 KiB): then the pipe keeps what it has, and its real
  // capacity, asked for below, is what splice() is given.
  (void)fcntl(fds[0], F_SETPIPE_SZ, static_cast<int>(size_));
  int capacity = fcntl(fds[0], F_GETPIPE_SZ);
  if (capacity <= 0) {
    error->Set("fcntl");
    close(fds[0]);
    close(fds[1]);
    return false;
  }
  pipe->read = fds[0];
  pipe->write = fds[1];
  pipe->capacity = static_cast<size_t>(capacity);
  pipe->fill = 0;
  return true;
}

void PipePool::Put(Pipe* pipe) {
  if (!pipe->valid()) return;
  if (pipe->fill == 0 && free_.size() < keep_) {
    free_.push_back(*pipe);
    *pipe = Pipe{};
  } else {
    ClosePipe(pipe);
  }
}

}  // namespace nsproxy
