// probe_util.h — small helpers for the sockmap probe (a test program, not part of the addon):
// namespaces, sockets with timeouts, random payloads, JSON lines.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace probe {

[[noreturn]] inline void Die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "sockmap_probe: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(2);
}

#define PROBE_CHECK(cond, what) \
  do {                          \
    if (!(cond)) ::probe::Die("%s: %s (%s:%d)", what, strerror(errno), __FILE__, __LINE__); \
  } while (0)

inline uint64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

inline void SleepUs(uint64_t us) {
  struct timespec ts = {static_cast<time_t>(us / 1000000), static_cast<long>((us % 1000000) * 1000)};
  nanosleep(&ts, nullptr);
}

// splitmix64: reproducible payloads and choices from a seed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : Next() % n; }
  void Fill(void* buf, size_t len) {
    uint8_t* p = static_cast<uint8_t*>(buf);
    while (len >= 8) {
      uint64_t v = Next();
      memcpy(p, &v, 8);
      p += 8;
      len -= 8;
    }
    if (len > 0) {
      uint64_t v = Next();
      memcpy(p, &v, len);
    }
  }

 private:
  uint64_t s_;
};

// A byte stream from a seed: the same bytes whatever the sizes of the pieces asked for.
class ByteStream {
 public:
  explicit ByteStream(uint64_t seed) : rng_(seed) {}
  void Fill(void* buf, size_t len) {
    uint8_t* p = static_cast<uint8_t*>(buf);
    while (len > 0) {
      if (used_ == 8) {
        uint64_t v = rng_.Next();
        memcpy(word_, &v, 8);
        used_ = 0;
      }
      size_t take = std::min(len, static_cast<size_t>(8 - used_));
      memcpy(p, word_ + used_, take);
      used_ += take;
      p += take;
      len -= take;
    }
  }

 private:
  Rng rng_;
  uint8_t word_[8];
  size_t used_ = 8;
};

inline int OpenNetns(const char* path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) Die("open %s: %s", path, strerror(errno));
  return fd;
}

// Moves the calling thread into a network namespace.
inline void EnterNetns(int fd) { PROBE_CHECK(setns(fd, CLONE_NEWNET) == 0, "setns"); }

inline sockaddr_in Loopback(uint16_t port) {
  sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// A TCP listener on 127.0.0.1:port (0: any) in the calling thread's namespace.
inline int Listen(uint16_t port, uint16_t* bound) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  PROBE_CHECK(fd >= 0, "socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a = Loopback(port);
  PROBE_CHECK(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0, "bind");
  PROBE_CHECK(listen(fd, 4096) == 0, "listen");
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  if (bound != nullptr) *bound = ntohs(a.sin_port);
  return fd;
}

inline void SetNodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

inline void SetNonblock(int fd, bool on) {
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK));
}

// Blocking connect to 127.0.0.1:port from the calling thread's namespace; -1 on failure.
inline int ConnectLoopback(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  PROBE_CHECK(fd >= 0, "socket");
  sockaddr_in a = Loopback(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Receive/send timeouts so a stuck transfer shows up as an error instead of a hang.
inline void SetTimeouts(int fd, int ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// Resets on close (SO_LINGER 0).
inline void CloseWithReset(int fd) {
  struct linger l = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  close(fd);
}

// Writes everything (blocking socket); false on error or timeout.
inline bool WriteAll(int fd, const void* buf, size_t len) {
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

// Reads exactly len bytes; returns what it got (< len on EOF, error or timeout).
inline size_t ReadFull(int fd, void* buf, size_t len) {
  char* p = static_cast<char*>(buf);
  size_t got = 0;
  while (got < len) {
    ssize_t n = recv(fd, p + got, len - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

inline int SocketError(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

inline std::string Fmt(const char* fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return buf;
}

}  // namespace probe
