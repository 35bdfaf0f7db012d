// target_jobs.h — binding functions for work done inside a target by a forked child
// (exec_in_target.h, netns_inspect.h). Each runs on a thread of its own (never libuv's pool),
// which forks and waits, and settles a Promise through a thread-safe call.
#pragma once

#include <napi.h>

namespace nsproxy {

// execInTarget(spec): Promise<{outcome, exitCode?, signal?, code?, errno?, syscall?, output, truncated}>
Napi::Value ExecInTargetJs(const Napi::CallbackInfo& info);

// inspectNetns(netnsFd, usernsFd, timeoutMs): Promise<{links, addresses, tcp, tcp6}>; rejects
// with a Node-shaped error when the namespace could not be entered.
Napi::Value InspectNetnsJs(const Napi::CallbackInfo& info);

}  // namespace nsproxy
