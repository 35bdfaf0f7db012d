// probe.h — is the target accepting? A TCP connect from inside its network namespace.
#pragma once

#include "sockets.h"

namespace nsproxy {

// Makes a socket inside `netns_fd` (SocketInNetns: setns on this thread — so call it on a thread
// of its own, never on libuv's pool — or through a one-shot helper when `userns_fd` >= 0),
// connects to `target` with a timeout and closes. Returns 0 when the target accepted, else the
// errno (ECONNREFUSED, ETIMEDOUT, EPERM from setns, ...); *syscall names the call that failed.
int ProbeTcp(int netns_fd, int userns_fd, const Endpoint& target, int timeout_ms, const char** syscall);

}  // namespace nsproxy
