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

namespace {

// Reads of up to this size go through a buffer, recv() then send(), instead of through the pipe
// with two splice() calls: for the small messages of request/response protocols (PostgreSQL) the
// copy is cheaper than the pipe, and a short recv() tells that the socket is drained, which saves
// the EAGAIN round. A read that fills the buffer marks the direction bulk: from then on splice,
// zero-copy, until a splice read comes back smaller than this again.
constexpr size_t kCopyChunk = 16 * 1024;
thread_local char t_copy[kCopyChunk];

enum class Step { kAgain, kDone, kFailed };

// One recv()+send() while the pipe is empty. What the destination cannot take now is parked in
// the pipe (write() to an empty pipe of >= 16 KiB always takes it), and splice goes on from there.
// `drain`: the source reported a hang-up, so a FIN may wait behind the data: read on to EOF.
Step CopyOnce(Direction* d, PipePool* pool, bool drain, SysError* error) {
  ssize_t n = recv(d->from, t_copy, kCopyChunk, MSG_DONTWAIT);
  if (n == 0) {
    d->eof = true;
    return Step::kDone;
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Step::kDone;
    if (errno == EINTR) return Step::kAgain;
    error->Set("recv");
    return Step::kFailed;
  }
  ssize_t sent = send(d->to, t_copy, n, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sent < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      error->Set("send");
      return Step::kFailed;
    }
    sent = 0;
  }
  d->bytes += sent;
  if (sent < n) {
    if (!d->pipe.valid() && !pool->Get(&d->pipe, error)) return Step::kFailed;
    if (write(d->pipe.write, t_copy + sent, n - sent) != n - sent) {
      error->Set("write");
      return Step::kFailed;
    }
    d->pipe.fill = n - sent;
    return Step::kDone;  // the destination is full: its EPOLLOUT brings us back
  }
  if (static_cast<size_t>(n) == kCopyChunk) {
    d->bulk = true;
    return Step::kAgain;
  }
  return drain ? Step::kAgain : Step::kDone;
}

// Moves bytes from d.from to d.to until neither end can make progress. Edge-triggered epoll
// only reports changes, so this must leave each socket either drained (EAGAIN or a short read
// on read, or EOF) or blocked (EAGAIN on write) — then the next edge wakes us; a full pipe is
// drained first. `other_shut`: the other direction is over, so the last FIN goes with close().
bool Shovel(Direction* d, PipePool* pool, bool drain, bool other_shut, SysError* error) {
  for (;;) {
    if (!d->eof && d->pipe.fill == 0 && !d->bulk) {
      Step step = CopyOnce(d, pool, drain, error);
      if (step == Step::kFailed) return false;
      if (step == Step::kDone) break;
      continue;
    }
    bool moved = false;
    if (!d->eof && (!d->pipe.valid() || d->pipe.fill < d->pipe.capacity)) {
      if (!d->pipe.valid() && !pool->Get(&d->pipe, error)) return false;
      ssize_t n = splice(d->from, nullptr, d->pipe.write, nullptr, d->pipe.capacity - d->pipe.fill,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d->pipe.fill += n;
        if (static_cast<size_t>(n) < kCopyChunk) d->bulk = false;
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
    // keeps flowing (the client that sends, shuts down and then reads its answer). When the
    // other direction is over too, close() is next and sends that FIN itself.
    if (!other_shut && shutdown(d->to, SHUT_WR) < 0 && errno != ENOTCONN) {
      error->Set("shutdown");
      return false;
    }
    d->shut = true;
  }
  if (d->pipe.valid() && d->pipe.fill == 0) pool->Put(&d->pipe);
  return true;
}

}  // namespace

bool Connection::Pump(PipePool* pool, unsigned which, unsigned drain, SysError* error) {
  return (!(which & kUp) || Shovel(&up_, pool, drain & kUp, down_.shut, error)) &&
         (!(which & kDown) || Shovel(&down_, pool, drain & kDown, up_.shut, error));
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
