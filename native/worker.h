// worker.h — one engine thread: an epoll loop inside the target netns that accepts, connects
// and pumps connections. See the theory of operation in engine.h.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "connection.h"
#include "engine.h"
#include "pipe_pool.h"
#include "sockmap.h"
#include "sockets.h"
#include "syserror.h"
#include "unique_fd.h"
#include "upstream.h"

namespace nsproxy {

// What a worker watches on a connection's sockets when user space moves the bytes.
constexpr uint32_t kSocketEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

// The epoll_event.data of a connection's client (or upstream) socket.
uint64_t PackConnection(Connection* conn, bool upstream);

// CLOCK_MONOTONIC in µs.
uint64_t NowUs();

class Worker {
 public:
  Worker(Engine* engine, int index);
  ~Worker();

  // Starts the thread and waits until it has entered the namespace and set up epoll.
  bool Start(SysError* error);
  void RequestStop();
  void Join();

  // Runs `command` on the worker thread (when the loop handles its wake-up event, which may be in
  // the middle of a batch of events) and waits for its result.
  // This is how the control plane pauses accepting or moves the worker to another namespace.
  SysError Execute(std::function<SysError()> command);

  // From any thread: a connection slot freed; if this worker parked at the limit, it resumes.
  void WakeFromLimit();
  // The parked flag, for Engine::ParkAtLimit / ReleaseSlot.
  std::atomic<bool> parked_at_limit{false};

  // On the worker thread only (from Execute): accept or not, whatever the other reasons say.
  void SetAccepting(bool accepting);
  // On the worker thread only: make upstream sockets in another namespace from now on.
  bool EnterNetns(int netns_fd, int userns_fd, SysError* error);
  // On the worker thread only: where listener `index` forwards to from now on.
  void SetTarget(int index, const Endpoint& target);

 private:
  using Clock = uint64_t;  // CLOCK_MONOTONIC, µs

  void Run();
  bool Setup(SysError* error);  // on the worker thread
  void Loop();
  int NextTimeoutMs(Clock now) const;
  Clock ConnectDeadline(const Connection* conn) const;
  void OnTimers(Clock now);

  void OnListenerReady(Listener* listener);
  void StartConnection(Listener* listener, UniqueFd client, UniqueFd upstream, const sockaddr_storage& peer);
  void OnConnectionEvent(Connection* conn, bool upstream, uint32_t events);
  void Connected(Connection* conn);

  // worker_sockmap.cc: connections whose bytes the kernel moves.
  bool HandToSockmap(Connection* conn);
  void ConsiderSockmap(Connection* conn);
  void OnSockmapEvent(Connection* conn, bool upstream, uint32_t events);
  void AdvanceSockmap(Connection* conn);
  bool SockmapDelivered(Connection* conn, int side);
  void StartMigration(Connection* conn);
  void TakeOver(Connection* conn);
  void LeaveSockmap(Connection* conn);
  void WaitForBacklog(Connection* conn);
  void CheckBacklogWaits(Clock now);
  void SockmapTick();
  void Apply(Connection* conn, Connection::Next next);
  void Finish(Connection* conn, unsigned reset_mask);
  void ConnectFailed(Connection* conn, const SysError& error);
  void AcceptFailed(Listener* listener, const SysError& error);

  void WatchListeners(bool watch);
  void UpdateListenerWatch();
  void WatchHelper();
  void OnHelperReadable();
  void RespawnHelper();
  void RunCommands();
  void AccountBytes(Connection* conn, uint64_t in_before, uint64_t out_before);
  void Post(Event event);

  Engine* engine_;
  int index_;
  std::thread thread_;
  UniqueFd epoll_;
  UniqueFd wake_;  // eventfd: RequestStop(), Execute() and WakeFromLimit() write it
  PipePool pipes_;
  UpstreamSockets upstream_;
  std::vector<Endpoint> targets_;  // per listener: this worker's own copy
  uint64_t watched_helper_ = 0;    // generation of the helper channel in the epoll set
  // The worker's connections. The list owns them: made by make_unique and released into it in
  // StartConnection(), taken back into closed_ by Finish().
  IntrusiveList<Connection, &Connection::all_links> connections_;
  std::vector<std::unique_ptr<Connection>> closed_;  // freed after the current epoll batch
  // Connections in kConnecting, oldest first: all share one timeout, so the front expires first.
  IntrusiveList<Connection, &Connection::connecting_links> connecting_;
  IntrusiveList<Connection, &Connection::flushing_links> flushing_;  // kResetting
  // The sockmap engine: this worker's maps and program (null on splice), its connections there,
  // and those of them waiting for the kernel to deliver a backlog (polled, with a back-off), with
  // the soonest of their next checks.
  std::unique_ptr<Sockmap> sockmap_;
  IntrusiveList<Connection, &Connection::sockmap_links> on_sockmap_;
  IntrusiveList<Connection, &Connection::sockmap_wait_links> sockmap_waiting_;
  Clock sockmap_wait_due_ = 0;
  Clock sockmap_tick_at_ = 0;
  std::vector<Sockmap::CookieCounters> sockmap_counters_;  // reused by every tick
 public:
  // Counters of this worker's connections, summed by Engine::Stats(): each worker writes its own
  // (no cache line shared with the other workers), any thread may read.
  struct alignas(64) Counters {
    std::atomic<uint64_t> total{0};
    std::atomic<uint64_t> bytes_in{0};
    std::atomic<uint64_t> bytes_out{0};
    std::atomic<uint64_t> connect_failures{0};
    std::atomic<uint64_t> sockmap_active{0};
    std::atomic<uint64_t> sockmap_total{0};
    std::atomic<uint64_t> migrations{0};
    std::atomic<uint64_t> sockmap_losses{0};
  };
  const Counters& counters() const { return counters_; }

 private:
  Counters counters_;
  bool watching_listeners_ = false;
  bool accepting_ = true;              // the control plane's wish (paused while the target restarts)
  bool paused_at_limit_ = false;
  bool waiting_for_sockets_ = false;   // helper mode, pool empty: a batch is on its way
  Clock resume_accept_at_ = 0;         // after EMFILE and friends; 0 = not backing off
  Clock respawn_helper_at_ = 0;        // a helper that failed to start is tried again then
  Clock accept_error_posted_at_ = 0;   // accept failures are reported at most once a second
  uint64_t accept_errors_unreported_ = 0;
  bool stopping_ = false;              // the loop's own copy of stop_requested_
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> limit_woken_{false};

  struct Command {
    std::function<SysError()> run;
    std::promise<SysError> done;
  };
  std::mutex commands_mutex_;
  std::vector<Command> commands_;
  bool exited_ = false;  // the loop is gone: Execute() answers at once (guarded by commands_mutex_)
};

}  // namespace nsproxy
