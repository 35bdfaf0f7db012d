// sockmap_probe.cc — experiments and stress tests for native/sockmap on real sockets, run as root
// by test/sockmap.test.ts (built by native/test/build-probe.sh). Clients live in one network
// namespace, servers in another, the proxy accepts in the first and connects in the second.
// Each command prints one JSON line and exits 0 when its checks held, 1 when not, 2 on setup
// failure. See native/SOCKMAP.md for what each one shows.
//
//   sockmap_probe available
//   sockmap_probe facts        [--client-netns P] [--server-netns P]
//   sockmap_probe handover     [--conns N] [--concurrency C] [--delay-max-us D] [--no-poke] ...
//   sockmap_probe fin          [--conns N] [--concurrency C] [--naive] [--early-fin]
//   sockmap_probe migrate      --mode stop|pause|unsafe [--conns N] [--after-max-us U] [--max-bytes B]
//   sockmap_probe flap         [--seconds S] [--map-max-us U] [--rate-mbps R] [--bare-stop]
//   sockmap_probe backpressure --engine sockmap|splice [--bytes B] [--seconds S]
//                              [--migrate-above N [--migrate-mode stop|pause]]
//   sockmap_probe resets
//   sockmap_probe proxy        --engine sockmap|splice|paused --to-port P [--listen-port P]
//                              [--listen-netns P] [--target-netns P]   (runs until stdin closes)
#include <csignal>
#include <cinttypes>
#include <memory>
#include <string>

#include "../sockmap.h"
#include "probe_args.h"
#include "probe_peers.h"
#include "probe_proxy.h"
#include "probe_util.h"

using nsproxy::Sockmap;
using namespace probe;

namespace {

// Runs `count` client jobs through a proxy between the two namespaces and tallies the outcomes.
int RunThroughProxy(const Args& args, const char* test, const ProxyOptions& options, void (*serve)(int),
                    const std::function<Outcome(uint16_t, uint64_t, std::string*)>& client, int count,
                    int concurrency, const std::string& extra_json = "") {
  int client_ns = args.Netns("client-netns");
  int server_ns = args.Netns("server-netns");
  std::unique_ptr<Sockmap> map;
  if (options.engine == ProxyOptions::Engine::kSockmap) map = MakeMap(4 * static_cast<uint32_t>(concurrency) + 64);
  Server server(server_ns, serve);
  Proxy proxy(options, map.get(), client_ns, server_ns, 0, server.port());
  proxy.Start();
  Tally tally;
  uint64_t seed = args.Num("seed", NowNs());
  uint64_t t0 = NowNs();
  RunClients(client_ns, count, concurrency, [&](int i) {
    std::string what;
    Outcome outcome = client(proxy.port(), seed + static_cast<uint64_t>(i) * 7919, &what);
    tally.Add(outcome, Fmt("connection %d: %s", i, what.c_str()));
  });
  double seconds = static_cast<double>(NowNs() - t0) / 1e9;
  proxy.Stop();
  server.Stop();
  bool pass = tally.ok == count;
  printf("{\"test\":\"%s\",\"pass\":%s,\"connections\":%d,\"seconds\":%.2f,\"seed\":%" PRIu64 ",%s,%s%s}\n", test,
         pass ? "true" : "false", count, seconds, seed, tally.Json().c_str(), StatsJson(proxy.stats()).c_str(),
         extra_json.c_str());
  return pass ? 0 : 1;
}

// ---- (a) handover ----

int Handover(const Args& args) {
  ProxyOptions options;
  options.poke = !args.Has("no-poke");
  options.insert_delay_max_us = static_cast<uint32_t>(args.Num("delay-max-us", 300));
  options.seed = args.Num("seed", NowNs());
  uint32_t pause = static_cast<uint32_t>(args.Num("pause-max-us", 200));
  int timeout = static_cast<int>(args.Num("timeout-ms", 3000));
  return RunThroughProxy(
      args, options.poke ? "handover" : "handover-no-poke", options, GreetEchoServe,
      [&](uint16_t port, uint64_t seed, std::string* what) { return GreetEchoClient(port, seed, pause, timeout, what); },
      static_cast<int>(args.Num("conns", 2000)), static_cast<int>(args.Num("concurrency", 16)),
      Fmt(",\"poke\":%s,\"delay_max_us\":%u", options.poke ? "true" : "false", options.insert_delay_max_us));
}

// ---- (b) FIN ordering ----

int Fin(const Args& args) {
  ProxyOptions options;
  options.fin = args.Has("naive") ? ProxyOptions::Fin::kNaive : ProxyOptions::Fin::kSafe;
  options.insert_delay_max_us = static_cast<uint32_t>(args.Num("delay-max-us", 0));
  int timeout = static_cast<int>(args.Num("timeout-ms", 5000));
  bool wait_ready = !args.Has("early-fin");
  return RunThroughProxy(
      args, args.Has("naive") ? "fin-naive" : "fin", options, HashServe,
      [&](uint16_t port, uint64_t seed, std::string* what) {
        return HashClient(port, seed, wait_ready, timeout, what);
      },
      static_cast<int>(args.Num("conns", 1000)), static_cast<int>(args.Num("concurrency", 32)));
}

// ---- (d) migration to splice ----

int Migrate(const Args& args) {
  ProxyOptions options;
  std::string mode = args.Str("mode", "pause");
  if (mode == "stop") {
    options.migrate = ProxyOptions::Migrate::kStop;
  } else if (mode == "pause") {
    options.migrate = ProxyOptions::Migrate::kPause;
  } else if (mode == "unsafe") {
    options.migrate = ProxyOptions::Migrate::kUnsafe;
  } else {
    Die("--mode must be stop, pause or unsafe");
  }
  options.migrate_after_max_us = static_cast<uint32_t>(args.Num("after-max-us", 20000));
  options.seed = args.Num("seed", NowNs());
  uint64_t max_bytes = args.Num("max-bytes", 4 << 20);
  int timeout = static_cast<int>(args.Num("timeout-ms", 5000));
  return RunThroughProxy(
      args, ("migrate-" + mode).c_str(), options, StreamServe,
      [&](uint16_t port, uint64_t seed, std::string* what) {
        return StreamClient(port, seed, max_bytes, timeout, what);
      },
      static_cast<int>(args.Num("conns", 500)), static_cast<int>(args.Num("concurrency", 16)),
      Fmt(",\"after_max_us\":%u", options.migrate_after_max_us));
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  Args args = Parse(argc, argv);
  if (args.command == "available") {
    std::string why;
    bool ok = Sockmap::Available(&why);
    for (char& ch : why) {
      if (ch == '"' || ch == '\\' || ch == '\n') ch = ' ';
    }
    printf("{\"available\":%s,\"reason\":\"%s\"}\n", ok ? "true" : "false", why.c_str());
    return 0;
  }
  if (args.command == "handover") return Handover(args);
  if (args.command == "fin") return Fin(args);
  if (args.command == "migrate") return Migrate(args);
  if (args.command == "facts") return Facts(args);
  if (args.command == "backpressure") return Backpressure(args);
  if (args.command == "resets") return Resets(args);
  if (args.command == "proxy") return RunProxy(args);
  if (args.command == "flap") return Flap(args);
  Die("unknown command %s", args.command.c_str());
}
