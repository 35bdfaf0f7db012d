// probe_args.h — command-line options and shared set-up of the sockmap probe's commands.
#pragma once

#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "../sockmap.h"
#include "probe_util.h"

namespace probe {

struct Args {
  std::string command;
  std::map<std::string, std::string> values;
  bool Has(const std::string& key) const { return values.count(key) != 0; }
  std::string Str(const std::string& key, const std::string& fallback = "") const {
    auto it = values.find(key);
    return it == values.end() ? fallback : it->second;
  }
  uint64_t Num(const std::string& key, uint64_t fallback) const {
    auto it = values.find(key);
    return it == values.end() ? fallback : strtoull(it->second.c_str(), nullptr, 0);
  }
  int Netns(const std::string& key) const { return Has(key) ? OpenNetns(Str(key).c_str()) : -1; }
};

inline Args Parse(int argc, char** argv) {
  Args args;
  if (argc < 2) Die("usage: sockmap_probe COMMAND [--option value]... (see the file header)");
  args.command = argv[1];
  for (int i = 2; i < argc; i++) {
    std::string key = argv[i];
    if (key.rfind("--", 0) != 0) Die("unexpected argument %s", argv[i]);
    key = key.substr(2);
    if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
      args.values[key] = argv[++i];
    } else {
      args.values[key] = "1";
    }
  }
  return args;
}

inline std::unique_ptr<nsproxy::Sockmap> MakeMap(uint32_t max_sockets,
                                                nsproxy::Sockmap::Program program = nsproxy::Sockmap::Program::kProduction) {
  nsproxy::SysError error;
  std::string log;
  std::unique_ptr<nsproxy::Sockmap> map = nsproxy::Sockmap::Create(max_sockets, &error, &log, program);
  if (!map) Die("Sockmap::Create: %s: %s\n%s", error.syscall, strerror(error.err), log.c_str());
  return map;
}

// The commands implemented outside sockmap_probe.cc.
int Facts(const Args& args);         // probe_facts.cc
int Resets(const Args& args);        // probe_facts.cc
int Backpressure(const Args& args);  // probe_bench.cc
int RunProxy(const Args& args);      // probe_bench.cc
int Flap(const Args& args);          // probe_flap.cc

}  // namespace probe
