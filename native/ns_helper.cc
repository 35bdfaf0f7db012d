// ns_helper.cc — see ns_helper.h.
#include "ns_helper.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "netns.h"

namespace nsproxy {

namespace {

// Channel messages. Request: what to make. Reply: what was made (the fds ride along as
// SCM_RIGHTS), or the errno of the first failure.
struct Request {
  int32_t family;
  int32_t count;
};
struct Reply {
  int32_t family;
  int32_t count;
  int32_t err;
};

// In the child: send `count` fds (possibly 0) with a reply header. Async-signal-safe.
bool SendReply(int channel, const Reply& reply, const int* fds) {
  char control[CMSG_SPACE(sizeof(int) * NsHelper::kMaxBatch)];
  memset(control, 0, sizeof control);
  iovec iov{const_cast<Reply*>(&reply), sizeof reply};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (reply.count > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * reply.count);
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * reply.count);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * reply.count);
  }
  return sendmsg(channel, &msg, MSG_NOSIGNAL) >= 0;
}

// In the child: close every fd from `low` up except the sorted `keep`. close_range(2) where the
// kernel has it (5.9+); otherwise one close() per possible fd, up to the fd limit.
void CloseAllBut(const int* keep, int count) {
  unsigned low = 0;
  bool ranged = true;
  for (int i = 0; i <= count && ranged; i++) {
    unsigned high = i < count ? static_cast<unsigned>(keep[i]) : ~0U;
    if (high > low) ranged = syscall(SYS_close_range, low, high - 1, 0) == 0;
    low = i < count ? high + 1 : low;
  }
  if (ranged) return;
  rlimit limit{};
  int max_fd = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY ? static_cast<int>(limit.rlim_cur) : 65536;
  for (int fd = 0; fd < max_fd; fd++) {
    if (std::find(keep, keep + count, fd) == keep + count) close(fd);
  }
}

// The helper process after fork(): async-signal-safe calls only, then _exit.
[[noreturn]] void HelperMain(pid_t parent, int channel, int userns_fd, int netns_fd) {
  // stdin/out/err stay (so a crash message could still be seen); everything else goes first.
  int keep[] = {0, 1, 2, channel, userns_fd, netns_fd};
  std::sort(std::begin(keep), std::end(keep));
  CloseAllBut(keep, 6);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(1);  // the parent died before PDEATHSIG was armed
  prctl(PR_SET_NAME, "nsproxy-helper");
  prctl(PR_SET_DUMPABLE, 0);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, nullptr);

  Reply hello{0, 0, 0};
  if (setns(userns_fd, CLONE_NEWUSER) < 0 || setns(netns_fd, CLONE_NEWNET) < 0) hello.err = errno;
  close(userns_fd);
  close(netns_fd);
  if (!SendReply(channel, hello, nullptr) || hello.err != 0) _exit(1);

  for (;;) {
    Request request;
    ssize_t n = recv(channel, &request, sizeof request, 0);
    if (n == 0) _exit(0);  // the daemon closed the channel
    if (n < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    if (n != sizeof request || request.count < 1 || request.count > NsHelper::kMaxBatch) _exit(1);
    int fds[NsHelper::kMaxBatch];
    Reply reply{request.family, 0, 0};
    for (int i = 0; i < request.count; i++) {
      int fd = socket(request.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
      if (fd < 0) {
        reply.err = errno;
        break;
      }
      fds[reply.count++] = fd;
    }
    bool sent = SendReply(channel, reply, fds);
    for (int i = 0; i < reply.count; i++) close(fds[i]);
    if (!sent) _exit(1);
  }
}

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

NsHelper::~NsHelper() { Kill(); }

void NsHelper::Kill() {
  channel_.reset();
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  pid_ = -1;
}

bool NsHelper::Spawn(int userns_fd, int netns_fd, SysError* error) {
  Kill();
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) return error->Set("socketpair");
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    error->Set("fork");
    close(pair[0]);
    close(pair[1]);
    return false;
  }
  if (pid == 0) HelperMain(parent, pair[1], userns_fd, netns_fd);
  close(pair[1]);
  pid_ = pid;
  channel_.reset(pair[0]);
  if (fcntl(channel_.get(), F_SETFL, O_NONBLOCK) < 0) {
    error->Set("fcntl");
    Kill();
    return false;
  }
  return true;
}

bool NsHelper::WaitHello(int timeout_ms, SysError* error) {
  const int64_t deadline = NowMs() + timeout_ms;
  for (;;) {
    int family = -1;
    std::vector<int> none;
    SysError attempt;  // EAGAIN is not a failure: only the last word goes to *error
    if (Receive(&family, &none, &attempt)) {
      if (family == 0) return true;
      for (int fd : none) close(fd);
      continue;  // a late reply of an earlier helper cannot be: but never take it for the hello
    }
    if (attempt.err != EAGAIN) {
      *error = attempt;
      if (attempt.err == ECONNRESET) error->Set("fork", ECHILD);
      Kill();
      return false;
    }
    int64_t left = deadline - NowMs();
    pollfd p{channel_.get(), POLLIN, 0};
    if (left <= 0 || (poll(&p, 1, static_cast<int>(left)) < 0 && errno != EINTR)) {
      error->Set("poll", left <= 0 ? ETIMEDOUT : errno);
      Kill();
      return false;
    }
  }
}

bool NsHelper::Request(int family, int count, SysError* error) {
  ::nsproxy::Request request{family, count};
  if (send(channel_.get(), &request, sizeof request, MSG_NOSIGNAL | MSG_DONTWAIT) != sizeof request) {
    return error->Set("send", errno == EPIPE ? ECONNRESET : errno);
  }
  return true;
}

bool NsHelper::Receive(int* family, std::vector<int>* out, SysError* error) {
  Reply reply{};
  char control[CMSG_SPACE(sizeof(int) * kMaxBatch)];
  iovec iov{&reply, sizeof reply};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(channel_.get(), &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0) return error->Set("recvmsg");
  if (n == 0) return error->Set("recvmsg", ECONNRESET);  // the helper is gone
  // Out of fds here, the kernel drops what it cannot install (MSG_CTRUNC): take what came.
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* fds = reinterpret_cast<const int*>(CMSG_DATA(cmsg));
    out->insert(out->end(), fds, fds + count);
  }
  *family = reply.family;
  if (reply.err != 0) return error->Set(reply.family == 0 ? "setns" : "socket", reply.err);
  return true;
}

UniqueFd SocketInNetns(int netns_fd, int userns_fd, int family, SysError* error) {
  if (userns_fd < 0) {
    if (!EnterNetns(netns_fd, error)) return UniqueFd();
    UniqueFd fd(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
    if (!fd.valid()) error->Set("socket");
    return fd;
  }
  NsHelper helper;
  if (!helper.Spawn(userns_fd, netns_fd, error) || !helper.WaitHello(5000, error) || !helper.Request(family, 1, error)) {
    return UniqueFd();
  }
  std::vector<int> fds;
  pollfd p{helper.channel(), POLLIN, 0};
  if (poll(&p, 1, 5000) <= 0) {
    error->Set("poll", ETIMEDOUT);
    return UniqueFd();
  }
  int got_family = 0;
  bool ok = helper.Receive(&got_family, &fds, error);
  for (size_t i = 1; i < fds.size(); i++) close(fds[i]);
  if (!ok) {
    if (!fds.empty()) close(fds[0]);
    return UniqueFd();
  }
  if (fds.empty()) error->Set("recvmsg", EPROTO);
  return UniqueFd(fds.empty() ? -1 : fds[0]);
}

}  // namespace nsproxy
