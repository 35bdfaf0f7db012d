// probe_flap.cc — (d) the harshest migration test: one connection streaming both ways at full
// speed while the proxy moves it from sockmap to user space and back thousands of times
// (Stop, drain, copy what the receive queues hold, Resume). Any byte the kernel drops or
// reorders at a Stop or a Resume shows up in the SHA-256 at the far ends. Stop() reports the
// bytes the kernel dropped at a detach (its rare race): after the first report the stream stays in
// user space and ends 100 ms later, and the run passes only if the far end then misses exactly
// those bytes, as one gap, and nothing else.
#include <linux/sock_diag.h>
#include <poll.h>

#include <atomic>
#include <cinttypes>
#include <string>
#include <thread>

#include "../sockmap.h"
#include "probe_args.h"
#include "probe_util.h"
#include "sha256.h"

using nsproxy::Sockmap;
using nsproxy::SockmapPair;
using nsproxy::SysError;

namespace probe {

namespace {

struct Writer {
  std::atomic<bool> stop{false};
  uint64_t sent = 0;
  std::string sha;
  uint64_t rate = 0;  // bytes per second, 0: as fast as possible
  void Run(int fd, uint64_t seed) {
    ByteStream gen(seed);
    Rng rng(seed ^ 0x5a5a);
    Sha256 hash;
    char buf[16384];
    uint64_t t0 = NowNs();
    while (!stop) {
      if (rate != 0) {
        uint64_t due = t0 + sent * 1000000000ull / rate;
        uint64_t now = NowNs();
        if (due > now) SleepUs((due - now) / 1000);
      }
      size_t n = 1 + rng.Below(rate != 0 ? 4096 : sizeof(buf));
      gen.Fill(buf, n);
      hash.Update(buf, n);
      if (!WriteAll(fd, buf, n)) break;
      sent += n;
    }
    shutdown(fd, SHUT_WR);
    sha = hash.Hex();
  }
};

// Reads to EOF; also compares with the expected stream to say where it first differs and how
// (a gap: bytes missing; anything else: altered or reordered).
struct Reader {
  uint64_t got = 0;
  bool eof = false;
  int err = 0;
  std::string sha;
  int64_t first_difference = -1;
  std::string how;
  void Run(int fd, uint64_t seed) {
    Sha256 hash;
    ByteStream expected(seed);
    char buf[65536], want[65536];
    SetTimeouts(fd, 20000);
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        eof = n == 0;
        err = n < 0 ? errno : 0;
        break;
      }
      hash.Update(buf, static_cast<size_t>(n));
      if (first_difference < 0) {
        expected.Fill(want, static_cast<size_t>(n));
        for (ssize_t i = 0; i < n; i++) {
          if (buf[i] == want[i]) continue;
          first_difference = static_cast<int64_t>(got) + i;
          how = Describe(buf + i, static_cast<size_t>(n - i), seed, got + static_cast<uint64_t>(i));
          break;
        }
      }
      got += static_cast<uint64_t>(n);
    }
    sha = hash.Hex();
  }
  // Looks for the received bytes further on in the expected stream (up to 16 MiB): a gap.
  static std::string Describe(const char* data, size_t len, uint64_t seed, uint64_t at) {
    size_t probe = std::min<size_t>(len, 64);
    if (probe < 16) return "differs (too few bytes to tell)";
    ByteStream s(seed);
    std::string window(at + (16u << 20) + probe, '\0');
    s.Fill(&window[0], window.size());
    size_t found = window.find(std::string(data, probe), at);
    if (found != std::string::npos) return Fmt("gap: %zu bytes missing", found - at);
    found = window.rfind(std::string(data, probe), at);
    if (found != std::string::npos) return Fmt("repeat: bytes from %zu before", at - found);
    return "altered";
  }
};

// The user-space phase: moves bytes both ways until both receive queues answer EAGAIN with
// nothing left to write, waiting with poll() for room (never blocking one direction on the
// other). Forwards EOF. The EAGAIN matters: Resume() after a partial read of the head skb would
// hand that whole skb to the program again (tcp_read_skb ignores copied_seq): duplicated bytes.
// False on an error, or after 10 s without progress.
bool PumpUntilEmpty(const int fd[2], bool eof[2], bool shut[2], uint64_t* moved) {
  std::string carry[2];
  bool drained[2] = {false, false};
  uint64_t deadline = NowNs() + 10000000000ull;
  for (;;) {
    bool progress = false;
    for (int from = 0; from < 2; from++) {
      if (!eof[from] && carry[from].size() < (1u << 20)) {
        char buf[65536];
        ssize_t n = recv(fd[from], buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
          carry[from].append(buf, static_cast<size_t>(n));
          drained[from] = false;
          progress = true;
        } else if (n == 0) {
          eof[from] = true;
        } else if (errno == EAGAIN) {
          drained[from] = true;
        } else {
          return false;
        }
      }
      if (!carry[from].empty()) {
        ssize_t n = send(fd[from ^ 1], carry[from].data(), carry[from].size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
          carry[from].erase(0, static_cast<size_t>(n));
          *moved += static_cast<uint64_t>(n);
          progress = true;
        } else if (n < 0 && errno != EAGAIN) {
          return false;
        }
      }
    }
    bool done = true;
    for (int from = 0; from < 2; from++) done = done && carry[from].empty() && (drained[from] || eof[from]);
    if (done) break;
    if (progress) deadline = NowNs() + 10000000000ull;
    if (!progress) {
      if (NowNs() > deadline) {
        errno = ETIMEDOUT;
        return false;
      }
      pollfd p[4];
      nfds_t np = 0;
      for (int from = 0; from < 2; from++) {
        if (!carry[from].empty()) p[np++] = {fd[from ^ 1], POLLOUT, 0};
        if (!eof[from] && !drained[from]) p[np++] = {fd[from], POLLIN, 0};
      }
      poll(p, np, 10);
    }
  }
  for (int from = 0; from < 2; from++) {
    if (eof[from] && !shut[from ^ 1]) {
      shutdown(fd[from ^ 1], SHUT_WR);
      shut[from ^ 1] = true;
    }
  }
  return true;
}

}  // namespace

int Flap(const Args& args) {
  int cns = args.Netns("client-netns");
  int sns = args.Netns("server-netns");
  uint64_t seconds = args.Num("seconds", 10);
  uint32_t map_us = static_cast<uint32_t>(args.Num("map-max-us", 200));
  bool bare_stop = args.Has("bare-stop");  // detach without Stop()'s guard, to show the race
  std::unique_ptr<Sockmap> map = MakeMap(16);

  // client <-> a | proxy | b <-> server, as in the facts.
  int client = -1, a = -1, b = -1, server = -1;
  std::thread([&] {
    if (cns >= 0) EnterNetns(cns);
    uint16_t port;
    int l = Listen(0, &port);
    client = ConnectLoopback(port);
    a = accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
    close(l);
    if (sns >= 0) EnterNetns(sns);
    l = Listen(0, &port);
    b = ConnectLoopback(port);
    server = accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
    close(l);
  }).join();
  for (int fd : {client, a, b, server}) SetNodelay(fd);
  SetTimeouts(a, 10000);
  SetTimeouts(b, 10000);

  SockmapPair pair;
  SysError error;
  if (!map->Add(a, b, &pair, &error)) Die("Add: %s", strerror(error.err));
  Writer up, down;
  up.rate = down.rate = args.Num("rate-mbps", 0) * 125000;
  Reader up_reader, down_reader;
  std::thread threads[4] = {std::thread([&] { up.Run(client, 11); }), std::thread([&] { down.Run(server, 22); }),
                            std::thread([&] { up_reader.Run(server, 11); }), std::thread([&] { down_reader.Run(client, 22); })};

  Rng rng(args.Num("seed", NowNs()));
  const int fds[2] = {a, b};
  bool eof[2] = {false, false}, shut[2] = {false, false};
  uint64_t cycles = 0, moved = 0, waits = 0, max_wait_us = 0;
  uint64_t end = NowNs() + seconds * 1000000000ull;
  std::string problem;
  bool in_map = true;
  int64_t detected[2] = {0, 0};  // bytes Stop() reported lost, side 0 (upstream), side 1 (down)
  uint64_t detected_cycle = 0, unknown = 0;
  while (!(shut[0] && shut[1])) {
    if (NowNs() >= end) up.stop = down.stop = true;
    if (in_map) {
      SleepUs(rng.Below(map_us + 1));
      int64_t lost[2] = {0, 0};
      map->Stop(pair, nullptr, lost, !bare_stop);
      for (int side = 0; side < 2; side++) {
        if (lost[side] < 0) unknown++;
        if (lost[side] > 0 && detected[0] == 0 && detected[1] == 0) detected_cycle = cycles;
        if (lost[side] > 0) detected[side] += lost[side];
      }
      // The stream has a hole: write on for 100 ms (so the far end sees a gap, not a short
      // stream), all in user space from now on.
      if ((detected[0] > 0 || detected[1] > 0) && end > NowNs() + 100000000ull) end = NowNs() + 100000000ull;
      Sockmap::Poke(a);
      Sockmap::Poke(b);
      in_map = false;
      uint64_t t0 = NowNs();
      while (map->Pending(pair, 0, &error) > 0 || map->Pending(pair, 1, &error) > 0) {
        if (NowNs() - t0 > 10000000000ull) {
          nsproxy::SockmapCounters c0, c1;
          map->Counters(pair, 0, &c0);
          map->Counters(pair, 1, &c1);
          uint64_t w0 = 0, w1 = 0;
          nsproxy::TcpBytesWritten(a, &w0, &error);
          nsproxy::TcpBytesWritten(b, &w1, &error);
          problem = Fmt("the psock queues did not drain in 10 s: pending %" PRId64 "/%" PRId64
                        ", redirected %" PRIu64 "/%" PRIu64 ", written-base %" PRIu64 "/%" PRIu64
                        ", so_error %d/%d, cycle %" PRIu64,
                        map->Pending(pair, 0, &error), map->Pending(pair, 1, &error), c0.redirected, c1.redirected,
                        w0 - pair.base_written[0], w1 - pair.base_written[1], SocketError(a), SocketError(b), cycles);
          break;
        }
        SleepUs(20);
      }
      if (!problem.empty()) break;
      uint64_t waited = (NowNs() - t0) / 1000;
      if (waited > 20) waits++;
      max_wait_us = std::max(max_wait_us, waited);
    }
    if (!PumpUntilEmpty(fds, eof, shut, &moved)) {
      problem = Fmt("moving bytes in user space: %s", strerror(errno));
      break;
    }
    cycles++;
    // A half-closed socket cannot rejoin a sockmap (sock_map_sk_state_allowed): from the first
    // EOF on, user space carries the connection to its end.
    if (eof[0] || eof[1] || shut[0] || shut[1] || detected[0] > 0 || detected[1] > 0) {
      pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
      poll(p, 2, 10);
      continue;
    }
    if (!map->Resume(&pair, &error)) {
      problem = Fmt("Resume: %s", strerror(error.err));
      break;
    }
    in_map = true;
  }
  if (!problem.empty() && getenv("PROBE_HOLD") != nullptr) {
    fprintf(stderr, "HOLD: %s\n", problem.c_str());
    SleepUs(60000000);
  }
  if (!problem.empty()) up.stop = down.stop = true;
  // sk_drops: TCP's own drops (retransmitted later) and sock_drop() of the sockmap paths.
  uint32_t drops[2] = {0, 0};
  for (int side = 0; side < 2; side++) {
    uint32_t meminfo[SK_MEMINFO_VARS] = {};
    socklen_t len = sizeof(meminfo);
    if (getsockopt(fds[side], SOL_SOCKET, SO_MEMINFO, meminfo, &len) == 0) drops[side] = meminfo[SK_MEMINFO_DROPS];
  }
  map->Remove(pair);
  if (!problem.empty()) {
    CloseWithReset(a);
    CloseWithReset(b);
  }
  for (std::thread& t : threads) t.join();
  if (problem.empty()) {
    close(a);
    close(b);
  }
  close(client);
  close(server);
  bool up_ok = up_reader.eof && up_reader.got == up.sent && up_reader.sha == up.sha;
  bool down_ok = down_reader.eof && down_reader.got == down.sent && down_reader.sha == down.sha;
  // A reported loss must be the whole story of that direction: one gap of exactly that size.
  auto explained = [](const Writer& w, const Reader& r, int64_t lost) {
    return r.eof && static_cast<int64_t>(w.sent - r.got) == lost &&
           r.how == Fmt("gap: %zu bytes missing", static_cast<size_t>(lost));
  };
  bool up_fine = detected[0] > 0 ? explained(up, up_reader, detected[0]) : up_ok;
  bool down_fine = detected[1] > 0 ? explained(down, down_reader, detected[1]) : down_ok;
  bool pass = problem.empty() && up_fine && down_fine && unknown == 0;
  printf("{\"test\":\"%s\",\"pass\":%s,\"seconds\":%" PRIu64 ",\"round_trips_to_user_space\":%" PRIu64
         ",\"drain_waits\":%" PRIu64 ",\"max_drain_wait_us\":%" PRIu64 ",\"up_mib\":%.1f,\"down_mib\":%.1f,"
         "\"moved_by_user_space_mib\":%.1f,\"up_intact\":%s,\"down_intact\":%s,\"up_lost\":%" PRId64
         ",\"down_lost\":%" PRId64 ",\"sk_drops\":[%u,%u],\"up_first_difference\":%" PRId64 ",\"up_how\":\"%s\""
         ",\"down_first_difference\":%" PRId64 ",\"down_how\":\"%s\",\"reader_errors\":\"%s/%s\",\"problem\":\"%s\","
         "\"loss_reported\":[%" PRId64 ",%" PRId64 "],\"loss_reported_at_cycle\":%" PRIu64 ",\"loss_unknown\":%" PRIu64 "}\n",
         bare_stop ? "flap-bare-stop" : "flap", pass ? "true" : "false", seconds, cycles, waits, max_wait_us, up.sent / 1048576.0, down.sent / 1048576.0,
         moved / 1048576.0, up_ok ? "true" : "false", down_ok ? "true" : "false",
         static_cast<int64_t>(up.sent - up_reader.got), static_cast<int64_t>(down.sent - down_reader.got), drops[0],
         drops[1], up_reader.first_difference, up_reader.how.c_str(), down_reader.first_difference,
         down_reader.how.c_str(), strerror(up_reader.err), strerror(down_reader.err), problem.c_str(), detected[0],
         detected[1], detected_cycle, unknown);
  return pass ? 0 : 1;
}

}  // namespace probe
