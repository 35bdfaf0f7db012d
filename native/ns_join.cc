// ns_join.cc — see ns_join.h.
#include "ns_join.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace nsproxy {

namespace {

constexpr int kFlags[NamespaceSet::kCount] = {CLONE_NEWUSER, CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWUTS,
                                              CLONE_NEWNET,  CLONE_NEWPID,    CLONE_NEWNS};
constexpr const char* kNames[NamespaceSet::kCount] = {"user", "cgroup", "ipc", "uts", "net", "pid", "mnt"};
// What JoinNamespaces reports as the failed call, per kind (static strings: the child cannot build any).
constexpr const char* kSetnsNames[NamespaceSet::kCount] = {"setns user", "setns cgroup", "setns ipc", "setns uts",
                                                           "setns net",  "setns pid",    "setns mnt"};

bool SameFile(int fd, const std::string& path) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

int NamespaceFlag(NamespaceSet::Kind kind) { return kFlags[kind]; }
const char* NamespaceName(NamespaceSet::Kind kind) { return kNames[kind]; }

bool NamespaceSet::OpenOfProcess(pid_t pid, SysError* error) {
  for (Kind kind : {kCgroup, kIpc, kUts, kPid, kMnt}) {
    std::string path = "/proc/" + std::to_string(pid) + "/ns/" + kNames[kind];
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT && kind == kCgroup) continue;  // a kernel without cgroup namespaces
      error->Set("open");
      return false;
    }
    fds[kind].reset(fd);
    // Joining a namespace we are in already is at best useless (a mount namespace would also
    // reset root and cwd): skip it.
    if (SameFile(fd, std::string("/proc/thread-self/ns/") + kNames[kind])) fds[kind].reset();
  }
  return true;
}

int JoinNamespaces(const NamespaceSet& set, const char** failed) {
  for (int kind = 0; kind < NamespaceSet::kCount; kind++) {
    if (!set.fds[kind].valid()) continue;
    if (setns(set.fds[kind].get(), kFlags[kind]) < 0) {
      *failed = kSetnsNames[kind];
      return errno;
    }
  }
  return 0;
}

bool DieWithParent(pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  return getppid() == parent;
}

}  // namespace nsproxy
