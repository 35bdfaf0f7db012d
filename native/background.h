// background.h — binding functions that work in the background: the probe on a thread of its own
// (never libuv's pool: a setns() there would leak into unrelated work), reporting back through a
// thread-safe call; FdWatch in the JavaScript thread's event loop.
#pragma once

#include <napi.h>

namespace nsproxy {

// probeTcp(netnsFd, usernsFd, address, port, timeoutMs): Promise<null | {code, errno, syscall}>
Napi::Value ProbeTcpJs(const Napi::CallbackInfo& info);

// new FdWatch(fd, onReadable): calls onReadable() once when fd becomes readable (a pidfd does
// when its process exits); close() cancels. Watched by the JavaScript thread's own event loop
// (no thread); does not keep the event loop alive.
Napi::Function DefineFdWatch(Napi::Env env);

}  // namespace nsproxy
