// engine.cc — see the theory of operation in engine.h.
#include "engine.h"

#include <fcntl.h>

#include "worker.h"

namespace nsproxy {

Engine::Engine(EngineOptions options, EventSink* sink) : options_(options), sink_(sink) {}

Engine::~Engine() { Stop(); }

int Engine::AddListener(UniqueFd fd, const Endpoint& target) {
  // systemd passes blocking, inheritable sockets. Workers share listeners, and one may find the
  // backlog already emptied by another: accept() must not block. No child should inherit them.
  fcntl(fd.get(), F_SETFL, fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
  fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
  auto listener = std::make_unique<Listener>();
  listener->fd = std::move(fd);
  listener->target = target;
  listener->index = static_cast<int>(listeners_.size());
  listeners_.push_back(std::move(listener));
  return listeners_.back()->index;
}

bool Engine::Start(SysError* error) {
  if (started_) return true;
  for (int i = 0; i < options_.threads; i++) {
    auto worker = std::make_unique<Worker>(this, i);
    if (!worker->Start(error)) {
      Stop();
      return false;
    }
    workers_.push_back(std::move(worker));
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
      w->EnterNetns(netns_fd, userns_fd, &result);
      return result;
    });
    if (*error) return false;
  }
  return true;
}

void Engine::SetTarget(int listener, const Endpoint& target) {
  if (listener >= 0 && listener < listener_count()) listeners_[listener]->target = target;
}

bool Engine::ReserveSlot() {
  if (active_.fetch_add(1, std::memory_order_acq_rel) >= options_.connections_max) {
    active_.fetch_sub(1, std::memory_order_acq_rel);
    return false;
  }
  return true;
}

void Engine::ReleaseSlot() { active_.fetch_sub(1, std::memory_order_acq_rel); }

EngineStats Engine::Stats() const {
  EngineStats stats;
  stats.active = static_cast<uint64_t>(active_.load(std::memory_order_relaxed));
  stats.total = next_id_.load(std::memory_order_relaxed) - 1;
  stats.bytes_in = bytes_in_.load(std::memory_order_relaxed);
  stats.bytes_out = bytes_out_.load(std::memory_order_relaxed);
  stats.connect_failures = connect_failures_.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace nsproxy
