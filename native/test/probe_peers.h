// probe_peers.h — the servers and clients at both ends of the probe's proxy, with the three little
// protocols the experiments use. Every check is end to end: lengths, SHA-256 and exact bytes.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace probe {

// Accepts on 127.0.0.1:<any> inside `netns` (-1: here) and runs handler(fd) on a thread per
// connection; the handler owns fd.
class Server {
 public:
  Server(int netns, std::function<void(int)> handler);
  ~Server();
  uint16_t port() const { return port_; }
  void Stop();  // stops accepting and joins every handler

 private:
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::function<void(int)> handler_;
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<std::thread> handlers_;
};

// Runs job(i) for i in [0, count) on `concurrency` threads that live in `netns`.
void RunClients(int netns, int count, int concurrency, const std::function<void(int)>& job);

enum class Outcome { kOk, kStuck, kCorrupt, kError };

struct Tally {
  std::atomic<int> ok{0}, stuck{0}, corrupt{0}, error{0};
  std::mutex mutex;
  std::string first_problem;
  void Add(Outcome outcome, const std::string& what);
  std::string Json() const;
};

// greet-echo: the server speaks first (u32 length, random bytes, their SHA-256 in hex), then
// echoes until EOF. The client sends a random message in chunks with pauses of up to
// `pause_max_us`, checks the greeting and that the echo is byte for byte what it sent, then
// half-closes and expects EOF.
void GreetEchoServe(int fd);
Outcome GreetEchoClient(uint16_t port, uint64_t seed, uint32_t pause_max_us, int timeout_ms, std::string* what);

// hash: the server sends one byte; the client (after it, with wait_ready) sends a header, its
// payload and a FIN at once; the server reads to EOF, answers with the SHA-256 of what it got and
// its own payload, and a FIN at once. Sizes are mixed (tiny, medium, up to 2 MiB).
void HashServe(int fd);
Outcome HashClient(uint16_t port, uint64_t seed, bool wait_ready, int timeout_ms, std::string* what);

// stream: both directions at once, random chunks with random pauses; each side then sends the
// SHA-256 of what it received; then half-close both ways.
void StreamServe(int fd);
Outcome StreamClient(uint16_t port, uint64_t seed, uint64_t max_bytes, int timeout_ms, std::string* what);

}  // namespace probe
