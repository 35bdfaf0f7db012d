// worker.h — one engine thread: an epoll loop inside the target netns that accepts, connects
// and pumps connections. See the theory of operation in engine.h.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "connection.h"
#include "engine.h"
#include "pipe_pool.h"
#include "syserror.h"
#include "unique_fd.h"
#include "upstream.h"

namespace nsproxy {

class Worker {
 public:
  Worker(Engine* engine, int index);
  ~Worker();

  // Starts the thread and waits until it has entered the namespace and set up epoll.
  bool Start(SysError* error);
  void RequestStop();
  void Join();

  // Runs `command` on the worker thread, between two epoll batches, and waits for its result.
  // This is how the control plane pauses accepting or moves the worker to another namespace.
  SysError Execute(std::function<SysError()> command);

  // On the worker thread only (from Execute): accept or not, whatever the other reasons say.
  void SetAccepting(bool accepting);
  // On the worker thread only: make upstream sockets in another namespace from now on.
  bool EnterNetns(int netns_fd, int userns_fd, SysError* error);

 private:
  void Run();
  bool Setup(SysError* error);  // on the worker thread
  void Loop();

  void OnListenerReady(Listener* listener);
  void StartConnection(Listener* listener, UniqueFd client, const sockaddr_storage& peer);
  void OnConnectionEvent(Connection* conn, bool upstream, uint32_t events);
  void Finish(Connection* conn, const SysError& error, bool reset);
  void ConnectFailed(Connection* conn, const SysError& error);

  void WatchListeners(bool watch);
  void UpdateListenerWatch();
  void WatchHelper();
  void RunCommands();
  void AccountBytes(Connection* conn, uint64_t in_before, uint64_t out_before);
  void Post(Event event);

  Engine* engine_;
  int index_;
  std::thread thread_;
  UniqueFd epoll_;
  UniqueFd wake_;  // eventfd: RequestStop() writes it
  PipePool pipes_;
  UpstreamSockets upstream_;
  uint64_t watched_helper_ = 0;  // generation of the helper channel in the epoll set
  std::unordered_set<Connection*> connections_;
  std::vector<Connection*> closed_;  // freed after the current epoll batch
  bool watching_listeners_ = false;
  bool accepting_ = true;              // the control plane's wish (paused while the target restarts)
  bool paused_at_limit_ = false;
  uint64_t resume_accept_at_us_ = 0;  // after EMFILE and friends; 0 = not backing off
  bool stopping_ = false;              // the loop's own copy of stop_requested_
  std::atomic<bool> stop_requested_{false};

  struct Command {
    std::function<SysError()> run;
    std::promise<SysError> done;
  };
  std::mutex commands_mutex_;
  std::vector<Command> commands_;
  bool exited_ = false;  // the loop is gone: Execute() answers at once (guarded by commands_mutex_)
};

}  // namespace nsproxy
