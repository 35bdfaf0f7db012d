// probe_proxy.cc — see probe_proxy.h.
#include "probe_proxy.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cinttypes>
#include <future>
#include <string>

#include "probe_util.h"

namespace probe {

using nsproxy::Sockmap;
using nsproxy::SockmapCounters;
using nsproxy::SysError;

struct Proxy::Conn {
  enum class Mode { kWaitInsert, kMap, kMigrating, kCopy, kSplice };
  struct End {
    Conn* conn;
    int side;
  };
  End end[2];
  int fd[2] = {-1, -1};  // 0: client side (accepted), 1: upstream
  Mode mode = Mode::kWaitInsert;
  nsproxy::SockmapPair pair;
  bool in_map = false;
  bool eof[2] = {false, false};      // a FIN arrived on fd[side] (sockmap mode)
  bool fin_due[2] = {false, false};  // shutdown(fd[side]) wanted, waiting for its psock to drain
  bool shut[2] = {false, false};     // we shut fd[side] down for writing
  bool waited_fin[2] = {false, false};
  bool waited_migration = false;
  uint64_t insert_at = 0;
  uint64_t migrate_at = 0;  // 0: never
  // Pump state per direction, indexed by the source side.
  int pipe_r[2] = {-1, -1};
  int pipe_w[2] = {-1, -1};
  size_t pipe_cap[2] = {0, 0};
  size_t pipe_fill[2] = {0, 0};
  bool src_eof[2] = {false, false};
  std::string carry[2];  // read from fd[side], not yet written to the other side
  bool watched = false;
  bool dead = false;
};

static const int kListenTag = 1;
static const int kStopTag = 2;

Proxy::Proxy(const ProxyOptions& options, Sockmap* map, int listen_netns, int upstream_netns,
             uint16_t listen_port, uint16_t upstream_port)
    : options_(options),
      map_(map),
      listen_netns_(listen_netns),
      upstream_netns_(upstream_netns),
      listen_port_(listen_port),
      upstream_port_(upstream_port),
      rng_(options.seed) {}

Proxy::~Proxy() { Stop(); }

void Proxy::Start() {
  std::promise<void> ready;
  std::future<void> bound = ready.get_future();
  thread_ = std::thread([this, &ready] {
    if (listen_netns_ >= 0) EnterNetns(listen_netns_);
    listen_fd_ = Listen(listen_port_, &port_);
    SetNonblock(listen_fd_, true);
    if (upstream_netns_ >= 0) EnterNetns(upstream_netns_);
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = const_cast<int*>(&kListenTag);
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
    ev.data.ptr = const_cast<int*>(&kStopTag);
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &ev);
    ready.set_value();
    Run();
  });
  bound.wait();
}

void Proxy::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof(one));
  thread_.join();
  close(stop_fd_);
  close(epoll_fd_);
  close(listen_fd_);
}

void Proxy::Error(int err) {
  stats_.errors++;
  int zero = 0;
  stats_.first_errno.compare_exchange_strong(zero, err);
}

static void Max(std::atomic<uint64_t>* slot, uint64_t value) {
  uint64_t seen = slot->load();
  while (value > seen && !slot->compare_exchange_weak(seen, value)) {
  }
}

void Proxy::Run() {
  epoll_event events[256];
  bool stopping = false;
  while (!stopping) {
    bool busy = false;
    for (Conn* c : conns_) {
      if (c->mode == Conn::Mode::kWaitInsert || c->mode == Conn::Mode::kMigrating || c->fin_due[0] ||
          c->fin_due[1] || c->migrate_at != 0 || (options_.migrate_above != 0 && c->mode == Conn::Mode::kMap)) {
        busy = true;
      }
    }
    int n = epoll_wait(epoll_fd_, events, 256, busy ? 1 : 100);
    for (int i = 0; i < n; i++) {
      void* tag = events[i].data.ptr;
      if (tag == &kStopTag) {
        stopping = true;
      } else if (tag == &kListenTag) {
        Accept();
      } else {
        Conn::End* end = static_cast<Conn::End*>(tag);
        if (!end->conn->dead) OnEvent(end->conn, end->side, events[i].events);
      }
    }
    Tick();
    for (Conn* c : dead_) delete c;
    dead_.clear();
  }
  while (!conns_.empty()) Reset(conns_.front(), 0);
  for (Conn* c : dead_) delete c;
  dead_.clear();
}

void Proxy::Accept() {
  for (;;) {
    int a = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (a < 0) return;
    stats_.accepted++;
    int b = ConnectLoopback(upstream_port_);  // this thread lives in the upstream namespace
    if (b < 0) {
      Error(errno);
      CloseWithReset(a);
      continue;
    }
    SetNonblock(b, true);
    SetNodelay(a);
    SetNodelay(b);
    Conn* c = new Conn();
    c->fd[0] = a;
    c->fd[1] = b;
    for (int side = 0; side < 2; side++) c->end[side] = {c, side};
    conns_.push_back(c);
    if (options_.engine == ProxyOptions::Engine::kSplice) {
      c->mode = Conn::Mode::kSplice;
      SwitchToPump(c);
    } else if (options_.insert_delay_max_us == 0) {
      Insert(c);
    } else {
      c->insert_at = NowNs() + rng_.Below(options_.insert_delay_max_us + 1) * 1000;  // Tick() inserts
    }
  }
}

void Proxy::Watch(Conn* c, uint32_t events) {
  for (int side = 0; side < 2; side++) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = &c->end[side];
    epoll_ctl(epoll_fd_, c->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd[side], &ev);
  }
  c->watched = true;
}

void Proxy::Insert(Conn* c) {
  SysError error;
  if (!map_->Add(c->fd[0], c->fd[1], &c->pair, &error, nullptr, options_.poke)) {
    if (error.err == EOPNOTSUPP) {
      // Only ESTABLISHED sockets may join a sockmap (sock_map_sk_state_allowed): one that already
      // received a FIN (CLOSE_WAIT) is refused. Splice it instead.
      stats_.fallbacks++;
      c->mode = Conn::Mode::kSplice;
      SwitchToPump(c);
      return;
    }
    Error(error.err);
    Reset(c, error.err);
    return;
  }
  c->in_map = true;
  c->mode = Conn::Mode::kMap;
  if (options_.migrate != ProxyOptions::Migrate::kNone && options_.migrate_after_max_us != 0) {
    c->migrate_at = NowNs() + rng_.Below(options_.migrate_after_max_us + 1) * 1000 + 1;
  }
  // Only hang-ups and errors: the program handles data; EPOLLIN would wake us for every segment.
  Watch(c, EPOLLRDHUP | EPOLLET);
}

void Proxy::OnEvent(Conn* c, int side, uint32_t events) {
  if (events & EPOLLERR) {
    int err = SocketError(c->fd[side]);
    if (getenv("PROBE_DEBUG") != nullptr) fprintf(stderr, "EPOLLERR on side %d: %s\n", side, strerror(err));
    Reset(c, err != 0 ? err : EIO);
    return;
  }
  switch (c->mode) {
    case Conn::Mode::kMap:
      if ((events & (EPOLLRDHUP | EPOLLHUP)) && !c->eof[side]) {
        c->eof[side] = true;
        // tcp_fin() woke us before tcp_data_ready() ran the program on the segment's data.
        if (options_.fin == ProxyOptions::Fin::kSafe) Sockmap::Poke(c->fd[side]);
        c->fin_due[side ^ 1] = true;
        TryForwardFin(c);
      }
      break;
    case Conn::Mode::kMigrating:
    case Conn::Mode::kWaitInsert:
      break;  // the pump will find whatever happened
    case Conn::Mode::kCopy:
    case Conn::Mode::kSplice:
      Pump(c);
      break;
  }
}

void Proxy::TryForwardFin(Conn* c) {
  for (int side = 0; side < 2; side++) {
    if (!c->fin_due[side] || c->shut[side]) continue;
    if (options_.fin == ProxyOptions::Fin::kSafe) {
      SysError error;
      int64_t pending = map_->Pending(c->pair, side, &error);
      if (pending < 0) {
        Error(error.err);
        Reset(c, error.err);
        return;
      }
      if (pending > 0) {
        if (!c->waited_fin[side]) stats_.fin_waited++;
        c->waited_fin[side] = true;
        Max(&stats_.fin_max_pending, static_cast<uint64_t>(pending));
        continue;  // Tick() asks again
      }
    }
    shutdown(c->fd[side], SHUT_WR);
    c->shut[side] = true;
    c->fin_due[side] = false;
    stats_.fin_forwarded++;
  }
  if (c->shut[0] && c->shut[1]) Finish(c);
}

void Proxy::StartMigration(Conn* c) {
  stats_.migrations++;
  c->migrate_at = 0;
  switch (options_.migrate) {
    case ProxyOptions::Migrate::kUnsafe:
      map_->Remove(c->pair);
      c->in_map = false;
      c->mode = Conn::Mode::kSplice;
      SwitchToPump(c);
      return;
    case ProxyOptions::Migrate::kStop:
      map_->Stop(c->pair);
      break;
    case ProxyOptions::Migrate::kPause:
      map_->Pause(c->pair);
      break;
    case ProxyOptions::Migrate::kNone:
      return;
  }
  // A softirq may be running the program on one of them right now; the poke waits for it.
  Sockmap::Poke(c->fd[0]);
  Sockmap::Poke(c->fd[1]);
  c->mode = Conn::Mode::kMigrating;
  TryFinishMigration(c);
}

void Proxy::TryFinishMigration(Conn* c) {
  SysError error;
  for (int side = 0; side < 2; side++) {
    int64_t pending = map_->Pending(c->pair, side, &error);
    if (pending < 0) {
      Error(error.err);
      Reset(c, error.err);
      return;
    }
    if (pending > 0) {
      if (!c->waited_migration) stats_.migration_waited++;
      c->waited_migration = true;
      Max(&stats_.migration_max_pending, static_cast<uint64_t>(pending));
      return;
    }
  }
  if (options_.migrate == ProxyOptions::Migrate::kPause) {
    c->mode = Conn::Mode::kCopy;  // recv() reads the psock's ingress_msg first, in order
    SwitchToPump(c);
    return;
  }
  // kStop: bytes the program passed (peer missing) wait in ingress_msg, which splice() cannot see
  // and Remove() would discard: take them with recv() first.
  for (int side = 0; side < 2; side++) {
    SockmapCounters counters;
    if (!map_->Counters(c->pair, side, &counters) || counters.passed == 0) continue;
    stats_.passed_bytes += counters.passed;
    std::string& carry = c->carry[side];
    while (carry.size() < counters.passed) {
      char buf[65536];
      size_t want = std::min(sizeof(buf), static_cast<size_t>(counters.passed - carry.size()));
      ssize_t n = recv(c->fd[side], buf, want, MSG_DONTWAIT);
      if (n <= 0) break;
      carry.append(buf, static_cast<size_t>(n));
    }
  }
  map_->Remove(c->pair);
  c->in_map = false;
  c->mode = Conn::Mode::kSplice;
  SwitchToPump(c);
}

void Proxy::SwitchToPump(Conn* c) {
  Watch(c, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
  Pump(c);
}

void Proxy::Pump(Conn* c) {
  bool progress = true;
  while (progress && !c->dead) {
    progress = PumpDirection(c, 0);
    if (c->dead) return;
    progress = PumpDirection(c, 1) || progress;
  }
  if (!c->dead && c->shut[0] && c->shut[1]) Finish(c);
}

bool Proxy::PumpDirection(Conn* c, int from) {
  int to = from ^ 1;
  int src = c->fd[from];
  int dst = c->fd[to];
  if (c->shut[to]) return false;
  bool progress = false;
  std::string& carry = c->carry[from];
  while (!carry.empty()) {
    ssize_t n = send(dst, carry.data(), carry.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      carry.erase(0, static_cast<size_t>(n));
      progress = true;
    } else if (n < 0 && errno == EAGAIN) {
      return progress;
    } else {
      Reset(c, errno);
      return false;
    }
  }
  if (c->mode == Conn::Mode::kCopy) {
    char buf[65536];
    while (!c->src_eof[from]) {
      ssize_t n = recv(src, buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0) {
        c->src_eof[from] = true;
        break;
      }
      if (n < 0) {
        if (errno == EAGAIN) break;
        Reset(c, errno);
        return false;
      }
      progress = true;
      ssize_t m = send(dst, buf, static_cast<size_t>(n), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (m < 0 && errno != EAGAIN) {
        Reset(c, errno);
        return false;
      }
      if (m < n) {
        carry.assign(buf + (m > 0 ? m : 0), static_cast<size_t>(n - (m > 0 ? m : 0)));
        return true;
      }
    }
  } else {
    if (c->pipe_r[from] < 0) {
      int fds[2];
      PROBE_CHECK(pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0, "pipe2");
      fcntl(fds[0], F_SETPIPE_SZ, 256 * 1024);
      c->pipe_r[from] = fds[0];
      c->pipe_w[from] = fds[1];
      c->pipe_cap[from] = static_cast<size_t>(fcntl(fds[0], F_GETPIPE_SZ));
    }
    for (;;) {
      bool moved = false;
      if (!c->src_eof[from] && c->pipe_fill[from] < c->pipe_cap[from]) {
        ssize_t n = splice(src, nullptr, c->pipe_w[from], nullptr, c->pipe_cap[from] - c->pipe_fill[from],
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          c->pipe_fill[from] += static_cast<size_t>(n);
          moved = true;
        } else if (n == 0) {
          c->src_eof[from] = true;
        } else if (errno != EAGAIN) {
          Reset(c, errno);
          return false;
        }
      }
      if (c->pipe_fill[from] > 0) {
        ssize_t m = splice(c->pipe_r[from], nullptr, dst, nullptr, c->pipe_fill[from],
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (m > 0) {
          c->pipe_fill[from] -= static_cast<size_t>(m);
          moved = true;
        } else if (m < 0 && errno != EAGAIN) {
          Reset(c, errno);
          return false;
        }
      }
      if (!moved) break;
      progress = true;
    }
  }
  if (c->src_eof[from] && c->pipe_fill[from] == 0 && carry.empty() && !c->shut[to]) {
    shutdown(dst, SHUT_WR);
    c->shut[to] = true;
    stats_.fin_forwarded++;
    progress = true;
  }
  return progress;
}

void Proxy::Tick() {
  uint64_t now = NowNs();
  if (options_.sample_pending) {
    uint64_t total = 0;
    for (Conn* c : conns_) {
      SysError error;
      for (int side = 0; side < 2 && c->mode == Conn::Mode::kMap; side++) {
        int64_t pending = map_->Pending(c->pair, side, &error);
        if (pending > 0) total += static_cast<uint64_t>(pending);
      }
    }
    stats_.pending_now = total;
  }
  std::vector<Conn*> live = conns_;
  for (Conn* c : live) {
    if (c->dead) continue;
    switch (c->mode) {
      case Conn::Mode::kWaitInsert:
        if (c->insert_at != 0 && now >= c->insert_at) Insert(c);
        break;
      case Conn::Mode::kMap:
        if (c->fin_due[0] || c->fin_due[1]) {
          TryForwardFin(c);
        } else if (c->migrate_at != 0 && now >= c->migrate_at && !c->eof[0] && !c->eof[1]) {
          StartMigration(c);
        } else if (options_.migrate_above != 0 && !c->eof[0] && !c->eof[1]) {
          SysError error;
          if (map_->Pending(c->pair, 0, &error) > static_cast<int64_t>(options_.migrate_above) ||
              map_->Pending(c->pair, 1, &error) > static_cast<int64_t>(options_.migrate_above)) {
            StartMigration(c);
          }
        }
        break;
      case Conn::Mode::kMigrating:
        TryFinishMigration(c);
        break;
      default:
        break;
    }
  }
}

static void Release(int* fds, int n) {
  for (int i = 0; i < n; i++) {
    if (fds[i] >= 0) close(fds[i]);
    fds[i] = -1;
  }
}

void Proxy::Finish(Conn* c) {
  if (c->in_map) map_->Remove(c->pair);
  Release(c->fd, 2);
  Release(c->pipe_r, 2);
  Release(c->pipe_w, 2);
  c->dead = true;
  stats_.closed_clean++;
  conns_.erase(std::find(conns_.begin(), conns_.end(), c));
  dead_.push_back(c);
}

void Proxy::Reset(Conn* c, int err) {
  if (c->dead) return;
  if (getenv("PROBE_DEBUG") != nullptr) {
    fprintf(stderr, "reset: mode %d err %s eof %d%d shut %d%d due %d%d so_error %d/%d\n", static_cast<int>(c->mode),
            strerror(err), c->eof[0], c->eof[1], c->shut[0], c->shut[1], c->fin_due[0], c->fin_due[1],
            SocketError(c->fd[0]), SocketError(c->fd[1]));
  }
  if (err != 0 && err != ECONNRESET && err != EPIPE) Error(err);
  if (c->in_map) map_->Remove(c->pair);
  for (int side = 0; side < 2; side++) {
    if (c->fd[side] >= 0) CloseWithReset(c->fd[side]);
    c->fd[side] = -1;
  }
  Release(c->pipe_r, 2);
  Release(c->pipe_w, 2);
  c->dead = true;
  stats_.closed_reset++;
  conns_.erase(std::find(conns_.begin(), conns_.end(), c));
  dead_.push_back(c);
}

std::string StatsJson(ProxyStats& s) {
  return Fmt("\"proxy\":{\"accepted\":%" PRIu64 ",\"closed_clean\":%" PRIu64 ",\"closed_reset\":%" PRIu64
             ",\"fin_forwarded\":%" PRIu64 ",\"fin_waited\":%" PRIu64 ",\"fin_max_pending\":%" PRIu64
             ",\"migrations\":%" PRIu64 ",\"migration_waited\":%" PRIu64 ",\"migration_max_pending\":%" PRIu64
             ",\"passed_bytes\":%" PRIu64 ",\"fallbacks\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"first_errno\":\"%s\"}",
             s.accepted.load(), s.closed_clean.load(), s.closed_reset.load(), s.fin_forwarded.load(),
             s.fin_waited.load(), s.fin_max_pending.load(), s.migrations.load(), s.migration_waited.load(),
             s.migration_max_pending.load(), s.passed_bytes.load(), s.fallbacks.load(), s.errors.load(),
             s.first_errno.load() ? strerror(s.first_errno.load()) : "");
}

}  // namespace probe
