// background.h — binding functions whose work runs on a thread of its own (never libuv's pool:
// a setns() there would leak into unrelated work) and reports back through a thread-safe call.
#pragma once

#include <napi.h>

namespace nsproxy {

// probeTcp(netnsFd, usernsFd, address, port, timeoutMs): Promise<null | {code, errno, syscall}>
Napi::Value ProbeTcpJs(const Napi::CallbackInfo& info);

// new FdWatch(fd, onReadable): calls onReadable() once when fd becomes readable (a pidfd does
// when its process exits); close() cancels. Does not keep the event loop alive.
Napi::Function DefineFdWatch(Napi::Env env);

}  // namespace nsproxy
