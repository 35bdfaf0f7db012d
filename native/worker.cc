// worker.cc — see worker.h and the theory of operation in engine.h.
#include "worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>

#include <algorithm>
#include <string>

#include "netns.h"

namespace nsproxy {

namespace {

// epoll_event.data carries a pointer with the kind of object in its low bits (all are 8-aligned).
enum Tag : uintptr_t { kClient = 0, kUpstream = 1, kListener = 2, kWake = 3, kHelper = 4, kTagMask = 7 };

uint64_t Pack(void* ptr, Tag tag) { return reinterpret_cast<uintptr_t>(ptr) | tag; }

}  // namespace

uint64_t PackConnection(Connection* conn, bool upstream) { return Pack(conn, upstream ? kUpstream : kClient); }

uint64_t NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

namespace {

constexpr int kAcceptBatch = 64;
constexpr uint64_t kAcceptBackoffUs = 100 * 1000;
constexpr uint64_t kAcceptReportUs = 1000 * 1000;   // accept failures: one event a second at most
constexpr uint64_t kRespawnBackoffUs = 1000 * 1000;
constexpr uint64_t kFlushCheckUs = 10 * 1000;       // kResetting connections are checked this often
constexpr uint64_t kSockmapTickUs = 25 * 1000;      // sockmap connections' counters, this often
constexpr size_t kIdlePipes = 64;
// Unprivileged users share a pipe quota (fs.pipe-user-pages-soft): keep few idle pipes.
constexpr size_t kIdlePipesUnprivileged = 8;

// accept4() errors that concern only the connection being accepted (accept(2), "Error
// handling"): the next one may be fine. Anything else means the listener or the process is in
// trouble, and retrying at once would spin.
bool PerConnectionAcceptError(int err) {
  switch (err) {
    case EINTR: case ECONNABORTED: case EPROTO: case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN:
    case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH: case EPERM:
      return true;
    default:
      return false;
  }
}

bool SetInt(int fd, int level, int name, int value, SysError* error) {
  return setsockopt(fd, level, name, &value, sizeof value) == 0 || error->Set("setsockopt");
}

}  // namespace

Worker::Worker(Engine* engine, int index)
    : engine_(engine),
      index_(index),
      pipes_(engine->options_.pipe_size, engine->options_.userns_fd >= 0 ? kIdlePipesUnprivileged : kIdlePipes) {}

Worker::~Worker() {
  RequestStop();
  Join();
}

bool Worker::Start(SysError* error) {
  std::promise<SysError> ready;
  std::future<SysError> result = ready.get_future();
  // The thread owns the promise: set_value() may still touch it after get() has returned here.
  thread_ = std::thread([this, ready = std::move(ready)]() mutable {
    SysError setup_error;
    bool ok = Setup(&setup_error);
    ready.set_value(ok ? SysError{} : setup_error);  // only a failure's error counts
    if (ok) Loop();
  });
  *error = result.get();
  if (*error) {
    thread_.join();
    return false;
  }
  return true;
}

bool Worker::Setup(SysError* error) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);  // signals are the main thread's business
  std::string name = "nsproxy-eng" + std::to_string(index_);
  prctl(PR_SET_NAME, name.c_str());
  for (auto& listener : engine_->listeners_) targets_.push_back(listener->target);

  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) return error->Set("epoll_create1");
  wake_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_.valid()) return error->Set("eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = Pack(this, kWake);
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) < 0) return error->Set("epoll_ctl");
  // From here on, every upstream socket is born in the target namespace.
  if (!EnterNetns(engine_->options_.netns_fd, engine_->options_.userns_fd, error)) return false;
  if (engine_->engine() != EngineKind::kSplice) {
    // Each worker has maps and a program of its own: its connections' counters come back in one
    // batch, and no worker touches another's sockets.
    const uint64_t sockets = std::min<uint64_t>(2 * static_cast<uint64_t>(engine_->options_.connections_max) + 16, 1 << 17);
    sockmap_ = Sockmap::Create(static_cast<uint32_t>(sockets), error);
    if (!sockmap_) return false;
  }
  accepting_ = !engine_->options_.start_paused;
  UpdateListenerWatch();
  return true;
}

static void Wake(int fd) {
  uint64_t one = 1;
  // Fails only when the counter would overflow: then a wake-up is pending anyway.
  (void)!write(fd, &one, sizeof one);
}

void Worker::RequestStop() {
  if (!wake_.valid()) return;
  stop_requested_ = true;
  Wake(wake_.get());
}

void Worker::WakeFromLimit() {
  limit_woken_ = true;
  Wake(wake_.get());
}

SysError Worker::Execute(std::function<SysError()> command) {
  std::future<SysError> result;
  {
    std::lock_guard<std::mutex> lock(commands_mutex_);
    if (exited_) {
      SysError gone;
      gone.Set("execute", ESRCH);
      return gone;
    }
    commands_.push_back(Command{std::move(command), {}});
    result = commands_.back().done.get_future();
  }
  Wake(wake_.get());
  return result.get();
}

void Worker::RunCommands() {
  uint64_t count;
  (void)!read(wake_.get(), &count, sizeof count);  // reset the eventfd; EAGAIN: already reset
  if (stop_requested_) stopping_ = true;
  if (limit_woken_.exchange(false) && paused_at_limit_) {
    paused_at_limit_ = false;
    UpdateListenerWatch();
  }
  std::vector<Command> commands;
  {
    std::lock_guard<std::mutex> lock(commands_mutex_);
    commands.swap(commands_);
  }
  for (Command& command : commands) command.done.set_value(command.run());
}

bool Worker::EnterNetns(int netns_fd, int userns_fd, SysError* error) {
  waiting_for_sockets_ = false;
  respawn_helper_at_ = 0;
  bool ok = upstream_.Enter(netns_fd, userns_fd, error);
  if (ok) {
    for (const Endpoint& target : targets_) upstream_.Prefill(target.family());
  }
  WatchHelper();
  UpdateListenerWatch();
  return ok;
}

void Worker::SetTarget(int index, const Endpoint& target) {
  if (index >= 0 && static_cast<size_t>(index) < targets_.size()) targets_[index] = target;
  upstream_.Prefill(target.family());
}

// A new helper brings a new channel: put it in the epoll set (a closed one left it by itself).
void Worker::WatchHelper() {
  if (upstream_.channel() < 0 || watched_helper_ == upstream_.generation()) return;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = Pack(&upstream_, kHelper);
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, upstream_.channel(), &ev) == 0) {
    watched_helper_ = upstream_.generation();
  } else {
    SysError error;
    error.Set("epoll_ctl");
    Post(Event::HelperRestarted(0, error));
  }
}

void Worker::OnHelperReadable() {
  UpstreamSockets::News news = upstream_.OnReadable();
  if (news.sockets && waiting_for_sockets_) {
    waiting_for_sockets_ = false;
    UpdateListenerWatch();
  }
  if (!news.helper_died) return;
  // Killed, or it could not make a socket: a new one takes over. Sockets already made stay
  // good (a socket keeps its namespace), and so do the connections using them.
  Post(Event::HelperRestarted(news.died_pid, news.failure));
  RespawnHelper();
}

void Worker::RespawnHelper() {
  SysError error;
  if (!upstream_.Respawn(&error)) {
    Post(Event::HelperRestarted(0, error));
    respawn_helper_at_ = NowUs() + kRespawnBackoffUs;
    return;
  }
  respawn_helper_at_ = 0;
  WatchHelper();
  for (const Endpoint& target : targets_) upstream_.Prefill(target.family());
}

void Worker::SetAccepting(bool accepting) {
  accepting_ = accepting;
  UpdateListenerWatch();
}

// Listeners are watched unless the control plane paused us, the connection limit is reached,
// accept() ran out of resources a moment ago, or (helper mode) no upstream socket is ready.
void Worker::UpdateListenerWatch() {
  WatchListeners(accepting_ && !paused_at_limit_ && resume_accept_at_ == 0 && !waiting_for_sockets_);
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

// Listeners are level-triggered: whatever is left in the backlog wakes us again.
void Worker::WatchListeners(bool watch) {
  if (watch == watching_listeners_) return;
  const bool shared = engine_->options_.threads > 1;
  for (auto& listener : engine_->listeners_) {
    epoll_event ev{};
    ev.events = EPOLLIN | (shared ? static_cast<uint32_t>(EPOLLEXCLUSIVE) : 0u);
    ev.data.u64 = Pack(listener.get(), kListener);
    int rc = watch ? epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listener->fd.get(), &ev)
                   : epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, listener->fd.get(), nullptr);
    if (rc < 0 && errno != EEXIST && errno != ENOENT) {
      SysError error;
      error.Set("epoll_ctl");
      AcceptFailed(listener.get(), error);
    }
  }
  watching_listeners_ = watch;
}

Worker::Clock Worker::ConnectDeadline(const Connection* conn) const {
  return conn->started_us() + static_cast<Clock>(engine_->options_.connect_timeout_ms) * 1000;
}

int Worker::NextTimeoutMs(Clock now) const {
  Clock next = 0;
  auto sooner = [&next](Clock at) { if (at != 0 && (next == 0 || at < next)) next = at; };
  sooner(resume_accept_at_);
  sooner(respawn_helper_at_);
  if (!connecting_.empty()) sooner(ConnectDeadline(connecting_.front()));
  if (!flushing_.empty()) sooner(now + kFlushCheckUs);
  if (!sockmap_waiting_.empty()) sooner(sockmap_wait_due_ != 0 ? sockmap_wait_due_ : now);
  if (!on_sockmap_.empty()) sooner(sockmap_tick_at_ != 0 ? sockmap_tick_at_ : now + kSockmapTickUs);
  if (next == 0) return -1;
  return next <= now ? 0 : static_cast<int>((next - now + 999) / 1000);
}

void Worker::OnTimers(Clock now) {
  if (resume_accept_at_ != 0 && now >= resume_accept_at_) {
    resume_accept_at_ = 0;
    UpdateListenerWatch();
  }
  if (respawn_helper_at_ != 0 && now >= respawn_helper_at_) RespawnHelper();
  while (!connecting_.empty() && ConnectDeadline(connecting_.front()) <= now) {
    SysError timeout;
    timeout.Set("connect", ETIMEDOUT);
    ConnectFailed(connecting_.front(), timeout);  // takes it off the list
  }
  for (Connection* conn = flushing_.front(); conn != nullptr;) {
    Connection* next = flushing_.next(conn);
    if (conn->ResetSideFlushed() && !conn->held(Connection::kUp) && !conn->held(Connection::kDown)) {
      Finish(conn, conn->reset_mask());  // takes it off the list
    }
    conn = next;
  }
  CheckBacklogWaits(now);
  if (on_sockmap_.empty()) {
    sockmap_tick_at_ = 0;
  } else if (sockmap_tick_at_ == 0) {
    sockmap_tick_at_ = now + kSockmapTickUs;
  } else if (now >= sockmap_tick_at_) {
    sockmap_tick_at_ = now + kSockmapTickUs;
    SockmapTick();
  }
}

void Worker::Loop() {
  epoll_event events[128];
  while (!stopping_) {
    int n = epoll_wait(epoll_.get(), events, 128, NextTimeoutMs(NowUs()));
    if (n < 0 && errno != EINTR) {
      SysError error;
      error.Set("epoll_wait");
      Post(Event::AcceptFailed(-1, error, 1));
      break;
    }
    for (int i = 0; i < n; i++) {
      void* ptr = reinterpret_cast<void*>(events[i].data.u64 & ~static_cast<uint64_t>(kTagMask));
      switch (static_cast<Tag>(events[i].data.u64 & kTagMask)) {
        case kWake:
          RunCommands();
          break;
        case kListener:
          // Not after a pause earlier in this batch (a command, the limit, a backoff).
          if (watching_listeners_) OnListenerReady(static_cast<Listener*>(ptr));
          break;
        case kHelper:
          OnHelperReadable();
          break;
        case kClient:
        case kUpstream: {
          auto* conn = static_cast<Connection*>(ptr);
          if (!conn->closed) OnConnectionEvent(conn, (events[i].data.u64 & kTagMask) == kUpstream, events[i].events);
          break;
        }
        default:
          break;
      }
    }
    closed_.clear();
    OnTimers(NowUs());
  }
  // Stopping: every connection still open is cut, on the thread that owns it, with a reset:
  // a transfer that did not finish must not look complete to either end.
  WatchListeners(false);
  while (!connections_.empty()) Finish(connections_.front(), Connection::kBoth);
  closed_.clear();
  {
    std::lock_guard<std::mutex> lock(commands_mutex_);
    exited_ = true;
  }
  RunCommands();  // whoever already waits in Execute() gets an answer
}

void Worker::AcceptFailed(Listener* listener, const SysError& error) {
  accept_errors_unreported_++;
  Clock now = NowUs();
  if (now - accept_error_posted_at_ < kAcceptReportUs && accept_error_posted_at_ != 0) return;
  accept_error_posted_at_ = now;
  Post(Event::AcceptFailed(listener ? listener->index : -1, error, accept_errors_unreported_));
  accept_errors_unreported_ = 0;
}

void Worker::OnListenerReady(Listener* listener) {
  const int family = targets_[listener->index].family();
  for (int i = 0; i < kAcceptBatch; i++) {
    if (!engine_->ReserveSlot()) {
      // At --connections-max: leave the rest in the kernel backlog until a slot frees, here
      // or in another worker (Engine::ReleaseSlot wakes us).
      paused_at_limit_ = engine_->ParkAtLimit(this);
      UpdateListenerWatch();
      if (paused_at_limit_) return;
      continue;
    }
    // The upstream socket first: a client is accepted only when it can be served.
    SysError error;
    UniqueFd upstream = upstream_.Take(family, &error);
    if (!upstream.valid()) {
      engine_->ReleaseSlot();
      if (error.err == EAGAIN) {
        waiting_for_sockets_ = true;  // the helper's next batch is on its way
      } else {
        AcceptFailed(listener, error);
        resume_accept_at_ = NowUs() + kAcceptBackoffUs;  // out of fds, most likely: back off
      }
      UpdateListenerWatch();
      return;
    }
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    UniqueFd client(accept4(listener->fd.get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!client.valid()) {
      int err = errno;
      engine_->ReleaseSlot();
      upstream_.Return(family, std::move(upstream));
      if (err == EAGAIN) return;
      if (PerConnectionAcceptError(err)) continue;
      error.Set("accept4", err);
      AcceptFailed(listener, error);
      resume_accept_at_ = NowUs() + kAcceptBackoffUs;  // never spin on a listener in trouble
      UpdateListenerWatch();
      return;
    }
    StartConnection(listener, std::move(client), std::move(upstream), peer);
  }
}

void Worker::StartConnection(Listener* listener, UniqueFd client, UniqueFd upstream, const sockaddr_storage& peer) {
  const EngineOptions& options = engine_->options_;
  const uint64_t id = engine_->next_id_.fetch_add(1, std::memory_order_relaxed);
  counters_.total.fetch_add(1, std::memory_order_relaxed);
  const Endpoint& target = targets_[listener->index];
  const int client_fd = client.get(), upstream_fd = upstream.get();
  Connection* conn = std::make_unique<Connection>(id, listener->index, std::move(client), std::move(upstream), NowUs()).release();
  connections_.push_back(conn);  // owned by the list until Finish()
  if (options.report_connections) {
    Post(Event::Opened(id, listener->index, FormatEndpoint(reinterpret_cast<const sockaddr*>(&peer))));
  }

  SysError error;
  bool ok = SetInt(upstream_fd, IPPROTO_TCP, TCP_NODELAY, 1, &error);
  if (ok && options.proxy_protocol != ProxyProtocol::kNone) {
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    ok = getsockname(client_fd, reinterpret_cast<sockaddr*>(&local), &len) == 0 || error.Set("getsockname");
    if (ok) conn->Prepend(ProxyHeader(options.proxy_protocol, peer, local));
  }
  if (ok && options.keepalive_idle_s > 0) {
    // Both legs, when both are TCP: a client on a Unix socket (a .socket unit's ListenStream=
    // /path) has no keepalive, and needs none: it cannot vanish without its kernel saying so.
    const bool tcp_client = peer.ss_family == AF_INET || peer.ss_family == AF_INET6;
    for (int fd : {tcp_client ? client_fd : -1, upstream_fd}) {
      if (fd < 0) continue;
      ok = ok && SetInt(fd, SOL_SOCKET, SO_KEEPALIVE, 1, &error) &&
           SetInt(fd, IPPROTO_TCP, TCP_KEEPIDLE, options.keepalive_idle_s, &error) &&
           SetInt(fd, IPPROTO_TCP, TCP_KEEPINTVL, options.keepalive_interval_s, &error) &&
           SetInt(fd, IPPROTO_TCP, TCP_KEEPCNT, options.keepalive_count, &error);
    }
  }
  if (ok && connect(upstream_fd, reinterpret_cast<const sockaddr*>(&target.addr), target.len) < 0 && errno != EINPROGRESS) {
    ok = error.Set("connect");
  }
  if (!ok) return ConnectFailed(conn, error);

  epoll_event ev{};
  ev.events = kSocketEvents;
  ev.data.u64 = PackConnection(conn, false);
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, client_fd, &ev) < 0) {
    error.Set("epoll_ctl");
    return ConnectFailed(conn, error);
  }
  ev.data.u64 = PackConnection(conn, true);
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, upstream_fd, &ev) < 0) {
    error.Set("epoll_ctl");
    return ConnectFailed(conn, error);
  }
  if (options.connect_timeout_ms > 0) connecting_.push_back(conn);
}

// Which directions an edge on one socket can move: its readability feeds the direction it is
// the source of, its writability the one it is the destination of; errors and hang-ups both.
static unsigned DirectionsFor(bool upstream, uint32_t events) {
  const bool readable = events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
  const bool writable = events & (EPOLLOUT | EPOLLHUP | EPOLLERR);
  const unsigned source = upstream ? Connection::kDown : Connection::kUp;
  const unsigned destination = upstream ? Connection::kUp : Connection::kDown;
  return (readable ? source : 0) | (writable ? destination : 0);
}

static int PendingSocketError(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

void Worker::OnConnectionEvent(Connection* conn, bool upstream, uint32_t events) {
  if (conn->state == Connection::State::kSockmap) return OnSockmapEvent(conn, upstream, events);
  unsigned which = DirectionsFor(upstream, events);
  // EPOLLOUT comes with nearly every readable edge (the socket has room): it concerns the
  // direction writing to this socket only when that direction holds bytes it could not write;
  // otherwise its source would be read just to find EAGAIN.
  const unsigned destination = upstream ? Connection::kUp : Connection::kDown;
  if ((which & destination) && !(events & (EPOLLHUP | EPOLLERR)) && conn->state == Connection::State::kForwarding &&
      !conn->Waiting(destination)) {
    which &= ~destination;
  }
  // A hang-up on a source: read it to the end, a short read does not prove it drained.
  const unsigned source = upstream ? Connection::kDown : Connection::kUp;
  const unsigned hung_up = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ? source : 0u;
  unsigned drain = 0;
  switch (conn->state) {
    case Connection::State::kConnecting: {
      // Until the target answers, the client's bytes (and its FIN) wait in its socket; a
      // hang-up reported meanwhile is remembered (edges come once).
      if (!upstream) return conn->NoteHangUp(hung_up);
      // A clean EPOLLOUT means connected; only an error or hang-up needs SO_ERROR to say why.
      int err = (events & (EPOLLERR | EPOLLHUP)) ? PendingSocketError(conn->upstream_fd()) : 0;
      if (err == ECONNRESET || err == EPIPE) {
        // Not a failed connect: the target accepted, and maybe wrote, then reset before this
        // event was handled. What it wrote is still to be read and delivered.
        conn->UpstreamReset(err);
      } else if (err != 0) {
        SysError error;
        error.Set("connect", err);
        return ConnectFailed(conn, error);
      } else if (!(events & EPOLLOUT)) {
        return;  // still connecting
      }
      connecting_.remove(conn);
      // Under sockmap the kernel moves the bytes from now on, if it can; else (and under auto,
      // until the connection has shown itself conversational) user space does.
      if (sockmap_ && conn->intact() && (engine_->options_.engine == EngineKind::kSockmap || engine_->options_.sockmap_after == 0)) {
        conn->sockmap.decided = true;
        if (HandToSockmap(conn)) return;
      }
      conn->state = Connection::State::kForwarding;
      which = drain = Connection::kBoth;  // the client may have sent (and shut down) meanwhile:
                                          // its edges came while we were not reading
      break;
    }
    case Connection::State::kResetting:
      // Only the survivor's last bytes are moving; Pump() says when they are out. An error on
      // the survivor ends the wait: nothing more will reach its peer.
      if (events & EPOLLERR) return Finish(conn, Connection::kBoth);
      break;
    case Connection::State::kForwarding:
      if (events & EPOLLERR) conn->OnSocketError(upstream);
      break;
    case Connection::State::kSockmap:
      break;  // OnSockmapEvent() above
  }
  uint64_t in_before = conn->bytes_in(), out_before = conn->bytes_out();
  Connection::Next next = conn->Pump(&pipes_, which, hung_up, drain);
  const bool moved = conn->bytes_in() != in_before || conn->bytes_out() != out_before;
  AccountBytes(conn, in_before, out_before);
  if (next == Connection::Next::kWait && moved && sockmap_ && !conn->sockmap.decided) return ConsiderSockmap(conn);
  Apply(conn, next);
}

void Worker::Apply(Connection* conn, Connection::Next next) {
  switch (next) {
    case Connection::Next::kWait:
      break;
    case Connection::Next::kClose:
      Finish(conn, 0);
      break;
    case Connection::Next::kReset:
      Finish(conn, conn->reset_mask());
      break;
    case Connection::Next::kFlushReset:
      if (conn->state != Connection::State::kResetting) {
        conn->state = Connection::State::kResetting;
        flushing_.push_back(conn);  // off connecting_ already: it connected
      }
      break;
  }
}

void Worker::AccountBytes(Connection* conn, uint64_t in_before, uint64_t out_before) {
  if (conn->bytes_in() != in_before) counters_.bytes_in.fetch_add(conn->bytes_in() - in_before, std::memory_order_relaxed);
  if (conn->bytes_out() != out_before) counters_.bytes_out.fetch_add(conn->bytes_out() - out_before, std::memory_order_relaxed);
}

void Worker::ConnectFailed(Connection* conn, const SysError& error) {
  counters_.connect_failures.fetch_add(1, std::memory_order_relaxed);
  Post(Event::ConnectFailed(conn->id(), conn->listener(), error));
  // A proxy that accepted cannot refuse any more; the nearest to "connection refused" is a
  // reset before any byte, which the client's next read or write reports as an error.
  Finish(conn, Connection::kUp);
}

void Worker::Finish(Connection* conn, unsigned reset_mask) {
  // Out of the epoll set before close(): a duplicate of the fd in a forked child (a helper,
  // a probe, libuv's fork+exec) would otherwise keep it there, and its events would come for
  // a connection that is gone.
  for (int fd : {conn->client_fd(), conn->upstream_fd()}) {
    if (fd >= 0) (void)epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);  // ENOENT: never added
  }
  const bool reset = reset_mask != 0 || conn->error();
  conn->Close(&pipes_, reset_mask);
  LeaveSockmap(conn);  // if it is in the maps
  connecting_.remove(conn);
  flushing_.remove(conn);
  connections_.remove(conn);
  closed_.emplace_back(conn);  // the list's ownership, taken back
  engine_->ReleaseSlot();
  if (engine_->options_.report_connections) {
    Post(Event::Closed(conn->id(), conn->listener(), conn->error(), reset, conn->bytes_in(), conn->bytes_out(),
                       NowUs() - conn->started_us()));
  }
}

void Worker::Post(Event event) { engine_->sink_->Post(std::move(event)); }

}  // namespace nsproxy
