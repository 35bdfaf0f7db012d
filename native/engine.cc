// engine.cc — see the theory of operation in engine.h.
#include "engine.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "sockmap.h"
#include "worker.h"

namespace nsproxy {

Engine::Engine(EngineOptions options, EventSink* sink) : options_(options), sink_(sink) {}

Engine::~Engine() { Stop(); }

bool Engine::AddListener(UniqueFd fd, const Endpoint& target, int* index, SysError* error) {
  // systemd passes blocking, inheritable sockets. Workers share listeners, and one may find the
  // backlog already emptied by another: accept() must not block. No child should inherit them.
  int flags = fcntl(fd.get(), F_GETFL);
  if (flags < 0 || fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd.get(), F_SETFD, FD_CLOEXEC) < 0) {
    return error->Set("fcntl");
  }
  // Accepted sockets inherit TCP_NODELAY from their listener. systemd leaves it off unless the
  // unit says NoDelay=yes, and a proxy that lets Nagle hold small replies adds whole delayed-ACK
  // periods to request/response round trips. (Not TCP: a Unix socket has nothing to set.)
  int domain = 0, one = 1;
  socklen_t len = sizeof domain;
  if (getsockopt(fd.get(), SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && (domain == AF_INET || domain == AF_INET6) &&
      setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
    return error->Set("setsockopt");
  }
  auto listener = std::make_unique<Listener>();
  listener->fd = std::move(fd);
  listener->target = target;
  listener->index = static_cast<int>(listeners_.size());
  listeners_.push_back(std::move(listener));
  *index = listeners_.back()->index;
  return true;
}

bool Engine::Start(SysError* error) {
  if (started_) return true;
  engine_ = options_.engine;
  if (engine_ != EngineKind::kSplice) {
    std::string why;
    if (options_.userns_fd >= 0) {
      why = "the target is reached through a helper (rootless): sockmap needs CAP_BPF and CAP_NET_ADMIN";
    } else if (!Sockmap::Available(&why)) {
      // why says what is missing
    }
    if (!why.empty()) {
      engine_ = EngineKind::kSplice;
      engine_note_ = why;
    }
  }
  // All workers exist before any runs: a running worker reads workers_ (ReleaseSlot).
  for (int i = 0; i < options_.threads; i++) workers_.push_back(std::make_unique<Worker>(this, i));
  for (auto& worker : workers_) {
    if (!worker->Start(error)) {
      Stop();
      return false;
    }
  }
  started_ = true;
  return true;
}

void Engine::Stop() {
  for (auto& worker : workers_) worker->RequestStop();
  for (auto& worker : workers_) worker->Join();
  workers_.clear();
}

bool Engine::SetAccepting(bool accepting, SysError* error) {
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    *error = w->Execute([w, accepting] {
      w->SetAccepting(accepting);
      return SysError{};
    });
    if (*error) return false;
  }
  return true;
}

bool Engine::EnterNetns(int netns_fd, int userns_fd, SysError* error) {
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    *error = w->Execute([w, netns_fd, userns_fd] {
      SysError result;
      return w->EnterNetns(netns_fd, userns_fd, &result) ? SysError{} : result;
    });
    if (*error) return false;
  }
  return true;
}

bool Engine::SetTarget(int listener, const Endpoint& target, SysError* error) {
  if (listener < 0 || listener >= listener_count()) return error->Set("set_target", EINVAL);
  listeners_[listener]->target = target;  // for workers started later; read on this thread only
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    *error = w->Execute([w, listener, target] {
      w->SetTarget(listener, target);
      return SysError{};
    });
    if (*error) return false;
  }
  return true;
}

bool Engine::ReserveSlot() {
  if (active_.fetch_add(1) >= options_.connections_max) {
    active_.fetch_sub(1);
    return false;
  }
  return true;
}

// The two sides of a wake-up that must not be lost: a worker parks (flag, then count, then a
// second look at the slots) while another releases a slot (active_, then the count). Both are
// sequentially consistent, so either the releaser sees the parked worker, or the worker's
// second look sees the freed slot.
void Engine::ReleaseSlot() {
  active_.fetch_sub(1);
  if (parked_.load() == 0) return;
  for (auto& worker : workers_) {
    if (worker->parked_at_limit.exchange(false)) {
      parked_.fetch_sub(1);
      worker->WakeFromLimit();
    }
  }
}

bool Engine::ParkAtLimit(Worker* worker) {
  worker->parked_at_limit.store(true);
  parked_.fetch_add(1);
  if (active_.load() < options_.connections_max && worker->parked_at_limit.exchange(false)) {
    parked_.fetch_sub(1);
    return false;
  }
  return true;
}

Event Event::Opened(uint64_t id, int listener, std::string peer) {
  Event event;
  event.type = Type::kOpened;
  event.id = id;
  event.listener = listener;
  event.peer = std::move(peer);
  return event;
}

Event Event::Closed(uint64_t id, int listener, const SysError& error, bool reset, uint64_t bytes_in,
                    uint64_t bytes_out, uint64_t duration_us) {
  Event event;
  event.type = Type::kClosed;
  event.id = id;
  event.listener = listener;
  event.err = error.err;
  event.syscall = error.syscall;
  event.reset = reset;
  event.bytes_in = bytes_in;
  event.bytes_out = bytes_out;
  event.duration_us = duration_us;
  return event;
}

Event Event::ConnectFailed(uint64_t id, int listener, const SysError& error) {
  Event event;
  event.type = Type::kConnectFailed;
  event.id = id;
  event.listener = listener;
  event.err = error.err;
  event.syscall = error.syscall;
  return event;
}

Event Event::AcceptFailed(int listener, const SysError& error, uint64_t count) {
  Event event;
  event.type = Type::kAcceptFailed;
  event.listener = listener;
  event.err = error.err;
  event.syscall = error.syscall;
  event.count = count;
  return event;
}

Event Event::HelperRestarted(int pid, const SysError& why) {
  Event event;
  event.type = Type::kHelperRestarted;
  event.pid = pid;
  event.err = why.err;
  event.syscall = why.syscall;
  return event;
}

Event Event::SockmapLoss(uint64_t id, int listener, uint64_t bytes) {
  Event event;
  event.type = Type::kSockmapLoss;
  event.id = id;
  event.listener = listener;
  event.count = bytes;
  return event;
}

EngineStats Engine::Stats() const {
  EngineStats stats;
  stats.active = static_cast<uint64_t>(active_.load(std::memory_order_relaxed));
  for (const auto& worker : workers_) {
    const Worker::Counters& c = worker->counters();
    stats.total += c.total.load(std::memory_order_relaxed);
    stats.bytes_in += c.bytes_in.load(std::memory_order_relaxed);
    stats.bytes_out += c.bytes_out.load(std::memory_order_relaxed);
    stats.connect_failures += c.connect_failures.load(std::memory_order_relaxed);
    stats.sockmap_active += c.sockmap_active.load(std::memory_order_relaxed);
    stats.sockmap_total += c.sockmap_total.load(std::memory_order_relaxed);
    stats.migrations += c.migrations.load(std::memory_order_relaxed);
    stats.sockmap_losses += c.sockmap_losses.load(std::memory_order_relaxed);
  }
  return stats;
}

}  // namespace nsproxy
