// exec_in_target.h — run a command inside a target, as `podman exec` would: in its namespaces,
// chrooted to its root, in its working directory, as its user, with its capabilities at most.
// This is --ready-exec (and `nsproxy check --ready-exec`).
//
// The calling thread (a dedicated one, never libuv's pool) forks a child that joins the
// namespaces (ns_join.h: first the owning user namespace when nsproxy has no CAP_SYS_ADMIN, the
// same zero-capability path as the socket helper) and forks again, because a pid namespace
// applies to children only. The grandchild chroots, changes credentials and execs; the child
// waits for it and reports its wait status. Both run async-signal-safe calls only: everything
// they need (argv, envp, paths) is prepared here before fork(). Output (stdout and stderr
// together) is collected up to a limit; at the deadline the child is killed, and the
// grandchild with it (PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "syserror.h"

namespace nsproxy {

struct ExecSpec {
  pid_t pid = 0;        // the target process: its cgroup/ipc/uts/pid/mnt namespaces, root and
                        // cwd; 0 for a namespace without a process (--netns): netns only
  int pidfd = -1;       // holds `pid`: checked after the /proc files are open (PID reuse)
  int netns_fd = -1;    // the target's network namespace
  int userns_fd = -1;   // joined first when >= 0 (nsproxy lacks CAP_SYS_ADMIN)
  // Credentials in the namespace the command ends up in; -1 / unset: keep nsproxy's own.
  int64_t uid = -1;
  int64_t gid = -1;
  bool set_groups = false;
  std::vector<gid_t> groups;
  // Capability sets as in /proc/PID/status (CapBnd ...); only when `set_caps`.
  bool set_caps = false;
  uint64_t cap_bounding = 0, cap_effective = 0, cap_permitted = 0, cap_inheritable = 0;
  bool no_new_privs = false;
  std::vector<std::string> argv;        // argv[0] as the user wrote it
  std::vector<std::string> candidates;  // paths tried for argv[0] in order (PATH search)
  std::vector<std::string> env;         // "NAME=value"
  int timeout_ms = 10000;
  size_t output_max = 4096;
};

struct ExecResult {
  enum class Outcome { kExited, kTimedOut, kFailed };
  Outcome outcome = Outcome::kFailed;
  int wait_status = 0;        // kExited: as waitpid() reports it
  SysError error;             // kFailed: "setns mnt", "chroot", "setresuid", "execve", ...
  std::string output;         // stdout and stderr, at most output_max bytes
  bool output_truncated = false;
};

// Runs spec on the calling thread (which waits for it). Never throws.
void ExecInTarget(const ExecSpec& spec, ExecResult* result);

}  // namespace nsproxy
