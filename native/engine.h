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
// gets its sockets from a helper process that could enter (upstream.h, ns_helper.h), through a
// non-blocking channel: a worker never waits for it. Listening sockets were made in the host
// namespace (by systemd, or by the main thread) and are shared: each worker watches every
// listener (EPOLLEXCLUSIVE when there are several workers, so one wakes per connection). All
// signals are blocked in workers. Nothing a worker uses is written by another thread except
// through Worker::Execute() (a command run on the worker's own thread) and a few atomics.
//
// Accepting. A worker takes a connection slot (connections_max is exact across workers) and an
// upstream socket *before* accept(): a client is accepted only when it can be served. At the
// limit, with no upstream socket to be had (fds exhausted; the helper's next batch on its way),
// or when accept() fails for a reason that concerns the listener rather than one connection, the
// worker stops watching its listeners (clients wait in the kernel backlog) until a slot frees in
// any worker (Engine::ReleaseSlot wakes it), the batch arrives, or a 100 ms back-off ends.
// Failures are reported at most once a second, with how many there were.
//
// Connection states (connection.h):
//   accepted ──connect() in progress──▶ kConnecting ──EPOLLOUT──▶ kForwarding ──▶ closed
//                   │ refused, unreachable, or no answer in connect_timeout_ms
//                   └──▶ closed: the client gets an RST (the nearest a proxy can come to refused)
//   kForwarding ── a side reset, its last bytes not yet on the wire ──▶ kResetting ──▶ closed
//
// Both sockets are registered once, edge-triggered, for IN|OUT|RDHUP; an event runs
// Connection::Pump() for the directions it concerns (a socket's readability feeds the direction
// it is the source of, its writability the other), which moves what it can until EAGAIN.
//
// Data path of one direction (connection.cc): while no pipe holds bytes, recv() up to 16 KiB into
// a per-thread buffer and send() it straight on; what send() does not take waits in a small
// per-direction spill buffer and goes before anything read later. A short read proves the
// socket drained, unless its peer hung up (in this event or an earlier one: a hang-up is reported
// once, and remembered), when the FIN may queue behind the data: then it reads on to EOF. A full
// 16 KiB read marks the direction bulk: splice() socket → pipe → socket, zero-copy, until a
// splice read comes back small. Pipes come from a per-worker pool, hold what they hold (their
// real capacity, which an unprivileged user's quota may cut to 8 KiB), and go back only empty.
//
// How a connection ends — as it would have without nsproxy:
//   EOF on one side is forwarded as shutdown(SHUT_WR) on the other once everything read before
//   it was delivered (half-close); the other direction goes on. Both FINs forwarded: close().
//   A reset of one side (recv() or send() fails, or SO_ERROR when its stream had already ended)
//   makes it dead. Linux keeps the bytes that arrived before an RST readable, so the dead side's
//   stream is read to its end and delivered to the other side — our kernel acknowledged them, a
//   direct peer would have had them — FIN included when it came first; then the other side is
//   reset too (SO_LINGER 0), once its last bytes are on the wire (SIOCOUTQNSD, checked every
//   10 ms in kResetting). Bytes for the dead side are dropped, and what its peer still sends is
//   discarded as it arrives (recv MSG_TRUNC) rather than left to pile up in kernel memory.
//   An EOF read from a socket whose reset a send() already reported (and so consumed) is the
//   reset's, not a FIN, unless the reset came after a FIN (EPIPE).
//   Engine::Stop() resets every connection still open: a transfer cut short must not look
//   complete. TCP keepalive (keepalive_*) finds peers that vanished without a word.
// A connection is removed from epoll before its fds close (a forked child may hold duplicates,
// which would keep them in the set), and freed only after the current epoll batch, so a later
// event in the same batch never touches freed memory.
//
// Two engines. The data path above is the splice engine: user space moves every byte, which
// costs two wake-ups per round trip. The sockmap engine (worker_sockmap.cc, sockmap.h; root only)
// puts both sockets of a connection into BPF maps whose verdict program redirects each segment
// straight out of the peer socket: the worker sleeps through the data and wakes only for FINs,
// resets and a 25 ms tick. It is the cheaper path for request/response, and the dearer one for
// bulk (a kernel worker sends every redirected segment, with no backpressure at all), and joining
// and leaving the maps costs about as much kernel work as a short connection's whole life. So
// under `auto` a connection starts on splice and joins sockmap only once it has shown itself
// conversational: sockmap_after exchanges (pumps that moved bytes) while still under
// sockmap_bulk_bytes in all, with nothing in flight in user space and both receive queues empty
// (so the program never sees a partly read segment); and one that moves more than
// sockmap_bulk_bytes in a tick there goes back to splice, for good. Under either, one whose
// kernel backlog passes sockmap_backlog_cap moves to splice. Moving out is safe because user
// space takes each direction over only once the kernel has delivered what it redirected that way.
// Without the privilege, on an old kernel, or for a rootless target (the helper path), both fall
// back to splice (Engine::engine_note() says why). A connection that cannot join the maps (its
// client's FIN came before the target answered) is spliced.
//
// Events. Connection opened/closed (only when `report_connections`), connect and accept
// failures and helper restarts (always) go to the EventSink; it must not block. Each worker keeps
// its own counters (atomics on a cache line of their own); Stats() adds them up.
//
// Control. The control plane (JavaScript) pauses and resumes accepting, changes targets and
// moves workers to a new namespace when the target restarts, by Worker::Execute(): a command
// queued to the worker and run on its thread when it handles its wake-up event (in the middle of
// a batch of events, possibly), the caller waiting for the answer. So a listener event later in
// the batch that ran a pause is ignored, and no target is read while another thread writes it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy_header.h"
#include "sockets.h"
#include "syserror.h"
#include "unique_fd.h"

namespace nsproxy {

// How connections move their bytes (the theory of operation above, "Two engines").
enum class EngineKind {
  kSplice,   // user space: recv()+send() for small messages, splice() for bulk; works everywhere
  kSockmap,  // the kernel: a BPF verdict program redirects each segment (root only); a
             // connection whose kernel backlog passes sockmap_backlog_cap moves to splice
  kAuto,     // splice first; a conversational connection joins sockmap (sockmap_after), and one
             // that turns bulk there (sockmap_bulk_bytes in a tick) moves back to splice
};

struct EngineOptions {
  int netns_fd = -1;          // namespace in which upstream sockets are created (not owned)
  int userns_fd = -1;         // its owning user namespace, to go through a helper process
                              // (rootless); -1: workers setns() themselves (not owned)
  int threads = 1;
  int connections_max = 4096;
  size_t pipe_size = 256 * 1024;
  int connect_timeout_ms = 10000;  // a target that does not answer a SYN: 0 = the kernel's (~2 min)
  int keepalive_idle_s = 0;        // TCP keepalive on both legs: idle time before probes, 0 = off
  int keepalive_interval_s = 0;    // between probes
  int keepalive_count = 0;         // unanswered probes before the connection is reset
  ProxyProtocol proxy_protocol = ProxyProtocol::kNone;  // a header for the service, before any byte
  EngineKind engine = EngineKind::kSplice;
  uint64_t sockmap_bulk_bytes = 256 * 1024;       // auto: bytes in one tick that make a connection bulk
  uint32_t sockmap_after = 4;                      // auto: exchanges before a connection joins sockmap
  uint64_t sockmap_backlog_cap = 4 * 1024 * 1024;  // bytes the kernel may hold for a slow receiver
  bool report_connections = false;
  bool start_paused = false;  // start without accepting: the target may not be ready yet
};

struct Event {
  enum class Type { kOpened, kClosed, kConnectFailed, kAcceptFailed, kHelperRestarted, kSockmapLoss };
  Type type = Type::kClosed;
  uint64_t id = 0;
  int listener = -1;
  int err = 0;                     // errno of the failure, 0 for a clean end
  const char* syscall = nullptr;   // the call that failed
  uint64_t bytes_in = 0;           // client -> target
  uint64_t bytes_out = 0;          // target -> client
  uint64_t duration_us = 0;
  uint64_t count = 0;              // accept failures: how many since the last event (rate-limited);
                                   // sockmap losses: the bytes lost
  int pid = 0;                     // helper restarts: the helper that died
  bool reset = false;              // closed: ended with a reset rather than two FINs
  std::string peer;                // client address (kOpened only)

  static Event Opened(uint64_t id, int listener, std::string peer);
  static Event Closed(uint64_t id, int listener, const SysError& error, bool reset, uint64_t bytes_in,
                      uint64_t bytes_out, uint64_t duration_us);
  static Event ConnectFailed(uint64_t id, int listener, const SysError& error);
  static Event AcceptFailed(int listener, const SysError& error, uint64_t count);
  static Event HelperRestarted(int pid, const SysError& why);
  static Event SockmapLoss(uint64_t id, int listener, uint64_t bytes);
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
  uint64_t bytes_in = 0;   // bytes moved through sockmap count once the connection leaves it
  uint64_t bytes_out = 0;
  uint64_t connect_failures = 0;
  uint64_t sockmap_active = 0;  // connections on sockmap now (the rest of `active` is on splice)
  uint64_t sockmap_total = 0;   // connections that started on sockmap
  uint64_t migrations = 0;      // of those, moved to splice
  uint64_t sockmap_losses = 0;  // of those, reset because the kernel dropped bytes at the move
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

  // Before Start(): forward what `fd` accepts to `target`. Takes ownership of fd; *index is
  // the listener's number in events.
  bool AddListener(UniqueFd fd, const Endpoint& target, int* index, SysError* error);

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

  // Changes where a listener's connections go from now on. Each worker keeps its own copy of
  // the targets and updates it on its own thread (Worker::Execute): nothing is shared.
  bool SetTarget(int listener, const Endpoint& target, SysError* error);
  int listener_count() const { return static_cast<int>(listeners_.size()); }

  EngineStats Stats() const;

  // The engine in use, after Start(): kSockmap or kAuto may have fallen back to kSplice, and
  // then `why` says why (no privilege, an old kernel, a rootless target).
  EngineKind engine() const { return engine_; }
  const std::string& engine_note() const { return engine_note_; }

 private:
  friend class Worker;

  // A slot for one more connection, or false at connections_max.
  bool ReserveSlot();
  // Frees a slot, and wakes the workers that stopped accepting at the limit: a slot freed by
  // one worker's connection is as good for any other.
  void ReleaseSlot();
  // A worker stopped accepting at the limit / resumed. ParkAtLimit() returns false when a slot
  // freed meanwhile (the worker should not park, or it might never be woken).
  bool ParkAtLimit(Worker* worker);

  EngineOptions options_;
  EngineKind engine_ = EngineKind::kSplice;
  std::string engine_note_;
  EventSink* sink_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::unique_ptr<Worker>> workers_;
  bool started_ = false;

  std::atomic<int64_t> active_{0};
  std::atomic<int> parked_{0};  // workers parked at the connection limit
  std::atomic<uint64_t> next_id_{1};
};

}  // namespace nsproxy
