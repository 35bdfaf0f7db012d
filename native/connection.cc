// connection.cc — see connection.h.
#include "connection.h"

#include <fcntl.h>
#include <sys/socket.h>

namespace nsproxy {

Connection::Connection(uint64_t id, int listener, UniqueFd client, UniqueFd upstream, uint64_t started_us)
    : id_(id), listener_(listener), client_(std::move(client)), upstream_(std::move(upstream)),
      started_us_(started_us) {
  up_.from = client_.get();
  up_.to = upstream_.get();
  down_.from = upstream_.get();
  down_.to = client_.get();
}

// Moves bytes from d.from to d.to until neither end can make progress. Edge-triggered epoll
// only reports changes, so this must leave each socket either drained (EAGAIN on read, or EOF)
// or blocked (EAGAIN on write) — then the next edge wakes us; a full pipe is drained first.
static bool Shovel(Direction* d, PipePool* pool, SysError* error) {
  for (;;) {
    bool moved = false;
    if (!d->eof && (!d->pipe.valid() || d->pipe.fill < d->pipe.capacity)) {
      if (!d->pipe.valid() && !pool->Get(&d->pipe, error)) return false;
      ssize_t n = splice(d->from, nullptr, d->pipe.write, nullptr, d->pipe.capacity - d->pipe.fill,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d->pipe.fill += n;
        moved = true;
      } else if (n == 0) {
        d->eof = true;
      } else if (errno == EINTR) {
        moved = true;
      } else if (errno != EAGAIN) {
        error->Set("splice");
        return false;
      }
    }
    if (d->pipe.fill > 0) {
      ssize_t n = splice(d->pipe.read, nullptr, d->to, nullptr, d->pipe.fill, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d->pipe.fill -= n;
        d->bytes += n;
        moved = true;
      } else if (n < 0 && errno == EINTR) {
        moved = true;
      } else if (n < 0 && errno != EAGAIN) {
        error->Set("splice");
        return false;
      }
    }
    if (!moved) break;
  }
  if (d->eof && d->pipe.fill == 0 && !d->shut) {
    // Half-close: the reader saw EOF, so the writer's peer gets a FIN, and the other direction
    // keeps flowing (the client that sends, shuts down and then reads its answer).
    if (shutdown(d->to, SHUT_WR) < 0 && errno != ENOTCONN) {
      error->Set("shutdown");
      return false;
    }
    d->shut = true;
  }
  if (d->pipe.valid() && d->pipe.fill == 0) pool->Put(&d->pipe);
  return true;
}

bool Connection::Pump(PipePool* pool, unsigned which, SysError* error) {
  return (!(which & kUp) || Shovel(&up_, pool, error)) && (!(which & kDown) || Shovel(&down_, pool, error));
}

static void SetLingerZero(int fd) {
  linger abort_on_close{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
}

void Connection::Close(PipePool* pool, bool reset) {
  if (reset) {
    SetLingerZero(client_.get());
    SetLingerZero(upstream_.get());
  }
  pool->Put(&up_.pipe);
  pool->Put(&down_.pipe);
  client_.reset();
  upstream_.reset();
  closed = true;
}

}  // namespace nsproxy
