// worker.cc — see worker.h and the theory of operation in engine.h.
#include "worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>

#include <future>
#include <string>

#include "netns.h"

namespace nsproxy {

namespace {

// epoll_event.data carries a pointer with the kind of object in its low bits (all are 8-aligned).
enum Tag : uintptr_t { kClient = 0, kUpstream = 1, kListener = 2, kWake = 3, kHelper = 4, kTagMask = 7 };

uint64_t Pack(void* ptr, Tag tag) { return reinterpret_cast<uintptr_t>(ptr) | tag; }

uint64_t NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

constexpr int kAcceptBatch = 64;
constexpr uint64_t kAcceptBackoffUs = 100 * 1000;
constexpr size_t kIdlePipes = 64;
constexpr uint32_t kSocketEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

}  // namespace

Worker::Worker(Engine* engine, int index)
    : engine_(engine), index_(index), pipes_(engine->options_.pipe_size, kIdlePipes) {}

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
    ready.set_value(setup_error);
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

  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) {
    error->Set("epoll_create1");
    return false;
  }
  wake_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_.valid()) {
    error->Set("eventfd");
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = Pack(this, kWake);
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) < 0) {
    error->Set("epoll_ctl");
    return false;
  }
  // From here on, every upstream socket is born in the target namespace.
  if (!EnterNetns(engine_->options_.netns_fd, engine_->options_.userns_fd, error)) return false;
  accepting_ = !engine_->options_.start_paused;
  UpdateListenerWatch();
  return true;
}

static void Wake(int fd) {
  uint64_t one = 1;
  ssize_t ignored = write(fd, &one, sizeof one);
  (void)ignored;
}

void Worker::RequestStop() {
  if (!wake_.valid()) return;
  stop_requested_ = true;
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
  ssize_t ignored = read(wake_.get(), &count, sizeof count);  // reset the eventfd
  (void)ignored;
  if (stop_requested_) stopping_ = true;
  std::vector<Command> commands;
  {
    std::lock_guard<std::mutex> lock(commands_mutex_);
    commands.swap(commands_);
  }
  for (Command& command : commands) command.done.set_value(command.run());
}

bool Worker::EnterNetns(int netns_fd, int userns_fd, SysError* error) {
  bool ok = upstream_.Enter(netns_fd, userns_fd, error);
  if (ok) {
    for (auto& listener : engine_->listeners_) upstream_.Prefill(listener->target.family());
  }
  WatchHelper();
  return ok;
}

// A new helper brings a new channel: put it in the epoll set (a closed one left it by itself).
void Worker::WatchHelper() {
  if (upstream_.channel() < 0 || watched_helper_ == upstream_.generation()) return;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = Pack(&upstream_, kHelper);
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, upstream_.channel(), &ev) == 0) watched_helper_ = upstream_.generation();
}

void Worker::SetAccepting(bool accepting) {
  accepting_ = accepting;
  UpdateListenerWatch();
}

// Listeners are watched unless the control plane paused us, the connection limit is reached,
// or accept() ran out of resources a moment ago.
void Worker::UpdateListenerWatch() {
  WatchListeners(accepting_ && !paused_at_limit_ && resume_accept_at_us_ == 0);
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

// Listeners are level-triggered: whatever is left in the backlog wakes us again.
void Worker::WatchListeners(bool watch) {
  if (watch == watching_listeners_) return;
  const bool shared = engine_->options_.threads > 1;
  for (auto& listener : engine_->listeners_) {
    if (watch) {
      epoll_event ev{};
      ev.events = EPOLLIN | (shared ? static_cast<uint32_t>(EPOLLEXCLUSIVE) : 0u);
      ev.data.u64 = Pack(listener.get(), kListener);
      epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listener->fd.get(), &ev);
    } else {
      epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, listener->fd.get(), nullptr);
    }
  }
  watching_listeners_ = watch;
}

void Worker::Loop() {
  epoll_event events[128];
  while (!stopping_) {
    int timeout_ms = -1;
    if (resume_accept_at_us_ != 0) {
      uint64_t now = NowUs();
      timeout_ms = now >= resume_accept_at_us_ ? 0 : static_cast<int>((resume_accept_at_us_ - now) / 1000 + 1);
    }
    int n = epoll_wait(epoll_.get(), events, 128, timeout_ms);
    if (n < 0 && errno != EINTR) {
      Post(Event{Event::Type::kAcceptFailed, 0, -1, errno, "epoll_wait"});
      break;
    }
    for (int i = 0; i < n; i++) {
      void* ptr = reinterpret_cast<void*>(events[i].data.u64 & ~static_cast<uint64_t>(kTagMask));
      switch (static_cast<Tag>(events[i].data.u64 & kTagMask)) {
        case kWake:
          RunCommands();
          break;
        case kListener:
          OnListenerReady(static_cast<Listener*>(ptr));
          break;
        case kHelper:
          upstream_.OnReadable();
          break;
        default:
          break;
        case kClient:
        case kUpstream: {
          auto* conn = static_cast<Connection*>(ptr);
          if (!conn->closed) OnConnectionEvent(conn, (events[i].data.u64 & kTagMask) == kUpstream, events[i].events);
          break;
        }
      }
    }
    for (Connection* conn : closed_) delete conn;
    closed_.clear();
    if (resume_accept_at_us_ != 0 && NowUs() >= resume_accept_at_us_) {
      resume_accept_at_us_ = 0;
      UpdateListenerWatch();
    }
  }
  // Stopping: every connection still open is closed here, on the thread that owns it.
  WatchListeners(false);
  for (Connection* conn : connections_) {
    conn->Close(&pipes_, false);
    engine_->ReleaseSlot();
    delete conn;
  }
  connections_.clear();
  for (Connection* conn : closed_) delete conn;
  closed_.clear();
  {
    std::lock_guard<std::mutex> lock(commands_mutex_);
    exited_ = true;
  }
  RunCommands();  // whoever already waits in Execute() gets an answer
}

void Worker::OnListenerReady(Listener* listener) {
  for (int i = 0; i < kAcceptBatch; i++) {
    if (!engine_->ReserveSlot()) {
      // At --connections-max: leave the rest in the kernel backlog until a slot frees.
      paused_at_limit_ = true;
      UpdateListenerWatch();
      return;
    }
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    int fd = accept4(listener->fd.get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      engine_->ReleaseSlot();
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      Post(Event{Event::Type::kAcceptFailed, 0, listener->index, err, "accept4"});
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        resume_accept_at_us_ = NowUs() + kAcceptBackoffUs;  // out of resources: back off, don't spin
        UpdateListenerWatch();
      }
      return;
    }
    StartConnection(listener, UniqueFd(fd), peer);
  }
}

void Worker::StartConnection(Listener* listener, UniqueFd client, const sockaddr_storage& peer) {
  uint64_t id = engine_->next_id_.fetch_add(1, std::memory_order_relaxed);
  const Endpoint& target = listener->target;
  SysError error;
  UniqueFd upstream(upstream_.Take(target.family(), &error));  // born in the target netns
  WatchHelper();
  if (!error) {
    int one = 1;
    setsockopt(upstream.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(upstream.get(), reinterpret_cast<const sockaddr*>(&target.addr), target.len) < 0 &&
        errno != EINPROGRESS) {
      error.Set("connect");
    }
  }
  auto* conn = new Connection(id, listener->index, std::move(client), std::move(upstream), NowUs());
  connections_.insert(conn);
  if (error) {
    ConnectFailed(conn, error);
    return;
  }
  epoll_event ev{};
  ev.events = kSocketEvents;
  ev.data.u64 = Pack(conn, kClient);
  bool ok = epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, conn->client_fd(), &ev) == 0;
  ev.data.u64 = Pack(conn, kUpstream);
  ok = ok && epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, conn->upstream_fd(), &ev) == 0;
  if (!ok) {
    error.Set("epoll_ctl");
    Finish(conn, error, true);
    return;
  }
  if (engine_->options_.report_connections) {
    Event opened{Event::Type::kOpened, id, listener->index};
    opened.peer = FormatEndpoint(reinterpret_cast<const sockaddr*>(&peer));
    Post(std::move(opened));
  }
}

static int PendingSocketError(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
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

void Worker::OnConnectionEvent(Connection* conn, bool upstream, uint32_t events) {
  SysError error;
  unsigned which = DirectionsFor(upstream, events);
  // A hang-up on a source: read it to the end, a short read does not prove it drained.
  const unsigned source = upstream ? Connection::kDown : Connection::kUp;
  unsigned drain = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ? source : 0u;
  if (conn->state == Connection::State::kConnecting) {
    if (!upstream) {
      // The client may go away before the target answers; anything it sent waits in its socket.
      if ((events & EPOLLERR) && (error.err = PendingSocketError(conn->client_fd())) != 0) {
        error.syscall = "recv";
        Finish(conn, error, true);
      }
      return;
    }
    // A clean EPOLLOUT means connected; only an error or hang-up needs SO_ERROR to say why.
    int err = (events & (EPOLLERR | EPOLLHUP)) ? PendingSocketError(conn->upstream_fd()) : 0;
    if (err != 0) {
      error.Set("connect", err);
      ConnectFailed(conn, error);
      return;
    }
    if (!(events & EPOLLOUT)) return;  // still connecting
    conn->state = Connection::State::kForwarding;
    which = drain = Connection::kBoth;  // the client may have sent (and gone) while we connected
  } else if (events & EPOLLERR) {
    // A reset on a side whose direction is already done would go unnoticed by splice().
    int err = PendingSocketError(upstream ? conn->upstream_fd() : conn->client_fd());
    if (err != 0) {
      error.Set(upstream ? "recv" : "send", err);
      Finish(conn, error, true);
      return;
    }
  }
  uint64_t in_before = conn->bytes_in(), out_before = conn->bytes_out();
  bool ok = conn->Pump(&pipes_, which, drain, &error);
  AccountBytes(conn, in_before, out_before);
  if (!ok) {
    Finish(conn, error, true);
  } else if (conn->finished()) {
    Finish(conn, error, false);
  }
}

void Worker::AccountBytes(Connection* conn, uint64_t in_before, uint64_t out_before) {
  if (conn->bytes_in() != in_before) engine_->bytes_in_.fetch_add(conn->bytes_in() - in_before, std::memory_order_relaxed);
  if (conn->bytes_out() != out_before) engine_->bytes_out_.fetch_add(conn->bytes_out() - out_before, std::memory_order_relaxed);
}

void Worker::ConnectFailed(Connection* conn, const SysError& error) {
  engine_->connect_failures_.fetch_add(1, std::memory_order_relaxed);
  Post(Event{Event::Type::kConnectFailed, conn->id(), conn->listener(), error.err, error.syscall});
  // The client gets a prompt, clean EOF: nothing was forwarded, nothing to reset.
  Finish(conn, SysError{}, false);
}

void Worker::Finish(Connection* conn, const SysError& error, bool reset) {
  conn->Close(&pipes_, reset);
  connections_.erase(conn);
  closed_.push_back(conn);
  engine_->ReleaseSlot();
  if (engine_->options_.report_connections) {
    Event closed{Event::Type::kClosed, conn->id(), conn->listener(), error.err, error.syscall};
    closed.bytes_in = conn->bytes_in();
    closed.bytes_out = conn->bytes_out();
    closed.duration_us = NowUs() - conn->started_us();
    Post(std::move(closed));
  }
  if (paused_at_limit_) {
    paused_at_limit_ = false;
    UpdateListenerWatch();
  }
}

void Worker::Post(Event event) { engine_->sink_->Post(std::move(event)); }

}  // namespace nsproxy
