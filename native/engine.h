// engine.h — the data plane: worker threads that accept on the host listeners, create a socket
// inside the target network namespace for each connection, and splice bytes both ways.
// No N-API in here: the addon wraps it (addon.cc) and receives events through an EventSink.
//
// Theory of operation
// -------------------
// Threads. The engine owns `threads` workers, each a thread of its own (never libuv's pool) with
// its own epoll set. A worker first calls setns(CLONE_NEWNET) on the target namespace: the switch
// affects that thread only, so every socket() it makes is born inside the target netns and stays
// there for life, while accept(), connect(), splice() and close() work on any socket whatever the
// thread's namespace. Without the privilege to do so (a rootless target), each worker instead
// gets its sockets from a helper process that could enter (upstream.h, ns_helper.h). Listening sockets were made in the host namespace (by systemd, or by the
// main thread) and are simply shared: each worker watches every listener (EPOLLEXCLUSIVE when
// there are several workers, so one wakes per connection). All signals are blocked in workers.
//
// Connection states (connection.h):
//   accepted ──connect() in progress──▶ kConnecting ──EPOLLOUT, SO_ERROR 0──▶ kForwarding
//        │                                   │ SO_ERROR ≠ 0 (ECONNREFUSED…)        │ both directions
//        │ socket()/connect() fails          ▼                                     ▼ shut down
//        └─────────────────────────────▶ closed: client closed, "connect failed" ─ closed (FIN both)
//   kForwarding ── splice error, SO_ERROR, or a reset on either side ──▶ closed with RST both ways
//
// Both sockets are registered once, edge-triggered, for IN|OUT|RDHUP; an event runs
// Connection::Pump() for the directions it concerns (a socket's readability feeds the direction
// it is the source of, its writability the other), which moves what it can until EAGAIN.
//
// Data path of one direction (connection.cc): while its pipe is empty, recv() up to 16 KiB into
// a per-thread buffer and send() it straight on — two calls for a small message, and a short
// read proves the socket drained, unless the event said the peer hung up (then read to EOF, or
// a FIN queued behind the data would never be seen). What send() cannot take is write()n into
// the pipe. A full 16 KiB read marks the direction bulk: splice() socket → pipe → socket,
// zero-copy, until a splice read comes back small. Pipes come from a per-worker pool and go back
// as soon as they are empty.
// EOF read on one side is forwarded as shutdown(SHUT_WR) on the other, once its pipe is empty
// (half-close), and the other direction goes on. A connection is freed only after the current
// epoll batch, so a later event in the same batch never touches freed memory.
//
// Limits. `connections_max` is exact across workers: a slot is reserved (atomic) before accept(),
// and at the limit a worker stops watching its listeners, so clients wait in the kernel backlog
// instead of being accepted and dropped. accept() failing for lack of fds or memory pauses that
// worker's listeners for a moment instead of spinning.
//
// Events. Connection opened/closed (only when `report_connections`), connect and accept
// failures (always) go to the EventSink; it must not block. Counters are atomics for stats().
//
// Control. The control plane (JavaScript) pauses and resumes accepting and moves workers to a
// new namespace when the target restarts, by Worker::Execute(): a command queued to the worker
// and run on its thread between two epoll batches, the caller waiting for the answer.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sockets.h"
#include "syserror.h"
#include "unique_fd.h"

namespace nsproxy {

struct EngineOptions {
  int netns_fd = -1;          // namespace in which upstream sockets are created (not owned)
  int userns_fd = -1;         // its owning user namespace, to go through a helper process
                              // (rootless); -1: workers setns() themselves (not owned)
  int threads = 1;
  int connections_max = 4096;
  size_t pipe_size = 256 * 1024;
  bool report_connections = false;
  bool start_paused = false;  // start without accepting: the target may not be ready yet
};

struct Event {
  enum class Type { kOpened, kClosed, kConnectFailed, kAcceptFailed };
  Type type = Type::kClosed;
  uint64_t id = 0;
  int listener = -1;
  int err = 0;                     // errno of the failure, 0 for a clean end
  const char* syscall = nullptr;   // the call that failed
  uint64_t bytes_in = 0;           // client -> target
  uint64_t bytes_out = 0;          // target -> client
  uint64_t duration_us = 0;
  std::string peer;                // client address (kOpened only)
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Called from worker threads; must return quickly and never wait on JavaScript.
  virtual void Post(Event event) = 0;
};

struct EngineStats {
  uint64_t active = 0;
  uint64_t total = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t connect_failures = 0;
};

struct Listener {
  UniqueFd fd;
  Endpoint target;
  int index = 0;
};

class Worker;

class Engine {
 public:
  Engine(EngineOptions options, EventSink* sink);
  ~Engine();  // stops and joins the workers
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Before Start(): forward what `fd` accepts to `target`. Takes ownership of fd.
  int AddListener(UniqueFd fd, const Endpoint& target);

  // Starts the workers; each has entered the namespace when this returns true.
  bool Start(SysError* error);

  // Stops accepting, closes every connection, joins the workers. Idempotent.
  void Stop();

  // Accept or not (clients wait in the kernel backlog meanwhile). Returns once every worker
  // has applied it. Open connections are not affected.
  bool SetAccepting(bool accepting, SysError* error);

  // Moves every worker into another network namespace (after the target restarted): new
  // connections are made there, open ones stay where they were born. Call while not accepting.
  // `userns_fd` as in EngineOptions.
  bool EnterNetns(int netns_fd, int userns_fd, SysError* error);

  // Changes where a listener's connections go. Only while not accepting: the workers read
  // targets only when they accept, and SetAccepting() orders these writes before their reads.
  void SetTarget(int listener, const Endpoint& target);
  int listener_count() const { return static_cast<int>(listeners_.size()); }

  EngineStats Stats() const;

 private:
  friend class Worker;

  // A slot for one more connection, or false at connections_max.
  bool ReserveSlot();
  void ReleaseSlot();

  EngineOptions options_;
  EventSink* sink_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::unique_ptr<Worker>> workers_;
  bool started_ = false;

  std::atomic<int64_t> active_{0};
  std::atomic<uint64_t> next_id_{1};
  std::atomic<uint64_t> bytes_in_{0};
  std::atomic<uint64_t> bytes_out_{0};
  std::atomic<uint64_t> connect_failures_{0};
};

}  // namespace nsproxy
