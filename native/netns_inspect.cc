// netns_inspect.cc — see netns_inspect.h.
#include "netns_inspect.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ns_join.h"
#include "unique_fd.h"

namespace nsproxy {

namespace {

// The child's stream: frames of a header and `length` bytes.
struct Frame {
  enum Tag : uint32_t { kError = 0, kTcp = 1, kTcp6 = 2, kLinks = 3, kAddresses = 4 };
  uint32_t tag;
  int32_t value;    // kError: errno
  uint32_t length;  // kError: the failed call's name follows
};

bool WriteAll(int fd, const void* data, size_t length) {
  const char* p = static_cast<const char*>(data);
  while (length > 0) {
    ssize_t n = write(fd, p, length);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    length -= n;
  }
  return true;
}

bool SendFrame(int fd, uint32_t tag, int32_t value, const void* data, size_t length) {
  Frame frame{tag, value, static_cast<uint32_t>(length)};
  return WriteAll(fd, &frame, sizeof frame) && WriteAll(fd, data, length);
}

[[noreturn]] void ChildFail(int fd, const char* call, int err = errno) {
  SendFrame(fd, Frame::kError, err, call, strlen(call));
  _exit(1);
}

// In the child: a /proc/thread-self/net file, streamed as frames (absent files send nothing).
void SendProcFile(int fd, const char* path, uint32_t tag) {
  int file = open(path, O_RDONLY | O_CLOEXEC);
  if (file < 0) return;
  char buffer[16384];
  for (;;) {
    ssize_t n = read(file, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (!SendFrame(fd, tag, 0, buffer, n)) _exit(1);
  }
  close(file);
}

// In the child: one rtnetlink dump (RTM_GETLINK or RTM_GETADDR), every datagram as a frame.
void SendDump(int fd, int netlink, uint16_t type, uint32_t tag, uint32_t seq) {
  struct {
    nlmsghdr header;
    ifaddrmsg body;  // ifinfomsg is larger: pad below
    char pad[16];
  } request{};
  request.header.nlmsg_len = NLMSG_LENGTH(type == RTM_GETLINK ? sizeof(ifinfomsg) : sizeof(ifaddrmsg));
  request.header.nlmsg_type = type;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  request.header.nlmsg_seq = seq;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(netlink, &request, request.header.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    ChildFail(fd, "sendto");
  }
  alignas(nlmsghdr) char buffer[32768];
  for (;;) {
    ssize_t n = recv(netlink, buffer, sizeof buffer, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      ChildFail(fd, "recv");
    }
    if (!SendFrame(fd, tag, 0, buffer, n)) _exit(1);
    int length = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buffer); NLMSG_OK(h, length); h = NLMSG_NEXT(h, length)) {
      if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) return;
    }
  }
}

[[noreturn]] void Child(pid_t parent, const NamespaceSet& namespaces, int out) {
  if (!DieWithParent(parent)) _exit(1);
  prctl(PR_SET_NAME, "nsproxy-inspect");
  const char* failed = "setns";
  int err = JoinNamespaces(namespaces, &failed);
  if (err != 0) ChildFail(out, failed, err);
  SendProcFile(out, "/proc/thread-self/net/tcp", Frame::kTcp);
  SendProcFile(out, "/proc/thread-self/net/tcp6", Frame::kTcp6);
  int netlink = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (netlink < 0) ChildFail(out, "socket");
  SendDump(out, netlink, RTM_GETLINK, Frame::kLinks, 1);
  SendDump(out, netlink, RTM_GETADDR, Frame::kAddresses, 2);
  _exit(0);
}

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void ParseLinks(const std::string& data, std::vector<NetnsLink>* links) {
  int length = static_cast<int>(data.size());
  for (auto* h = reinterpret_cast<const nlmsghdr*>(data.data()); NLMSG_OK(h, length); h = NLMSG_NEXT(h, length)) {
    if (h->nlmsg_type != RTM_NEWLINK) continue;
    auto* info = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
    NetnsLink link;
    link.index = info->ifi_index;
    link.up = info->ifi_flags & IFF_UP;
    link.loopback = info->ifi_flags & IFF_LOOPBACK;
    int attributes = IFLA_PAYLOAD(h);
    for (auto* a = IFLA_RTA(info); RTA_OK(a, attributes); a = RTA_NEXT(a, attributes)) {
      if (a->rta_type == IFLA_IFNAME) link.name = static_cast<const char*>(RTA_DATA(a));
    }
    links->push_back(link);
  }
}

void ParseAddresses(const std::string& data, std::vector<NetnsAddress>* addresses) {
  int length = static_cast<int>(data.size());
  for (auto* h = reinterpret_cast<const nlmsghdr*>(data.data()); NLMSG_OK(h, length); h = NLMSG_NEXT(h, length)) {
    if (h->nlmsg_type != RTM_NEWADDR) continue;
    auto* info = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
    if (info->ifa_family != AF_INET && info->ifa_family != AF_INET6) continue;
    const void* address = nullptr;
    const void* local = nullptr;
    int attributes = IFA_PAYLOAD(h);
    for (auto* a = IFA_RTA(info); RTA_OK(a, attributes); a = RTA_NEXT(a, attributes)) {
      if (a->rta_type == IFA_ADDRESS) address = RTA_DATA(a);
      if (a->rta_type == IFA_LOCAL) local = RTA_DATA(a);
    }
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on point-to-point links).
    const void* own = local != nullptr ? local : address;
    if (own == nullptr) continue;
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(info->ifa_family, own, text, sizeof text) == nullptr) continue;
    addresses->push_back(NetnsAddress{static_cast<int>(info->ifa_index), info->ifa_family, text, info->ifa_prefixlen,
                                      info->ifa_scope});
  }
}

}  // namespace

bool InspectNetns(int netns_fd, int userns_fd, int timeout_ms, NetnsSnapshot* out, SysError* error) {
  NamespaceSet namespaces;
  namespaces.fds[NamespaceSet::kNet].reset(fcntl(netns_fd, F_DUPFD_CLOEXEC, 0));
  if (userns_fd >= 0) namespaces.fds[NamespaceSet::kUser].reset(fcntl(userns_fd, F_DUPFD_CLOEXEC, 0));
  if (!namespaces.fds[NamespaceSet::kNet].valid() || (userns_fd >= 0 && !namespaces.fds[NamespaceSet::kUser].valid())) {
    error->Set("fcntl");
    return false;
  }
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) < 0) return error->Set("pipe2"), false;
  UniqueFd reader(pipe_fds[0]), writer(pipe_fds[1]);
  pid_t parent = getpid();
  pid_t child = fork();
  if (child < 0) return error->Set("fork"), false;
  if (child == 0) Child(parent, namespaces, writer.get());
  writer.reset();

  std::string stream;
  const int64_t deadline = NowMs() + timeout_ms;
  bool timed_out = false;
  char buffer[16384];
  for (;;) {
    int64_t left = deadline - NowMs();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{reader.get(), POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) < 0 && errno != EINTR) break;
    if (p.revents == 0) continue;
    ssize_t n = read(reader.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    stream.append(buffer, n);
  }
  if (timed_out) kill(child, SIGKILL);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) return error->Set("poll", ETIMEDOUT), false;

  std::string links, addresses;
  for (size_t at = 0; at + sizeof(Frame) <= stream.size();) {
    Frame frame;
    memcpy(&frame, stream.data() + at, sizeof frame);
    at += sizeof frame;
    if (at + frame.length > stream.size()) break;
    std::string payload = stream.substr(at, frame.length);
    at += frame.length;
    switch (frame.tag) {
      case Frame::kError: {
        // The failed call's name, as a static string for SysError.
        static const char* const kCalls[] = {"setns user", "setns net", "sendto", "recv", "socket"};
        const char* call = "inspect";
        for (const char* c : kCalls) {
          if (payload == c) call = c;
        }
        error->Set(call, frame.value);
        return false;
      }
      case Frame::kTcp: out->tcp += payload; break;
      case Frame::kTcp6: out->tcp6 += payload; break;
      case Frame::kLinks: links += payload; break;
      case Frame::kAddresses: addresses += payload; break;
    }
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return error->Set("waitpid", ECHILD), false;
  // Netlink datagrams arrived whole and in order; the frames kept their boundaries only as a
  // byte stream, and every datagram is a sequence of whole messages, so parse the concatenation.
  ParseLinks(links, &out->links);
  ParseAddresses(addresses, &out->addresses);
  return true;
}

}  // namespace nsproxy
