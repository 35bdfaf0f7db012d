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
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
    error->Set("pipe2");
    return false;
  }
  // Larger pipes mean fewer splice calls per megabyte. The kernel may refuse (pipe-max-size,
  // or the per-user pipe quota for unprivileged users); then the default size is fine.
  fcntl(fds[0], F_SETPIPE_SZ, static_cast<int>(size_));
  int capacity = fcntl(fds[0], F_GETPIPE_SZ);
  *pipe = Pipe{fds[0], fds[1], capacity > 0 ? static_cast<size_t>(capacity) : 65536, 0};
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
