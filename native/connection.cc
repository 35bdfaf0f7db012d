// connection.cc — see connection.h, and the rules for ending a connection in engine.h.
#include "connection.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>

namespace nsproxy {

void Spill::Keep(const char* data, size_t n) {
  if (!data_) data_ = std::make_unique<char[]>(kCopyChunk);
  memcpy(data_.get(), data, n);
  begin_ = 0;
  end_ = n;
}

ssize_t Spill::SendTo(int fd, SysError* error) {
  ssize_t n = send(fd, data_.get() + begin_, end_ - begin_, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return 0;
    error->Set("send");
    return -1;
  }
  begin_ += n;
  if (empty()) Clear();
  return n;
}

void Spill::Clear() {
  data_.reset();
  begin_ = end_ = 0;
}

Connection::Connection(uint64_t id, int listener, UniqueFd client, UniqueFd upstream, uint64_t started_us)
    : id_(id), listener_(listener), client_(std::move(client)), upstream_(std::move(upstream)),
      started_us_(started_us) {
  up_.from = client_.get();
  up_.to = upstream_.get();
  down_.from = upstream_.get();
  down_.to = client_.get();
}

namespace {

// The copy path's buffer, one per worker thread: small messages (PostgreSQL's, say) go
// recv() -> send() through it, cheaper than two splice() calls through a pipe, and a short
// recv() tells that the socket is drained, which saves the EAGAIN round.
thread_local char t_copy[kCopyChunk];

unsigned Other(unsigned side) { return side ^ Connection::kBoth; }

}  // namespace

void Connection::Died(unsigned side, const char* call, int err) {
  if (dead_ & side) return;
  dead_ |= side;
  dead_errno_[side] = err;
  if (!error_) error_.Set(call, err);
}

// Moves bytes from d->from to d->to until neither end can make progress. Edge-triggered epoll
// only reports changes, so this must leave each socket either drained (EAGAIN, a short read,
// EOF or an error on read) or blocked (EAGAIN on write), so that the next edge wakes us.
// `side`: the socket d reads from (kUp: the client, kDown: the upstream).
void Connection::Shovel(Direction* d, unsigned side, PipePool* pool, bool drain) {
  if (d->held) return;  // the kernel still writes to d->to (worker_sockmap.cc)
  const unsigned to_side = Other(side);
  if (dead_ & to_side) {
    // Nothing can reach a socket that was reset: what is held for it is dropped, and what its
    // peer still sends is discarded as it comes (MSG_TRUNC: no copy), as the reset would have
    // done directly, instead of piling up in kernel memory while the dead side's own stream
    // is delivered (the connection ends then; see Decide()).
    d->spill.Clear();
    pool->Put(&d->pipe);
    while (!d->ended()) {
      ssize_t n = recv(d->from, nullptr, 1 << 30, MSG_TRUNC | MSG_DONTWAIT);
      if (n > 0 || (n < 0 && errno == EINTR)) continue;
      if (n == 0) d->source = Direction::Source::kEof;
      if (n < 0 && errno != EAGAIN) {
        d->source = Direction::Source::kFailed;
        Died(side, "recv", errno);
      }
      break;
    }
    return;
  }
  SysError error;
  // A read that returns EOF from a socket that already failed with a reset is not a FIN: the
  // reset consumed the error (recv or send reported it once) and left the socket shut down.
  auto source_ended = [&](Direction::Source how, const char* call, int err) {
    if (how == Direction::Source::kEof && (dead_ & side) && dead_errno_[side] != EPIPE) how = Direction::Source::kFailed;
    d->source = how;
    if (how == Direction::Source::kFailed) Died(side, call, err ? err : dead_errno_[side]);
  };
  for (;;) {
    if (!d->spill.empty()) {
      ssize_t n = d->spill.SendTo(d->to, &error);
      if (n < 0) return Died(to_side, error.syscall, error.err);
      d->bytes += n;
      if (!d->spill.empty()) break;  // the destination is full: its EPOLLOUT brings us back
    }
    if (!d->ended() && d->pipe.fill == 0 && !d->bulk) {
      // Copy path: one recv() + send(); what send() does not take waits in the spill.
      ssize_t n = recv(d->from, t_copy, kCopyChunk, MSG_DONTWAIT);
      if (n == 0) {
        source_ended(Direction::Source::kEof, "recv", 0);
        break;
      }
      if (n < 0) {
        if (errno == EAGAIN) break;
        if (errno == EINTR) continue;
        source_ended(Direction::Source::kFailed, "recv", errno);
        break;
      }
      ssize_t sent = send(d->to, t_copy, n, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (sent < 0) {
        if (errno != EAGAIN && errno != EINTR) return Died(to_side, "send", errno);
        sent = 0;
      }
      d->bytes += sent;
      if (sent < n) {
        d->spill.Keep(t_copy + sent, n - sent);
        break;
      }
      if (static_cast<size_t>(n) == kCopyChunk) {
        d->bulk = true;  // a full buffer: more is coming, splice it
        continue;
      }
      if (!drain) break;  // a short read: drained (a hang-up would have been reported with it)
      continue;
    }
    bool moved = false;
    if (!d->ended() && d->spill.empty() && (!d->pipe.valid() || d->pipe.fill < d->pipe.capacity)) {
      if (!d->pipe.valid() && !pool->Get(&d->pipe, &error)) {
        d->bulk = false;  // no pipe to be had (out of fds): the copy path works without one
        continue;
      }
      ssize_t n = splice(d->from, nullptr, d->pipe.write, nullptr, d->pipe.capacity - d->pipe.fill,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d->pipe.fill += n;
        if (static_cast<size_t>(n) < kCopyChunk) d->bulk = false;
        moved = true;
      } else if (n == 0) {
        source_ended(Direction::Source::kEof, "splice", 0);
      } else if (errno == EINTR) {
        moved = true;
      } else if (errno != EAGAIN) {
        source_ended(Direction::Source::kFailed, "splice", errno);
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
        return Died(to_side, "splice", errno);
      }
    }
    if (!moved) break;
  }
  if (d->source == Direction::Source::kEof && d->empty() && !d->shut) {
    // Half-close: the reader saw EOF, so the writer's peer gets a FIN, and the other direction
    // keeps flowing (the client that sends, shuts down and then reads its answer). When the
    // other direction is over too and nothing failed, close() is next and sends that FIN itself.
    const bool close_next = (side == kUp ? down_.shut : up_.shut) && dead_ == 0;
    if (!close_next && shutdown(d->to, SHUT_WR) < 0 && errno != ENOTCONN) return Died(to_side, "shutdown", errno);
    d->shut = true;
  }
  if (d->pipe.valid() && d->pipe.fill == 0) pool->Put(&d->pipe);
}

Connection::Next Connection::Pump(PipePool* pool, unsigned which, unsigned hung_up, unsigned drain) {
  const unsigned dead_before = dead_;
  // A hang-up is reported once (edge-triggered), perhaps while the destination was full and
  // the source could not be read to its end: remember it, or the FIN behind the data of a
  // later short read would never be seen.
  hung_up_ |= hung_up;
  drain |= hung_up_;
  if (which & kUp) Shovel(&up_, kUp, pool, drain & kUp);
  if (which & kDown) Shovel(&down_, kDown, pool, drain & kDown);
  if (dead_ != dead_before) {
    // A side was found reset: read what it sent before the reset to the end (recv() gives those
    // bytes, then the error), and stop feeding it. Both directions are concerned.
    Shovel(&up_, kUp, pool, true);
    Shovel(&down_, kDown, pool, true);
  }
  return Decide();
}

Connection::Next Connection::Decide() {
  if (dead_ != 0) {
    // A side was reset (or failed). What it sent before that is delivered to the other side,
    // FIN included, before the other side is reset too: the peer of a direct connection would
    // have received those bytes, and our kernel has acknowledged them to the sender.
    for (unsigned side : {kUp, kDown}) {
      if ((dead_ & side) && !(dead_ & Other(side)) && !SourceOf(side).delivered()) return Next::kWait;
    }
    return dead_ == kBoth || ResetSideFlushed() ? Next::kReset : Next::kFlushReset;
  }
  return up_.shut && down_.shut ? Next::kClose : Next::kWait;
}

void Connection::OnSocketError(bool upstream) {
  const unsigned side = upstream ? kDown : kUp;
  if (!SourceOf(side).ended() || (dead_ & side)) return;  // recv() will report it, after the data
  int err = 0;
  socklen_t len = sizeof err;
  int fd = upstream ? upstream_.get() : client_.get();
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err != 0) Died(side, "recv", err);
}

unsigned Connection::reset_mask() const { return dead_ == kBoth ? kBoth : Other(dead_) & kBoth; }

bool Connection::ResetSideFlushed() const {
  const unsigned survivor = reset_mask();
  if (survivor == kBoth) return true;
  const int fd = survivor == kUp ? client_.get() : upstream_.get();
  // A socket that was reset meanwhile sends nothing more (and its counters are stale).
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) < 0 || info.tcpi_state == TCP_CLOSE) return true;
  int unsent = 0;
  return ioctl(fd, SIOCOUTQNSD, &unsent) < 0 || unsent == 0;
}

bool Connection::FlushPrologue() {
  SysError error;
  if (!up_.spill.empty()) {
    ssize_t n = up_.spill.SendTo(up_.to, &error);
    if (n > 0) up_.bytes += n;
  }
  return up_.spill.empty();
}

void Connection::ResumeFromSockmap() {
  // A FIN already forwarded (side 1 - s shut because side s sent one) is done in both terms: the
  // direction read its EOF and passed it on. A FIN seen but not forwarded yet is found again by
  // the direction's next read. Every other direction waits for the kernel's backlog.
  for (int s = 0; s < 2; s++) {
    Direction& d = s == 0 ? up_ : down_;
    if (sockmap.eof[s] && sockmap.shut[1 - s]) {
      d.source = Direction::Source::kEof;
      d.shut = true;
    } else {
      d.held = true;
    }
  }
  state = State::kForwarding;
}

static void SetLingerZero(int fd) {
  linger abort_on_close{1, 0};
  // Best effort: if it fails, close() still ends the connection, with a FIN.
  (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
}

void Connection::Close(PipePool* pool, unsigned reset_mask) {
  if (reset_mask & kUp) SetLingerZero(client_.get());
  if (reset_mask & kDown) SetLingerZero(upstream_.get());
  pool->Put(&up_.pipe);
  pool->Put(&down_.pipe);
  up_.spill.Clear();
  down_.spill.Clear();
  client_.reset();
  upstream_.reset();
  closed = true;
}

}  // namespace nsproxy
