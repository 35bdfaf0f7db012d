// probe_peers.cc — see probe_peers.h.
#include "probe_peers.h"

#include <poll.h>

#include <algorithm>
#include <cinttypes>

#include "probe_util.h"
#include "sha256.h"

namespace probe {

Server::Server(int netns, std::function<void(int)> handler) : handler_(std::move(handler)) {
  std::atomic<bool> ready{false};
  acceptor_ = std::thread([this, netns, &ready] {
    if (netns >= 0) EnterNetns(netns);
    listen_fd_ = Listen(0, &port_);
    ready = true;
    for (;;) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // Stop() shut the listener down
      }
      std::lock_guard<std::mutex> lock(mutex_);
      handlers_.emplace_back([this, fd] { handler_(fd); });
    }
  });
  while (!ready) SleepUs(100);
}

Server::~Server() { Stop(); }

void Server::Stop() {
  if (!acceptor_.joinable()) return;
  shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  close(listen_fd_);
  std::vector<std::thread> handlers;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    handlers.swap(handlers_);
  }
  for (std::thread& t : handlers) t.join();
}

void RunClients(int netns, int count, int concurrency, const std::function<void(int)>& job) {
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; t++) {
    threads.emplace_back([&] {
      if (netns >= 0) EnterNetns(netns);
      for (int i = next++; i < count; i = next++) job(i);
    });
  }
  for (std::thread& t : threads) t.join();
}

void Tally::Add(Outcome outcome, const std::string& what) {
  switch (outcome) {
    case Outcome::kOk: ok++; return;
    case Outcome::kStuck: stuck++; break;
    case Outcome::kCorrupt: corrupt++; break;
    case Outcome::kError: error++; break;
  }
  std::lock_guard<std::mutex> lock(mutex);
  if (first_problem.empty()) first_problem = what;
}

std::string Tally::Json() const {
  std::string problem;
  for (char ch : first_problem) problem += (ch == '"' || ch == '\\') ? '\'' : ch;
  return Fmt("\"ok\":%d,\"stuck\":%d,\"corrupt\":%d,\"error\":%d,\"first_problem\":\"%s\"", ok.load(), stuck.load(),
             corrupt.load(), error.load(), problem.c_str());
}

// A timeout on a blocking socket shows up as EAGAIN: the transfer is stuck, not broken.
static Outcome Failed(std::string* what, const std::string& step) {
  int err = errno;
  *what = step + ": " + (err == EAGAIN ? "timed out" : strerror(err));
  return err == EAGAIN ? Outcome::kStuck : Outcome::kError;
}

static Outcome Short(std::string* what, const std::string& step, size_t got, size_t want) {
  if (errno == EAGAIN) return Failed(what, step);
  *what = Fmt("%s: got %zu of %zu bytes (%s)", step.c_str(), got, want, got < want && errno ? strerror(errno) : "EOF");
  return errno == ECONNRESET || errno == EPIPE ? Outcome::kError : Outcome::kCorrupt;
}

// Expects EOF next (after a half-close of our own).
static Outcome ExpectEof(int fd, std::string* what) {
  char byte;
  errno = 0;
  ssize_t n = recv(fd, &byte, 1, 0);
  if (n == 0) return Outcome::kOk;
  if (n > 0) {
    *what = "expected EOF, got more bytes";
    return Outcome::kCorrupt;
  }
  return Failed(what, "waiting for EOF");
}

// ---- greet-echo ----

void GreetEchoServe(int fd) {
  SetTimeouts(fd, 10000);
  Rng rng(NowNs() ^ static_cast<uint64_t>(fd));
  uint32_t len = static_cast<uint32_t>(rng.Below(16 * 1024 + 1));
  std::string greeting(4 + len, '\0');
  memcpy(&greeting[0], &len, 4);
  rng.Fill(&greeting[4], len);
  Sha256 sha;
  sha.Update(greeting.data() + 4, len);
  greeting += sha.Hex();
  if (WriteAll(fd, greeting.data(), greeting.size())) {
    char buf[65536];
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0 || !WriteAll(fd, buf, static_cast<size_t>(n))) break;
    }
    shutdown(fd, SHUT_WR);
  }
  close(fd);
}

Outcome GreetEchoClient(uint16_t port, uint64_t seed, uint32_t pause_max_us, int timeout_ms, std::string* what) {
  int fd = ConnectLoopback(port);
  if (fd < 0) return Failed(what, "connect");
  SetTimeouts(fd, timeout_ms);
  Rng rng(seed);
  size_t size = 1 + rng.Below(48 * 1024);
  std::string message(size, '\0');
  rng.Fill(&message[0], size);
  // 1 to 4 chunks, the first at once (it races the insertion), the others after pauses.
  int chunks = 1 + static_cast<int>(rng.Below(4));
  size_t sent = 0;
  Outcome outcome = Outcome::kOk;
  for (int i = 0; i < chunks && outcome == Outcome::kOk; i++) {
    size_t n = i == chunks - 1 ? size - sent : rng.Below(size - sent + 1);
    if (i > 0 && pause_max_us > 0) SleepUs(rng.Below(pause_max_us + 1));
    if (!WriteAll(fd, message.data() + sent, n)) outcome = Failed(what, "send");
    sent += n;
  }
  if (outcome == Outcome::kOk) {
    uint32_t len = 0;
    size_t got = ReadFull(fd, &len, 4);
    std::string greeting;
    if (got != 4) {
      outcome = Short(what, "greeting length", got, 4);
    } else if (len > 16 * 1024) {
      *what = Fmt("greeting length %u is garbage", len);
      outcome = Outcome::kCorrupt;
    } else {
      greeting.resize(len + 64);
      got = ReadFull(fd, &greeting[0], greeting.size());
      Sha256 sha;
      sha.Update(greeting.data(), len);
      if (got != greeting.size()) {
        outcome = Short(what, "greeting", got, greeting.size());
      } else if (sha.Hex() != greeting.substr(len)) {
        *what = "greeting SHA-256 mismatch";
        outcome = Outcome::kCorrupt;
      }
    }
  }
  if (outcome == Outcome::kOk) {
    std::string echo(size, '\0');
    size_t got = ReadFull(fd, &echo[0], size);
    if (got != size) {
      outcome = Short(what, "echo", got, size);
    } else if (echo != message) {
      size_t at = 0;
      while (echo[at] == message[at]) at++;
      *what = Fmt("echo differs from the message at byte %zu of %zu", at, size);
      outcome = Outcome::kCorrupt;
    }
  }
  if (outcome == Outcome::kOk) {
    shutdown(fd, SHUT_WR);
    outcome = ExpectEof(fd, what);
  }
  close(fd);
  return outcome;
}

// ---- hash ----

static uint64_t MixedSize(Rng* rng) {
  uint64_t kind = rng->Below(10);
  if (kind < 3) return rng->Below(101);                       // tiny, often one segment with the FIN
  if (kind < 7) return 1024 + rng->Below(63 * 1024);          // medium
  return 256 * 1024 + rng->Below(1792 * 1024);                // up to 2 MiB: a psock backlog
}

// Sends `len` bytes generated from `seed`; returns the SHA-256 of what it sent.
static bool SendGenerated(int fd, uint64_t seed, uint64_t len, std::string* sha_hex) {
  ByteStream gen(seed);
  Sha256 sha;
  char buf[65536];
  while (len > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, sizeof(buf)));
    gen.Fill(buf, n);
    sha.Update(buf, n);
    if (!WriteAll(fd, buf, n)) return false;
    len -= n;
  }
  *sha_hex = sha.Hex();
  return true;
}

static std::string GeneratedSha(uint64_t seed, uint64_t len) {
  ByteStream gen(seed);
  Sha256 sha;
  char buf[65536];
  while (len > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, sizeof(buf)));
    gen.Fill(buf, n);
    sha.Update(buf, n);
    len -= n;
  }
  return sha.Hex();
}

// Reads to EOF; returns the byte count and SHA-256.
static uint64_t ReadToEof(int fd, std::string* sha_hex, bool* clean) {
  Sha256 sha;
  uint64_t total = 0;
  char buf[65536];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *clean = n == 0;
      break;
    }
    sha.Update(buf, static_cast<size_t>(n));
    total += static_cast<uint64_t>(n);
  }
  *sha_hex = sha.Hex();
  return total;
}

void HashServe(int fd) {
  SetTimeouts(fd, 10000);
  uint64_t header[2];
  if (WriteAll(fd, "R", 1) && ReadFull(fd, header, sizeof(header)) == sizeof(header)) {
    std::string up_sha;
    bool clean = false;
    ReadToEof(fd, &up_sha, &clean);
    std::string down_sha;
    if (clean && WriteAll(fd, up_sha.data(), up_sha.size()) && SendGenerated(fd, header[1], header[0], &down_sha)) {
      shutdown(fd, SHUT_WR);
      char byte;
      while (recv(fd, &byte, 1, 0) > 0) {
      }
    }
  }
  close(fd);
}

Outcome HashClient(uint16_t port, uint64_t seed, bool wait_ready, int timeout_ms, std::string* what) {
  Rng rng(seed);
  uint64_t up = MixedSize(&rng);
  uint64_t header[2] = {MixedSize(&rng), rng.Next()};
  uint64_t up_seed = rng.Next();
  int fd = ConnectLoopback(port);
  if (fd < 0) return Failed(what, "connect");
  SetTimeouts(fd, timeout_ms);
  Outcome outcome = Outcome::kOk;
  std::string up_sha;
  char ready = 0;
  // The server's first byte crosses the proxy only once both sockets are connected and (sockmap)
  // inserted: waiting for it keeps our FIN from arriving before the insertion.
  if (wait_ready && ReadFull(fd, &ready, 1) != 1) {
    outcome = Failed(what, "waiting for the server's first byte");
  } else if (!WriteAll(fd, header, sizeof(header)) || !SendGenerated(fd, up_seed, up, &up_sha)) {
    outcome = Failed(what, "send");
  } else {
    shutdown(fd, SHUT_WR);  // data then FIN at once: the FIN races the psock queue
    if (!wait_ready && ReadFull(fd, &ready, 1) != 1) ready = 0;
    char got_sha[64];
    size_t got = ReadFull(fd, got_sha, sizeof(got_sha));
    if (ready != 'R') {
      *what = "the server's first byte is missing or wrong";
      outcome = Outcome::kCorrupt;
    } else if (got != sizeof(got_sha)) {
      outcome = Short(what, Fmt("server's SHA-256 of %" PRIu64 " bytes up", up), got, sizeof(got_sha));
    } else if (std::string(got_sha, 64) != up_sha) {
      *what = Fmt("upload of %" PRIu64 " bytes arrived altered (SHA-256 differs)", up);
      outcome = Outcome::kCorrupt;
    } else {
      std::string down_sha;
      bool clean = false;
      uint64_t down = ReadToEof(fd, &down_sha, &clean);
      if (!clean) {
        outcome = Failed(what, Fmt("download after %" PRIu64 " of %" PRIu64 " bytes", down, header[0]));
      } else if (down != header[0] || down_sha != GeneratedSha(header[1], header[0])) {
        *what = Fmt("download: %" PRIu64 " of %" PRIu64 " bytes then EOF, or altered", down, header[0]);
        outcome = Outcome::kCorrupt;
      }
    }
  }
  close(fd);
  return outcome;
}

// ---- stream ----

namespace {

// One side of the stream protocol: sends `out` generated bytes in random chunks with random pauses
// while receiving `in` bytes, with poll(); then the SHA-256 exchange is up to the caller.
struct Duplex {
  int fd;
  Rng rng;
  ByteStream gen;
  uint64_t out_left;
  uint64_t in_left;
  Sha256 in_sha;
  Sha256 out_sha;
  uint64_t pause_until = 0;

  bool Run(int timeout_ms, std::string* what) {
    char buf[65536];
    std::string pending;
    while (out_left > 0 || !pending.empty() || in_left > 0) {
      bool has_out = out_left > 0 || !pending.empty();
      bool paused = has_out && NowNs() < pause_until;
      bool want_out = has_out && !paused;
      pollfd p = {fd, static_cast<short>((in_left > 0 ? POLLIN : 0) | (want_out ? POLLOUT : 0)), 0};
      int n = poll(&p, 1, paused ? 1 : timeout_ms);
      if (n == 0) {
        if (paused) continue;
        errno = EAGAIN;
        *what = Fmt("no progress for %d ms (%" PRIu64 " bytes still to receive, %" PRIu64 " to send)", timeout_ms,
                    in_left, out_left + pending.size());
        return false;
      }
      if (p.revents & POLLIN) {
        ssize_t got = recv(fd, buf, static_cast<size_t>(std::min<uint64_t>(in_left, sizeof(buf))), MSG_DONTWAIT);
        if (got == 0) {
          *what = Fmt("EOF with %" PRIu64 " bytes still to receive", in_left);
          errno = 0;
          return false;
        }
        if (got < 0 && errno != EAGAIN) {
          *what = Fmt("recv: %s", strerror(errno));
          return false;
        }
        if (got > 0) {
          in_sha.Update(buf, static_cast<size_t>(got));
          in_left -= static_cast<uint64_t>(got);
        }
      }
      if ((p.revents & POLLOUT) && want_out) {
        if (pending.empty()) {
          size_t chunk = static_cast<size_t>(std::min<uint64_t>(out_left, 1 + rng.Below(64 * 1024)));
          pending.resize(chunk);
          gen.Fill(&pending[0], chunk);
          out_sha.Update(pending.data(), chunk);
          out_left -= chunk;
        }
        ssize_t sent = send(fd, pending.data(), pending.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent < 0 && errno != EAGAIN) {
          *what = Fmt("send: %s", strerror(errno));
          return false;
        }
        if (sent > 0) pending.erase(0, static_cast<size_t>(sent));
        if (pending.empty() && rng.Below(8) == 0) pause_until = NowNs() + rng.Below(3000) * 1000;
      }
      if ((p.revents & (POLLERR | POLLHUP)) && !(p.revents & POLLIN)) {
        *what = Fmt("socket error: %s", strerror(SocketError(fd)));
        errno = ECONNRESET;
        return false;
      }
    }
    return true;
  }
};

}  // namespace

void StreamServe(int fd) {
  SetTimeouts(fd, 10000);
  uint64_t header[4];  // up, down, seed of the server's pauses and data
  if (ReadFull(fd, header, sizeof(header)) == sizeof(header)) {
    Duplex d{fd, Rng(header[2]), ByteStream(header[3]), header[1], header[0], {}, {}, 0};
    std::string what;
    SetNonblock(fd, true);
    if (d.Run(10000, &what)) {
      SetNonblock(fd, false);
      std::string sha = d.in_sha.Hex();
      if (WriteAll(fd, sha.data(), sha.size())) {
        shutdown(fd, SHUT_WR);
        char byte;
        while (recv(fd, &byte, 1, 0) > 0) {
        }
      }
    }
  }
  close(fd);
}

Outcome StreamClient(uint16_t port, uint64_t seed, uint64_t max_bytes, int timeout_ms, std::string* what) {
  Rng rng(seed);
  uint64_t header[4] = {rng.Below(max_bytes + 1), rng.Below(max_bytes + 1), rng.Next(), rng.Next()};
  uint64_t up_seed = rng.Next();
  int fd = ConnectLoopback(port);
  if (fd < 0) return Failed(what, "connect");
  SetTimeouts(fd, timeout_ms);
  Outcome outcome = Outcome::kOk;
  if (!WriteAll(fd, header, sizeof(header))) {
    outcome = Failed(what, "send header");
  } else {
    Duplex d{fd, Rng(rng.Next()), ByteStream(up_seed), header[0], header[1], {}, {}, 0};
    SetNonblock(fd, true);
    bool ran = d.Run(timeout_ms, what);
    SetNonblock(fd, false);
    if (!ran) {
      outcome = errno == EAGAIN ? Outcome::kStuck : errno == 0 ? Outcome::kCorrupt : Outcome::kError;
    } else if (d.in_sha.Hex() != GeneratedSha(header[3], header[1])) {
      *what = Fmt("download of %" PRIu64 " bytes arrived altered", header[1]);
      outcome = Outcome::kCorrupt;
    } else {
      char got_sha[64];
      size_t got = ReadFull(fd, got_sha, sizeof(got_sha));
      if (got != sizeof(got_sha)) {
        outcome = Short(what, "server's SHA-256", got, sizeof(got_sha));
      } else if (std::string(got_sha, 64) != d.out_sha.Hex()) {
        *what = Fmt("upload of %" PRIu64 " bytes arrived altered", header[0]);
        outcome = Outcome::kCorrupt;
      } else {
        shutdown(fd, SHUT_WR);
        outcome = ExpectEof(fd, what);
      }
    }
  }
  close(fd);
  return outcome;
}

}  // namespace probe
