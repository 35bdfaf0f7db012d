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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

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

constexpr int kChannelFd = 3;  // where the child keeps its end of the channel

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

// The helper process after fork(): async-signal-safe calls only, then _exit.
[[noreturn]] void HelperMain(pid_t parent, int channel, int userns_fd, int netns_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(1);  // the parent died before PDEATHSIG was armed
  prctl(PR_SET_NAME, "nsproxy-helper");
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, nullptr);

  Reply hello{0, 0, 0};
  if (setns(userns_fd, CLONE_NEWUSER) < 0 || setns(netns_fd, CLONE_NEWNET) < 0) hello.err = errno;
  // Keep only the channel: no listener, no namespace fd, nothing of the daemon's.
  if (channel != kChannelFd && dup2(channel, kChannelFd) < 0) _exit(1);
  syscall(SYS_close_range, kChannelFd + 1, ~0U, 0);
  if (!SendReply(kChannelFd, hello, nullptr) || hello.err != 0) _exit(1);

  for (;;) {
    Request request;
    ssize_t n = recv(kChannelFd, &request, sizeof request, 0);
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
    bool sent = SendReply(kChannelFd, reply, fds);
    for (int i = 0; i < reply.count; i++) close(fds[i]);
    if (!sent) _exit(1);
  }
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
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
    error->Set("socketpair");
    return false;
  }
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

  // The helper's first word: did it get into the namespaces?
  int family = 0;
  std::vector<int> none;
  if (!Receive(true, &family, &none, error)) {
    if (error->err == ECONNRESET || error->err == EPIPE) error->Set("fork", ECHILD);
    Kill();
    return false;
  }
  fcntl(channel_.get(), F_SETFL, fcntl(channel_.get(), F_GETFL) | O_NONBLOCK);
  return true;
}

bool NsHelper::Request(int family, int count, SysError* error) {
  ::nsproxy::Request request{family, count};
  if (send(channel_.get(), &request, sizeof request, MSG_NOSIGNAL) != sizeof request) {
    error->Set("send");
    return false;
  }
  return true;
}

bool NsHelper::Receive(bool wait, int* family, std::vector<int>* out, SysError* error) {
  if (wait) {
    pollfd p{channel_.get(), POLLIN, 0};
    while (poll(&p, 1, 5000) < 0 && errno == EINTR) {
    }
  }
  Reply reply{};
  char control[CMSG_SPACE(sizeof(int) * kMaxBatch)];
  iovec iov{&reply, sizeof reply};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(channel_.get(), &msg, MSG_CMSG_CLOEXEC | (wait ? 0 : MSG_DONTWAIT));
  if (n < 0) {
    error->Set("recvmsg");
    return false;
  }
  if (n == 0) {
    error->Set("recvmsg", ECONNRESET);  // the helper is gone
    return false;
  }
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* fds = reinterpret_cast<const int*>(CMSG_DATA(cmsg));
    out->insert(out->end(), fds, fds + count);
  }
  *family = reply.family;
  if (reply.err != 0) {
    error->Set("setns", reply.err);  // a failure in the helper: setns, or socket
    if (reply.family != 0) error->syscall = "socket";
    return false;
  }
  return true;
}

int SocketInNetns(int netns_fd, int userns_fd, int family, SysError* error) {
  if (userns_fd < 0) {
    if (!EnterNetns(netns_fd, error)) return -1;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) error->Set("socket");
    return fd;
  }
  NsHelper helper;
  std::vector<int> fds;
  int got_family = 0;
  if (!helper.Spawn(userns_fd, netns_fd, error) || !helper.Request(family, 1, error) ||
      !helper.Receive(true, &got_family, &fds, error)) {
    for (int fd : fds) close(fd);
    return -1;
  }
  return fds.empty() ? error->Set("recvmsg", EPROTO) : fds[0];
}

}  // namespace nsproxy
