// probe_bench.cc — (c) backpressure with a receiver that does not read, and the proxy command the
// measurement script (native/test/measure.js) runs.
#include <cinttypes>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "probe_args.h"
#include "probe_peers.h"
#include "probe_proxy.h"
#include "probe_util.h"
#include "sha256.h"

namespace probe {

namespace {

// kB from /proc/meminfo.
uint64_t MeminfoKb(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string name;
  uint64_t value;
  std::string unit;
  while (in >> name >> value) {
    std::getline(in, unit);
    if (name == key + ":") return value;
  }
  return 0;
}

// Pages charged to TCP sockets, all namespaces (the "mem" of /proc/net/sockstat's TCP line).
uint64_t TcpMemPages() {
  std::ifstream in("/proc/net/sockstat");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("TCP:", 0) != 0) continue;
    size_t at = line.find(" mem ");
    if (at != std::string::npos) return strtoull(line.c_str() + at + 5, nullptr, 10);
  }
  return 0;
}

struct Sink {
  std::atomic<bool> release{false};
  std::atomic<uint64_t> received{0};
  std::atomic<bool> eof{false};
  std::string sha;
};

}  // namespace

int Backpressure(const Args& args) {
  int cns = args.Netns("client-netns");
  int sns = args.Netns("server-netns");
  std::string engine = args.Str("engine", "sockmap");
  uint64_t bytes = args.Num("bytes", 1ull << 30);
  uint64_t seconds = args.Num("seconds", 30);
  ProxyOptions options;
  options.engine = engine == "splice" ? ProxyOptions::Engine::kSplice : ProxyOptions::Engine::kSockmap;
  options.sample_pending = true;
  // --migrate-above N [--migrate-mode stop|pause]: migrate a connection whose psock backlog exceeds
  // N bytes (stop: to splice; pause: to recv/send with the program attached).
  options.migrate_above = args.Num("migrate-above", 0);
  std::string mode = args.Str("migrate-mode", "stop");
  if (options.migrate_above != 0) {
    options.migrate = mode == "pause" ? ProxyOptions::Migrate::kPause : ProxyOptions::Migrate::kStop;
  }
  std::unique_ptr<nsproxy::Sockmap> map;
  if (options.engine == ProxyOptions::Engine::kSockmap) map = MakeMap(64);

  Sink sink;
  Server server(sns, [&sink](int fd) {
    while (!sink.release) SleepUs(1000);  // a receiver that does not read
    Sha256 sha;
    char buf[65536];
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        sink.eof = n == 0;
        break;
      }
      sha.Update(buf, static_cast<size_t>(n));
      sink.received += static_cast<uint64_t>(n);
    }
    sink.sha = sha.Hex();
    close(fd);
  });
  Proxy proxy(options, map.get(), cns, sns, 0, server.port());
  proxy.Start();

  std::atomic<uint64_t> sent{0};
  std::atomic<bool> stop{false};
  Sha256 sent_sha;
  std::thread client([&] {
    if (cns >= 0) EnterNetns(cns);
    int fd = ConnectLoopback(proxy.port());
    if (fd < 0) Die("connect to the proxy failed");
    SetNonblock(fd, true);
    Rng gen(42);
    char buf[65536];
    size_t have = 0, off = 0;
    while (!stop && sent < bytes) {
      if (off == have) {
        have = static_cast<size_t>(std::min<uint64_t>(sizeof(buf), bytes - sent));
        gen.Fill(buf, have);
        sent_sha.Update(buf, have);
        off = 0;
      }
      ssize_t n = send(fd, buf + off, have - off, MSG_NOSIGNAL);
      if (n > 0) {
        off += static_cast<size_t>(n);
        sent += static_cast<uint64_t>(n);
      } else if (errno == EAGAIN) {
        pollfd p = {fd, POLLOUT, 0};
        poll(&p, 1, 50);
      } else {
        break;
      }
    }
    // Only whole generated chunks were hashed: send the rest of the last one before the FIN.
    SetNonblock(fd, false);
    if (off < have && WriteAll(fd, buf + off, have - off)) sent += have - off;
    shutdown(fd, SHUT_WR);
    char byte;
    SetTimeouts(fd, 60000);
    while (recv(fd, &byte, 1, 0) > 0) {
    }
    close(fd);
  });

  uint64_t free0 = MeminfoKb("MemFree");
  uint64_t avail0 = MeminfoKb("MemAvailable"), slab0 = MeminfoKb("Slab"), tcp0 = TcpMemPages();
  uint64_t t0 = NowNs(), last_progress = t0, last_sent = 0, max_drop_kb = 0, max_pending = 0;
  std::string samples;
  const char* stopped_by = "all bytes sent";
  for (;;) {
    SleepUs(500000);
    uint64_t now = NowNs(), s = sent, avail = MeminfoKb("MemAvailable");
    uint64_t drop = avail0 > avail ? avail0 - avail : 0;
    max_drop_kb = std::max(max_drop_kb, drop);
    max_pending = std::max<uint64_t>(max_pending, proxy.stats().pending_now);
    uint64_t free_kb = MeminfoKb("MemFree");
    samples += Fmt("%s{\"t\":%.1f,\"sent_mib\":%.1f,\"pending_mib\":%.1f,\"mem_available_drop_mib\":%.1f,"
                   "\"mem_free_drop_mib\":%.1f,\"slab_mib\":%.1f,\"tcp_mem_mib\":%.1f}",
                   samples.empty() ? "" : ",", static_cast<double>(now - t0) / 1e9, s / 1048576.0,
                   proxy.stats().pending_now / 1048576.0, drop / 1024.0,
                   free0 > free_kb ? (free0 - free_kb) / 1024.0 : 0.0, MeminfoKb("Slab") / 1024.0,
                   TcpMemPages() * 4096 / 1048576.0);
    if (s != last_sent) last_progress = now;
    last_sent = s;
    if (s >= bytes) break;
    if (now - last_progress > 3000000000ull) {
      stopped_by = "the sender blocked for 3 s";
      break;
    }
    if (now - t0 > seconds * 1000000000ull) {
      stopped_by = "time limit";
      break;
    }
    if (avail < (2ull << 20)) {
      stopped_by = "MemAvailable below 2 GiB";
      break;
    }
  }
  stop = true;
  uint64_t slab_peak = MeminfoKb("Slab"), tcp_peak = TcpMemPages();
  sink.release = true;
  client.join();
  uint64_t deadline = NowNs() + 120000000000ull;
  while (!sink.eof && NowNs() < deadline && (sink.received < sent || !sink.eof)) SleepUs(10000);
  server.Stop();
  proxy.Stop();
  std::string expected = sent_sha.Hex();
  bool intact = sink.eof && sink.received == sent && sink.sha == expected;
  if (options.migrate_above != 0) engine += Fmt("+%s-above-%" PRIu64, mode.c_str(), options.migrate_above);
  printf("{\"test\":\"backpressure\",\"engine\":\"%s\",\"pass\":%s,\"offered_mib\":%.0f,\"sent_mib\":%.1f,"
         "\"stopped_by\":\"%s\",\"max_pending_mib\":%.1f,\"max_mem_available_drop_mib\":%.1f,"
         "\"slab_mib_before\":%.1f,\"slab_mib_at_peak\":%.1f,\"tcp_mem_mib_before\":%.1f,\"tcp_mem_mib_at_peak\":%.1f,"
         "\"received_after_release_mib\":%.1f,\"intact\":%s,\"samples\":[%s],%s}\n",
         engine.c_str(), intact ? "true" : "false", bytes / 1048576.0, sent.load() / 1048576.0, stopped_by,
         max_pending / 1048576.0, max_drop_kb / 1024.0, slab0 / 1024.0, slab_peak / 1024.0,
         tcp0 * 4096 / 1048576.0, tcp_peak * 4096 / 1048576.0, sink.received.load() / 1048576.0,
         intact ? "true" : "false", samples.c_str(), StatsJson(proxy.stats()).c_str());
  return intact ? 0 : 1;
}

int RunProxy(const Args& args) {
  ProxyOptions options;
  std::string engine = args.Str("engine", "sockmap");
  options.engine = engine == "splice" ? ProxyOptions::Engine::kSplice : ProxyOptions::Engine::kSockmap;
  if (engine == "paused") {  // sockmap, paused at once: recv()/send() with the program attached
    options.migrate = ProxyOptions::Migrate::kPause;
    options.migrate_after_max_us = 1;
  } else if (engine != "sockmap" && engine != "splice") {
    Die("--engine must be sockmap, splice or paused");
  }
  std::unique_ptr<nsproxy::Sockmap> map;
  if (options.engine == ProxyOptions::Engine::kSockmap) map = MakeMap(65536);
  if (!args.Has("to-port")) Die("proxy needs --to-port");
  Proxy proxy(options, map.get(), args.Netns("listen-netns"), args.Netns("target-netns"),
              static_cast<uint16_t>(args.Num("listen-port", 0)), static_cast<uint16_t>(args.Num("to-port", 0)));
  proxy.Start();
  printf("{\"listening\":%u}\n", proxy.port());
  fflush(stdout);
  char buf[256];
  while (read(0, buf, sizeof(buf)) > 0) {
  }
  proxy.Stop();
  printf("{%s}\n", StatsJson(proxy.stats()).c_str());
  return 0;
}

}  // namespace probe
