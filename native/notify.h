// notify.h — sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET.
// In the addon because Node cannot send on an AF_UNIX datagram socket.
#pragma once

#include <string>

#include "syserror.h"

namespace nsproxy {

// Sends `state` ("READY=1\nSTATUS=...") to `socket_path` (a path, or "@name" for the abstract
// namespace). Returns false with *error on failure.
bool SdNotify(const std::string& socket_path, const std::string& state, SysError* error);

}  // namespace nsproxy
