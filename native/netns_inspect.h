// netns_inspect.h — what a network namespace holds, for `nsproxy check`: its interfaces and
// addresses (rtnetlink) and its TCP sockets (/proc/net/tcp and tcp6 as seen from inside).
//
// A namespace named by --netns has no process whose /proc/PID/net could be read, so a forked,
// single-threaded child joins it (after its owning user namespace when nsproxy lacks
// CAP_SYS_ADMIN: the same zero-capability path as the socket helper), reads
// /proc/thread-self/net/tcp{,6} and runs the two netlink dumps there, and streams what it got
// back over a pipe. The child runs async-signal-safe calls only; the parsing happens here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "syserror.h"

namespace nsproxy {

struct NetnsLink {
  int index = 0;
  std::string name;
  bool up = false;
  bool loopback = false;
};

struct NetnsAddress {
  int index = 0;        // of its link
  int family = 0;       // AF_INET, AF_INET6
  std::string address;  // numeric
  int prefix_length = 0;
  int scope = 0;        // RT_SCOPE_HOST (254) for loopback, RT_SCOPE_LINK (253), 0 = universe
};

struct NetnsSnapshot {
  std::vector<NetnsLink> links;
  std::vector<NetnsAddress> addresses;
  std::string tcp;   // /proc/net/tcp as read inside
  std::string tcp6;  // /proc/net/tcp6 (empty without IPv6)
};

// Fills *out from inside `netns_fd` (joining `userns_fd` first when >= 0). Runs on the calling
// thread, which waits up to timeout_ms. False with *error when the child could not get in.
bool InspectNetns(int netns_fd, int userns_fd, int timeout_ms, NetnsSnapshot* out, SysError* error);

}  // namespace nsproxy
