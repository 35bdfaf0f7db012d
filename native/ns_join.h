// ns_join.h — a forked child joins another process's namespaces, the way nsenter(1) does.
//
// setns() into a user or mount namespace needs a single-threaded caller, and Node is not; the
// children forked by exec_in_target.cc and netns_inspect.cc are (fork() copies only the calling
// thread). The namespace fds are opened in the parent, before fork(): the child runs
// async-signal-safe calls only (setns, close), so it never touches malloc's locks.
//
// Order (nsenter's): the user namespace first, when the caller lacks CAP_SYS_ADMIN over the
// others — joining it grants every capability over the namespaces it owns, which is how a rootless
// container's owner gets in with no capability at all — then cgroup, ipc, uts, net, pid, mnt.
// A pid namespace applies to children only: the caller must fork again after JoinNamespaces().
#pragma once

#include <sys/types.h>

#include "syserror.h"
#include "unique_fd.h"

namespace nsproxy {

struct NamespaceSet {
  // In join order. An invalid fd is skipped (not asked for, or the same as the caller's own).
  enum Kind { kUser, kCgroup, kIpc, kUts, kNet, kPid, kMnt, kCount };
  UniqueFd fds[kCount];

  // Opens /proc/PID/ns/{cgroup,ipc,uts,pid,mnt}, skipping those the caller is in already. The
  // user and net namespaces are the caller's to set (a target's netns fd, its owning userns).
  bool OpenOfProcess(pid_t pid, SysError* error);
};

// The CLONE_NEW* flag of a kind, and its name in /proc/PID/ns/ ("mnt").
int NamespaceFlag(NamespaceSet::Kind kind);
const char* NamespaceName(NamespaceSet::Kind kind);

// In a forked, single-threaded child: setns() into every valid fd, in order. Async-signal-safe.
// Returns 0, or the errno of the first failure with *failed set to "setns user", "setns mnt", ...
int JoinNamespaces(const NamespaceSet& set, const char** failed);

// In a forked child: asks for SIGKILL when the parent (thread) dies; false if it already has.
bool DieWithParent(pid_t parent);

}  // namespace nsproxy
