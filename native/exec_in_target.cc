// exec_in_target.cc — see exec_in_target.h.
#include "exec_in_target.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "ns_join.h"
#include "unique_fd.h"

namespace nsproxy {

namespace {

// What the child and the grandchild tell the parent over the status pipe (one write each, atomic).
struct Report {
  enum Kind : int32_t { kFailed = 1, kExited = 2 };
  int32_t kind;
  int32_t value;   // kFailed: errno; kExited: wait status
  char stage[24];  // kFailed: the call that failed
};

// The syscall names a Report may carry, as static strings for SysError::syscall.
const char* const kStages[] = {"setns user", "setns cgroup", "setns ipc", "setns uts", "setns net", "setns pid",
                               "setns mnt",  "fork",         "waitpid",   "fchdir",    "chroot",    "setgroups",
                               "prctl",      "setresgid",    "setresuid", "capset",    "dup",       "execve"};

const char* StaticStage(const char* name) {
  for (const char* stage : kStages) {
    if (strncmp(stage, name, sizeof Report{}.stage) == 0) return stage;
  }
  return "exec";
}

// Async-signal-safe: no library call but write().
void SendReport(int fd, int32_t kind, int32_t value, const char* stage) {
  Report report{};
  report.kind = kind;
  report.value = value;
  for (size_t i = 0; stage[i] != '\0' && i + 1 < sizeof report.stage; i++) report.stage[i] = stage[i];
  ssize_t ignored = write(fd, &report, sizeof report);
  (void)ignored;
}

[[noreturn]] void Fail(int status_fd, const char* stage, int err = errno) {
  SendReport(status_fd, Report::kFailed, err, stage);
  _exit(126);
}

// Moves fd out of the way of 0..2 (and of anything the caller still needs to dup2 there).
int Lift(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 10); }

struct Prepared {
  const ExecSpec* spec;
  NamespaceSet namespaces;
  UniqueFd root, cwd, devnull;
  std::vector<char*> argv, envp;
  std::vector<const char*> candidates;
  pid_t parent = 0;
};

// The grandchild: inside every namespace (the pid one too), async-signal-safe calls only.
// `child` is its parent as getppid() shows it: 0 from inside another pid namespace.
[[noreturn]] void Grandchild(const Prepared& p, pid_t child, int out_fd, int status_fd) {
  const ExecSpec& spec = *p.spec;
  if (!DieWithParent(child)) _exit(1);
  if (p.root.valid()) {
    // Joining the mount namespace made its root ours, which is the container's root when the
    // runtime used pivot_root (runc, crun): then no chroot() is needed, and none is done (the
    // hardened units' seccomp filter, @system-service, does not allow it).
    struct stat target_root, own_root;
    bool same = fstat(p.root.get(), &target_root) == 0 && stat("/", &own_root) == 0 &&
                target_root.st_dev == own_root.st_dev && target_root.st_ino == own_root.st_ino;
    if (!same && (fchdir(p.root.get()) < 0 || chroot(".") < 0)) Fail(status_fd, "chroot");
    if (!p.cwd.valid() || fchdir(p.cwd.get()) < 0) {
      if (chdir("/") < 0) Fail(status_fd, "fchdir");
    }
  }
  // A user namespace may deny setgroups(); then the user's own groups stay, unmapped.
  if (spec.set_groups && setgroups(spec.groups.size(), spec.groups.data()) < 0 &&
      !(errno == EPERM && p.namespaces.fds[NamespaceSet::kUser].valid())) {
    Fail(status_fd, "setgroups");
  }
  if (spec.set_caps) {
    for (int cap = 0; cap < 64; cap++) {
      if (spec.cap_bounding & (1ULL << cap)) continue;
      if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
        if (errno == EINVAL) break;  // past the kernel's last capability
        Fail(status_fd, "prctl");
      }
    }
  }
  if (spec.gid >= 0 && setresgid(spec.gid, spec.gid, spec.gid) < 0) Fail(status_fd, "setresgid");
  if (spec.uid >= 0 && setresuid(spec.uid, spec.uid, spec.uid) < 0) Fail(status_fd, "setresuid");
  if (spec.set_caps) {
    // Root in there keeps capabilities through setresuid: bring them down to the target's. Anyone
    // else lost them with the uid change; clear the inheritable set too.
    bool root = geteuid() == 0;
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    uint64_t eff = root ? spec.cap_effective & spec.cap_permitted : 0;
    uint64_t prm = root ? spec.cap_permitted : 0;
    uint64_t inh = root ? spec.cap_inheritable : 0;
    for (int i = 0; i < 2; i++) {
      data[i].effective = static_cast<uint32_t>(eff >> (32 * i));
      data[i].permitted = static_cast<uint32_t>(prm >> (32 * i));
      data[i].inheritable = static_cast<uint32_t>(inh >> (32 * i));
    }
    if (syscall(SYS_capset, &header, data) < 0) Fail(status_fd, "capset");
  }
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);  // nothing of nsproxy's own privilege
  if (spec.no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) Fail(status_fd, "prctl");
  if (!DieWithParent(child)) _exit(1);  // a credential change cleared it

  // What any exec'd program expects: default signal dispositions, nothing blocked (Node ignores
  // SIGPIPE, and ignored signals survive execve).
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < 65; sig++) sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  // stdin /dev/null, stdout and stderr the output pipe, nothing else open across execve.
  int devnull = Lift(p.devnull.get()), out = Lift(out_fd), status = Lift(status_fd);
  if (devnull < 0 || out < 0 || status < 0) Fail(status_fd, "dup");
  if (dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) Fail(status, "dup");
  syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);

  int err = ENOENT;
  bool denied = false;
  for (const char* path : p.candidates) {
    execve(path, p.argv.data(), p.envp.data());
    if (errno == EACCES) {
      denied = true;
    } else if (errno != ENOENT && errno != ENOTDIR) {
      err = errno;
      break;
    }
  }
  Fail(status, "execve", err == ENOENT && denied ? EACCES : err);
}

// The child: joins the namespaces, forks the grandchild, reports its wait status.
[[noreturn]] void Child(const Prepared& p, int out_read, int out_write, int status_read, int status_write) {
  if (!DieWithParent(p.parent)) _exit(1);
  prctl(PR_SET_NAME, "nsproxy-exec");
  close(out_read);
  close(status_read);
  const char* failed = "setns";
  int err = JoinNamespaces(p.namespaces, &failed);
  if (err != 0) Fail(status_write, failed, err);
  pid_t self = p.namespaces.fds[NamespaceSet::kPid].valid() ? 0 : getpid();
  pid_t grandchild = fork();
  if (grandchild < 0) Fail(status_write, "fork");
  if (grandchild == 0) Grandchild(p, self, out_write, status_write);
  close(out_write);  // the output pipe ends when the grandchild (and whatever it started) closes it
  int status = 0;
  while (waitpid(grandchild, &status, 0) < 0) {
    if (errno != EINTR) Fail(status_write, "waitpid");
  }
  SendReport(status_write, Report::kExited, status, "");
  _exit(0);
}

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

// Everything the children need, opened and laid out before fork().
bool Prepare(const ExecSpec& spec, Prepared* p, SysError* error) {
  p->spec = &spec;
  p->parent = getpid();
  if (spec.pid > 0) {
    if (!p->namespaces.OpenOfProcess(spec.pid, error)) return false;
    std::string proc = "/proc/" + std::to_string(spec.pid);
    p->root.reset(open((proc + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!p->root.valid()) return error->Set("open"), false;
    p->cwd.reset(open((proc + "/cwd").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));  // optional
    // PID reuse: what we opened belongs to the process we hold only if it is still alive.
    if (spec.pidfd >= 0) {
      pollfd exited{spec.pidfd, POLLIN, 0};
      if (poll(&exited, 1, 0) != 0) return error->Set("pidfd", ESRCH), false;
    }
  }
  p->namespaces.fds[NamespaceSet::kNet].reset(fcntl(spec.netns_fd, F_DUPFD_CLOEXEC, 0));
  if (!p->namespaces.fds[NamespaceSet::kNet].valid()) return error->Set("fcntl"), false;
  if (spec.userns_fd >= 0) {
    p->namespaces.fds[NamespaceSet::kUser].reset(fcntl(spec.userns_fd, F_DUPFD_CLOEXEC, 0));
    if (!p->namespaces.fds[NamespaceSet::kUser].valid()) return error->Set("fcntl"), false;
  }
  p->devnull.reset(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!p->devnull.valid()) return error->Set("open"), false;
  for (const std::string& arg : spec.argv) p->argv.push_back(const_cast<char*>(arg.c_str()));
  p->argv.push_back(nullptr);
  for (const std::string& var : spec.env) p->envp.push_back(const_cast<char*>(var.c_str()));
  p->envp.push_back(nullptr);
  for (const std::string& path : spec.candidates) p->candidates.push_back(path.c_str());
  return true;
}

}  // namespace

void ExecInTarget(const ExecSpec& spec, ExecResult* result) {
  result->outcome = ExecResult::Outcome::kFailed;
  if (spec.argv.empty() || spec.candidates.empty()) {
    result->error.Set("execve", EINVAL);
    return;
  }
  Prepared p;
  if (!Prepare(spec, &p, &result->error)) return;
  int out[2], status[2];
  if (pipe2(out, O_CLOEXEC) < 0) return (void)result->error.Set("pipe2");
  if (pipe2(status, O_CLOEXEC) < 0) {
    result->error.Set("pipe2");
    close(out[0]);
    close(out[1]);
    return;
  }
  UniqueFd out_read(out[0]), out_write(out[1]), status_read(status[0]), status_write(status[1]);
  pid_t child = fork();
  if (child < 0) return (void)result->error.Set("fork");
  if (child == 0) Child(p, out_read.get(), out_write.get(), status_read.get(), status_write.get());
  out_write.reset();
  status_write.reset();

  const int64_t deadline = NowMs() + spec.timeout_ms;
  std::vector<Report> reports;
  char partial[sizeof(Report)];
  size_t partial_len = 0;
  bool timed_out = false;
  char buffer[4096];
  auto take_output = [&](ssize_t n) {
    size_t room = spec.output_max > result->output.size() ? spec.output_max - result->output.size() : 0;
    result->output.append(buffer, std::min(static_cast<size_t>(n), room));
    if (static_cast<size_t>(n) > room) result->output_truncated = true;
  };
  bool out_open = true;
  for (;;) {
    int64_t left = deadline - NowMs();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd fds[2] = {{status_read.get(), POLLIN, 0}, {out_open ? out_read.get() : -1, POLLIN, 0}};
    int ready = poll(fds, 2, static_cast<int>(left));
    if (ready < 0 && errno != EINTR) {
      result->error.Set("poll");
      kill(child, SIGKILL);
      break;
    }
    if (fds[1].revents != 0) {
      ssize_t n = read(out_read.get(), buffer, sizeof buffer);
      if (n > 0) take_output(n);
      if (n == 0 || (n < 0 && errno != EINTR)) out_open = false;
    }
    if (fds[0].revents != 0) {
      ssize_t n = read(status_read.get(), partial + partial_len, sizeof partial - partial_len);
      if (n > 0) {
        partial_len += n;
        if (partial_len == sizeof partial) {
          Report report;
          memcpy(&report, partial, sizeof report);
          reports.push_back(report);
          partial_len = 0;
        }
      } else if (n == 0 || errno != EINTR) {
        break;  // the child and the grandchild are done (or gone)
      }
    }
  }
  if (timed_out) kill(child, SIGKILL);  // the grandchild follows (PR_SET_PDEATHSIG)
  // What the grandchild wrote before it ended is in the pipe; whatever it left running may keep
  // the pipe open, so take what is there and do not wait for EOF.
  fcntl(out_read.get(), F_SETFL, O_NONBLOCK);
  for (int i = 0; out_open && i < 64; i++) {
    ssize_t n = read(out_read.get(), buffer, sizeof buffer);
    if (n <= 0) break;
    take_output(n);
  }
  int child_status = 0;
  while (waitpid(child, &child_status, 0) < 0 && errno == EINTR) {
  }
  if (result->error) return;
  if (timed_out) {
    result->outcome = ExecResult::Outcome::kTimedOut;
    return;
  }
  for (const Report& report : reports) {
    if (report.kind == Report::kFailed) {
      char stage[sizeof report.stage + 1] = {};
      memcpy(stage, report.stage, sizeof report.stage);
      result->error.Set(StaticStage(stage), report.value);
      return;
    }
  }
  for (const Report& report : reports) {
    if (report.kind == Report::kExited) {
      result->outcome = ExecResult::Outcome::kExited;
      result->wait_status = report.value;
      return;
    }
  }
  result->error.Set("waitpid", ECHILD);  // the child died without a word
}

}  // namespace nsproxy
