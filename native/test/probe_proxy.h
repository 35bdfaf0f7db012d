// probe_proxy.h — a small TCP proxy for the sockmap probe: one epoll thread that accepts in one
// namespace, connects in another, and moves bytes either with native/sockmap (the kernel does it)
// or with splice(2). It implements the rules this lane found (SOCKMAP.md) — poke after insertion,
// forward a FIN only once the peer's psock is drained, migrate to splice in order — and, for the
// experiments, the naive variants that break them.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "../sockmap.h"
#include "probe_util.h"

namespace probe {

struct ProxyOptions {
  enum class Engine { kSockmap, kSplice };
  // kSafe: on EPOLLRDHUP poke the source, wait until Pending(peer) is 0, then shutdown(peer).
  // kNaive: shutdown(peer, SHUT_WR) at once.
  enum class Fin { kSafe, kNaive };
  // How a sockmap connection moves to the user-space pump:
  //   kStop: Stop() (program detached), poke, wait until nothing is pending, Remove(), splice.
  //   kPause: Pause() (no more redirects), poke, wait until nothing is pending, then recv()/send()
  //           (ingress_msg first); the program stays attached until the connection ends.
  //   kUnsafe: Remove() at once, then splice (what queued in the psocks is lost).
  enum class Migrate { kNone, kStop, kPause, kUnsafe };

  Engine engine = Engine::kSockmap;
  Fin fin = Fin::kSafe;
  Migrate migrate = Migrate::kNone;
  bool poke = true;
  uint32_t insert_delay_max_us = 0;   // random delay between connect() and Add()
  uint32_t migrate_after_max_us = 0;  // migrate at a random time in [0, this] after Add()
  uint64_t seed = 1;
  bool sample_pending = false;  // keep ProxyStats::pending_now current (every tick)
  uint64_t migrate_above = 0;   // migrate (options.migrate) once Pending() exceeds this; 0: off
};

struct ProxyStats {
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> closed_clean{0};
  std::atomic<uint64_t> closed_reset{0};
  std::atomic<uint64_t> fin_forwarded{0};
  std::atomic<uint64_t> fin_waited{0};       // EOFs whose forwarding had to wait for the psock
  std::atomic<uint64_t> fin_max_pending{0};  // largest Pending() seen at an EOF
  std::atomic<uint64_t> migrations{0};
  std::atomic<uint64_t> migration_waited{0};
  std::atomic<uint64_t> migration_max_pending{0};
  std::atomic<uint64_t> passed_bytes{0};     // bytes the program passed (found in counters)
  std::atomic<uint64_t> pending_now{0};      // sum of Pending() over sockmap connections
  std::atomic<uint64_t> fallbacks{0};       // Add() refused (e.g. the client had closed): spliced
  std::atomic<uint64_t> errors{0};
  std::atomic<int> first_errno{0};
};

// The counters as a JSON member: "proxy":{...}.
std::string StatsJson(ProxyStats& stats);

class Proxy {
 public:
  // listen_netns / upstream_netns: namespace fds (-1: the caller's); upstream_port on 127.0.0.1.
  Proxy(const ProxyOptions& options, nsproxy::Sockmap* map, int listen_netns, int upstream_netns,
        uint16_t listen_port, uint16_t upstream_port);
  ~Proxy();

  // Starts the thread; returns once the listener is bound (port()).
  void Start();
  // Resets whatever is still open and joins the thread.
  void Stop();
  uint16_t port() const { return port_; }
  ProxyStats& stats() { return stats_; }

 private:
  struct Conn;
  void Run();
  void Accept();
  void Insert(Conn* c);
  void OnEvent(Conn* c, int side, uint32_t events);
  void TryForwardFin(Conn* c);
  void StartMigration(Conn* c);
  void TryFinishMigration(Conn* c);
  void SwitchToPump(Conn* c);
  void Pump(Conn* c);
  bool PumpDirection(Conn* c, int from);
  void Tick();
  void Finish(Conn* c);
  void Reset(Conn* c, int err);
  void Watch(Conn* c, uint32_t events);
  void Error(int err);

  ProxyOptions options_;
  nsproxy::Sockmap* map_;
  int listen_netns_;
  int upstream_netns_;
  uint16_t listen_port_;
  uint16_t upstream_port_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
  ProxyStats stats_;
  Rng rng_{1};
  std::vector<Conn*> conns_;
  std::vector<Conn*> dead_;  // freed after the current epoll batch
};

}  // namespace probe
