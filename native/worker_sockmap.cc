// worker_sockmap.cc — a worker's connections whose bytes the kernel moves (the sockmap engine;
// native/sockmap.h has the kernel half, native/SOCKMAP.md the facts and experiments behind every
// rule below, engine.h the theory of operation).
//
// A connection joins the maps (Sockmap::Add, which pokes both sockets so bytes that came before
// are redirected too) as soon as it is connected (sockmap), or once it has shown itself
// conversational on splice (auto: ConsiderSockmap()). From then on the worker watches its
// sockets for EPOLLRDHUP only (EPOLLERR and EPOLLHUP come anyway): it never wakes for data.
// What it still does:
//   - a FIN from side s: poke s (the program has then seen every byte before the FIN), wait
//     until the kernel has handed all of them to the other side's TCP send queue
//     (Pending() == 0), then shutdown(other, SHUT_WR). Both FINs forwarded: close.
//   - a reset of side s: wait until what s sent reached the other side (Pending() == 0 and
//     nothing unsent), then reset the other side too, as the splice path does.
//   - every tick (25 ms): one batch read of the program's counters. The kernel gives a psock no
//     backpressure (a receiver that stops reading lets it grow without bound), so a connection
//     whose backlog passes sockmap_backlog_cap leaves sockmap; under kAuto so does one that moved
//     more than sockmap_bulk_bytes in the tick: bulk is cheaper on splice.
//   - leaving (migration): Stop() (the program detaches; new bytes stay in the TCP receive
//     queues, whose windows close: backpressure again), and user space takes over each direction
//     as soon as the kernel has delivered what it redirected in that direction: it never writes
//     to a socket the kernel still writes to, so nothing is lost or reordered, and a direction
//     whose receiver reads goes on while the other waits for a slow one. Once both are over,
//     Remove().
// The waits poll, first after a millisecond, then backing off (WaitForBacklog()); most find the
// backlog empty at once.
//
// A poke is a recv(): on a socket that was reset it reports the reset and the kernel forgets it.
// Every poke's answer is therefore taken as the socket's end (Ended()), as SO_ERROR would be.
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>

#include "worker.h"

namespace nsproxy {

namespace {

// EPOLLERR and EPOLLHUP are reported whether asked for or not.
constexpr uint32_t kSockmapEvents = EPOLLRDHUP | EPOLLET;
constexpr uint32_t kSockmapWaitUs = 1000;          // a backlog waited for: first look after this,
constexpr uint32_t kSockmapWaitMaxUs = 16 * 1000;  //   then twice as long each time, up to this

int SideFd(const Connection* conn, int side) { return side == 0 ? conn->client_fd() : conn->upstream_fd(); }
unsigned DirectionFrom(int side) { return side == 0 ? Connection::kUp : Connection::kDown; }

bool TcpClosed(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) < 0 || info.tcpi_state == TCP_CLOSE;
}

// SIOCINQ, not a peek: a recv() would report (and so consume) a pending reset. Exact here: the
// socket has no psock yet.
bool ReceiveQueueEmpty(int fd) {
  int queued = 0;
  return ioctl(fd, SIOCINQ, &queued) == 0 && queued == 0;
}

bool Unsent(int fd) {
  int unsent = 0;
  return ioctl(fd, SIOCOUTQNSD, &unsent) == 0 && unsent > 0;
}

// Side `side` of the connection ended with `err` (from SO_ERROR or a poke): EPIPE means its FIN
// came first (tcp_reset() in CLOSE_WAIT), any other error is a reset with no FIN.
void Ended(Connection* conn, int side, int err) {
  Connection::SockmapState& m = conn->sockmap;
  if (err == 0 || m.dead[side]) return;
  if (err == EPIPE) m.eof[side] = true;
  m.dead[side] = true;
  m.dead_errno[side] = err;
  conn->SockmapSideDied(side, err);
}

}  // namespace

// Under auto, a connection on splice joins sockmap once it has shown itself conversational
// (engine.h): considered after each pump that moved bytes, decided once.
void Worker::ConsiderSockmap(Connection* conn) {
  Connection::SockmapState& m = conn->sockmap;
  const EngineOptions& options = engine_->options_;
  if (++m.exchanges < options.sockmap_after) return;
  if (conn->bytes_in() + conn->bytes_out() >= options.sockmap_bulk_bytes) {
    m.decided = true;  // bulk from the start: splice suits it
    return;
  }
  if (!conn->Quiet()) return;  // bytes in flight in user space, or an end seen: not now
  // The program takes whole segments (tcp_read_skb ignores how much of the head one recv() took):
  // a partly read segment would be sent again. So both receive queues must be empty now; what
  // arrives from here on comes in whole segments, which Add()'s poke hands to the program.
  if (!ReceiveQueueEmpty(conn->client_fd()) || !ReceiveQueueEmpty(conn->upstream_fd())) return;
  m.decided = true;
  HandToSockmap(conn);
}

bool Worker::HandToSockmap(Connection* conn) {
  // The PROXY header (the only bytes user space may have for the upstream by now) goes first;
  // a fresh connection takes it whole, or the connection stays with user space.
  if (!conn->FlushPrologue()) return false;
  SysError error;
  Connection::SockmapState& m = conn->sockmap;
  int consumed[2] = {0, 0};
  // Refused when a socket already got its FIN (a client that sent and shut down before the
  // target answered): that connection is spliced; nothing else differs.
  if (!sockmap_->Add(conn->client_fd(), conn->upstream_fd(), &m.pair, &error, consumed)) return false;
  m.in_maps = true;
  on_sockmap_.push_back(conn);
  counters_.sockmap_active.fetch_add(1, std::memory_order_relaxed);
  counters_.sockmap_total.fetch_add(1, std::memory_order_relaxed);
  conn->state = Connection::State::kSockmap;
  epoll_event ev{};
  ev.events = kSockmapEvents;
  for (int side = 0; side < 2; side++) {
    ev.data.u64 = PackConnection(conn, side == 1);
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, SideFd(conn, side), &ev) < 0) {
      // Could not stop watching for data: hand the connection back to user space at once.
      StartMigration(conn);
      return true;
    }
  }
  for (int side = 0; side < 2; side++) Ended(conn, side, consumed[side]);
  AdvanceSockmap(conn);
  return true;
}

void Worker::OnSockmapEvent(Connection* conn, bool upstream, uint32_t events) {
  Connection::SockmapState& m = conn->sockmap;
  const int side = upstream ? 1 : 0;
  const int fd = SideFd(conn, side);
  int err = 0;
  if ((events & EPOLLERR) && !m.dead[side]) {
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  }
  // A reset shuts the socket down too (EPOLLRDHUP, EPOLLHUP), but it is no FIN. A FIN wakes
  // epoll before the program has run on the data of its segment; the poke takes the socket lock,
  // so it returns once the program has seen every byte, the reset's included.
  if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !m.dead[side]) {
    int poked = Sockmap::Poke(fd);
    if (err == 0) err = poked;
    if (err == 0 && (events & (EPOLLRDHUP | EPOLLHUP))) m.eof[side] = true;
  }
  Ended(conn, side, err);
  AdvanceSockmap(conn);
}

// Whether everything the program redirected towards `side` is in its TCP send queue (or can never
// be: the socket is gone).
bool Worker::SockmapDelivered(Connection* conn, int side) {
  SysError error;
  int64_t pending = sockmap_->Pending(conn->sockmap.pair, side, &error);
  return pending == 0 || TcpClosed(SideFd(conn, side));
}

void Worker::AdvanceSockmap(Connection* conn) {
  if (conn->state != Connection::State::kSockmap) return TakeOver(conn);
  Connection::SockmapState& m = conn->sockmap;
  // FINs, each once everything the program redirected before it is out of the psock.
  for (int s = 0; s < 2; s++) {
    const int to = 1 - s;
    if (m.eof[s] && !m.shut[to] && !m.dead[to] && SockmapDelivered(conn, to)) {
      if (shutdown(SideFd(conn, to), SHUT_WR) < 0 && errno != ENOTCONN) Ended(conn, to, errno);
      m.shut[to] = true;
    }
  }
  // A reset: what the dead side sent is delivered, then the other side is reset too.
  if (m.dead[0] || m.dead[1]) {
    if (m.dead[0] && m.dead[1]) return Finish(conn, Connection::kBoth);
    const int survivor = m.dead[0] ? 1 : 0;
    const int fd = SideFd(conn, survivor);
    if (SockmapDelivered(conn, survivor) && (TcpClosed(fd) || !Unsent(fd))) {
      return Finish(conn, survivor == 0 ? Connection::kUp : Connection::kDown);
    }
  } else if (m.shut[0] && m.shut[1]) {
    return Finish(conn, 0);  // both FINs forwarded: every byte is in a TCP send queue
  }
  const bool waiting = (m.eof[0] && !m.shut[1]) || (m.eof[1] && !m.shut[0]) || m.dead[0] || m.dead[1];
  if (waiting) WaitForBacklog(conn);
  if (!waiting) sockmap_waiting_.remove(conn);
}

void Worker::StartMigration(Connection* conn) {
  int consumed[2] = {0, 0};
  int64_t lost[2] = {0, 0};
  sockmap_->Stop(conn->sockmap.pair, consumed, lost);
  for (int side = 0; side < 2; side++) Ended(conn, side, consumed[side]);
  counters_.migrations.fetch_add(1, std::memory_order_relaxed);
  if (lost[0] > 0 || lost[1] > 0) {
    // The detach race (Sockmap::Stop()): acknowledged bytes are gone. A reset both ways is the
    // only faithful answer left; a FIN later would pass the hole off as a complete stream.
    counters_.sockmap_losses.fetch_add(1, std::memory_order_relaxed);
    Post(Event::SockmapLoss(conn->id(), conn->listener(), static_cast<uint64_t>(std::max(lost[0], int64_t{0}) + std::max(lost[1], int64_t{0}))));
    for (unsigned d : {Connection::kUp, Connection::kDown}) conn->Release(d);
    return Finish(conn, Connection::kBoth);
  }
  conn->ResumeFromSockmap();  // kForwarding, the directions still to take over held
  epoll_event ev{};
  ev.events = kSocketEvents;
  for (int side = 0; side < 2; side++) {
    ev.data.u64 = PackConnection(conn, side == 1);
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, SideFd(conn, side), &ev) < 0) {
      Ended(conn, side, errno);
      for (unsigned d : {Connection::kUp, Connection::kDown}) conn->Release(d);
      return Finish(conn, Connection::kBoth);
    }
  }
  TakeOver(conn);
}

// Leaving sockmap: each held direction goes to user space once the kernel has delivered what it
// redirected that way; then both sockets leave the maps.
void Worker::TakeOver(Connection* conn) {
  const Connection::SockmapState& m = conn->sockmap;
  unsigned released = 0;
  for (int s = 0; s < 2; s++) {
    const unsigned d = DirectionFrom(s);
    if (conn->held(d) && SockmapDelivered(conn, 1 - s)) {
      conn->Release(d);
      released |= d;
    }
  }
  if (!conn->held(Connection::kUp) && !conn->held(Connection::kDown)) {
    LeaveSockmap(conn);
  } else {
    WaitForBacklog(conn);
  }
  if (released == 0) return;
  // What arrived since the program stopped waits in the receive queues (its edges came while
  // nobody read): read it, to the end of a FIN that came meanwhile.
  const unsigned hung_up = (m.eof[0] ? Connection::kUp : 0u) | (m.eof[1] ? Connection::kDown : 0u);
  const uint64_t in_before = conn->bytes_in(), out_before = conn->bytes_out();
  Connection::Next next = conn->Pump(&pipes_, released, hung_up, released);
  AccountBytes(conn, in_before, out_before);
  Apply(conn, next);
}

// The program's counters into the connection's byte counts, and both sockets out of the maps.
void Worker::LeaveSockmap(Connection* conn) {
  Connection::SockmapState& m = conn->sockmap;
  if (!m.in_maps) return;
  SockmapCounters from_client, from_upstream;
  if (sockmap_->Counters(m.pair, 0, &from_client) && sockmap_->Counters(m.pair, 1, &from_upstream)) {
    const uint64_t in_before = conn->bytes_in(), out_before = conn->bytes_out();
    conn->AddRedirected(from_client.redirected, from_upstream.redirected);
    AccountBytes(conn, in_before, out_before);
  }
  sockmap_->Remove(m.pair);
  m.in_maps = false;
  on_sockmap_.remove(conn);
  sockmap_waiting_.remove(conn);
  counters_.sockmap_active.fetch_sub(1, std::memory_order_relaxed);
}

// There is no wake-up when a psock's worker has sent its backlog, nor when a slow reader lets a
// send queue drain: a connection that waits for either is looked at again after 1 ms, which
// finds most backlogs gone, and then at doubling intervals up to 16 ms, so that many connections
// stalled behind slow readers do not keep a core busy (128 of them took 13 % of one when polled
// every millisecond, 3 % with this back-off).
void Worker::WaitForBacklog(Connection* conn) {
  if (sockmap_waiting_.contains(conn)) return;
  Connection::SockmapState& m = conn->sockmap;
  sockmap_waiting_.push_back(conn);
  m.wait_step_us = kSockmapWaitUs;
  m.wait_due_us = NowUs() + m.wait_step_us;
  if (sockmap_wait_due_ == 0 || m.wait_due_us < sockmap_wait_due_) sockmap_wait_due_ = m.wait_due_us;
}

void Worker::CheckBacklogWaits(Clock now) {
  Clock soonest = 0;
  for (Connection* conn = sockmap_waiting_.front(); conn != nullptr;) {
    Connection* next = sockmap_waiting_.next(conn);
    Connection::SockmapState& m = conn->sockmap;
    if (m.wait_due_us <= now) {
      AdvanceSockmap(conn);  // may finish it, or take it off the list
      if (sockmap_waiting_.contains(conn)) {
        m.wait_step_us = std::min(2 * m.wait_step_us, kSockmapWaitMaxUs);
        m.wait_due_us = now + m.wait_step_us;
      }
    }
    if (sockmap_waiting_.contains(conn) && (soonest == 0 || m.wait_due_us < soonest)) soonest = m.wait_due_us;
    conn = next;
  }
  sockmap_wait_due_ = soonest;
}

void Worker::SockmapTick() {
  const EngineOptions& options = engine_->options_;
  SysError error;
  if (on_sockmap_.empty() || !sockmap_->AllCounters(&sockmap_counters_, &error)) return;
  auto redirected = [this](uint64_t cookie) -> uint64_t {
    auto it = std::lower_bound(sockmap_counters_.begin(), sockmap_counters_.end(), cookie,
                               [](const Sockmap::CookieCounters& c, uint64_t key) { return c.cookie < key; });
    return it != sockmap_counters_.end() && it->cookie == cookie ? it->counters.redirected : 0;
  };
  for (Connection* conn = on_sockmap_.front(); conn != nullptr;) {
    Connection* next = on_sockmap_.next(conn);
    Connection::SockmapState& m = conn->sockmap;
    const uint64_t total = redirected(m.pair.cookie[0]) + redirected(m.pair.cookie[1]);
    const uint64_t moved = total - m.last_redirected;
    m.last_redirected = total;
    if (conn->state == Connection::State::kSockmap && moved > 0) {
      bool leave = options.engine == EngineKind::kAuto && moved >= options.sockmap_bulk_bytes;
      for (int side = 0; side < 2 && !leave; side++) {
        leave = sockmap_->Pending(m.pair, side, &error) > static_cast<int64_t>(options.sockmap_backlog_cap);
      }
      if (leave) StartMigration(conn);
    }
    conn = next;
  }
}

}  // namespace nsproxy
