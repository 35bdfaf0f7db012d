// background.cc — see background.h.
#include "background.h"

#include <fcntl.h>
#include <unistd.h>
#include <uv.h>

#include <thread>

#include "errors.h"
#include "probe.h"
#include "unique_fd.h"

namespace nsproxy {

namespace {

struct ProbeTask {
  Napi::Promise::Deferred deferred;
  UniqueFd netns;   // our own duplicates: JS may close its fds while the probe runs
  UniqueFd userns;  // invalid: enter the netns directly
  Endpoint target;
  int timeout_ms = 0;
  int err = 0;
  const char* syscall = nullptr;
};

void SettleProbe(Napi::Env env, Napi::Function, void*, ProbeTask* task) {
  if (env != nullptr) {
    if (task->err == 0) {
      task->deferred.Resolve(env.Null());
    } else {
      Napi::Object failure = Napi::Object::New(env);
      failure.Set("code", ErrnoName(task->err));
      failure.Set("errno", -task->err);
      failure.Set("syscall", task->syscall ? task->syscall : "unknown");
      task->deferred.Resolve(failure);
    }
  }
  delete task;
}

}  // namespace

Napi::Value ProbeTcpJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsString() || !info[3].IsNumber() ||
      !info[4].IsNumber()) {
    throw Napi::TypeError::New(env, "probeTcp(netnsFd, usernsFd, address, port, timeoutMs)");
  }
  auto* task = new ProbeTask{Napi::Promise::Deferred::New(env)};
  if (!ParseEndpoint(info[2].As<Napi::String>().Utf8Value(), info[3].As<Napi::Number>().Int32Value(), &task->target)) {
    delete task;
    throw Napi::RangeError::New(env, "probeTcp: not a numeric address and port");
  }
  int userns_fd = info[1].As<Napi::Number>().Int32Value();
  task->netns.reset(fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0));
  if (userns_fd >= 0) task->userns.reset(fcntl(userns_fd, F_DUPFD_CLOEXEC, 0));
  if (!task->netns.valid() || (userns_fd >= 0 && !task->userns.valid())) {
    int err = errno;
    delete task;
    throw ErrnoError(env, err, "fcntl");
  }
  task->timeout_ms = info[4].As<Napi::Number>().Int32Value();
  Napi::Promise promise = task->deferred.Promise();
  auto done = Napi::TypedThreadSafeFunction<void, ProbeTask, SettleProbe>::New(env, "nsproxy-probe", 0, 1);
  std::thread([task, done]() mutable {
    task->err = ProbeTcp(task->netns.get(), task->userns.get(), task->target, task->timeout_ms, &task->syscall);
    if (done.BlockingCall(task) != napi_ok) delete task;
    done.Release();
  }).detach();
  return promise;
}

namespace {

// Watches the fd from the main thread's own event loop (libuv's epoll set, uv_poll): no thread
// of its own, and the callback runs on the JavaScript thread directly. The handle is unref'd,
// so a watch never keeps Node alive.
class FdWatch : public Napi::ObjectWrap<FdWatch> {
 public:
  FdWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdWatch>(info), context_(info.Env(), "nsproxy-fdwatch") {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
      throw Napi::TypeError::New(env, "new FdWatch(fd, onReadable)");
    }
    watched_.reset(fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0));
    if (!watched_.valid()) throw ErrnoError(env, errno, "fcntl");
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "FdWatch: no event loop");
    auto* poll = new uv_poll_t;
    int err = uv_poll_init(loop, poll, watched_.get());
    if (err != 0) {
      delete poll;
      throw ErrnoError(env, -err, "epoll_ctl");
    }
    poll->data = this;
    poll_ = poll;
    err = uv_poll_start(poll_, UV_READABLE, OnReadable);
    if (err != 0) {
      Close();
      throw ErrnoError(env, -err, "epoll_ctl");
    }
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    // Node tears the environment down (workers, tests) before it frees the loop: close first.
    hooked_ = napi_add_env_cleanup_hook(env, CloseHook, this) == napi_ok;
  }

  ~FdWatch() override { Close(); }

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdWatch", {InstanceMethod("close", &FdWatch::CloseJs)});
  }

 private:
  // Once: the watch closes itself, then calls back (as from any other event, with the microtasks
  // that follow). An exception there is the process's uncaught exception, as for a thread-safe call.
  static void OnReadable(uv_poll_t* poll, int /*status*/, int /*events*/) {
    auto* self = static_cast<FdWatch*>(poll->data);
    self->Close();
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    self->Ref();  // the callback may drop the last JavaScript reference to this watch
    try {
      self->callback_.MakeCallback(env.Global(), {}, self->context_);
    } catch (const Napi::Error& error) {
      napi_fatal_exception(env, error.Value());
    }
    self->Unref();
  }

  // Stops watching and closes the fd; idempotent. The handle's memory goes when libuv says it
  // is closed, which may be after this object is gone.
  void Close() {
    if (poll_ == nullptr) return;
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
    poll_ = nullptr;
    watched_.reset();
    if (hooked_) napi_remove_env_cleanup_hook(Env(), CloseHook, this);
    hooked_ = false;
  }

  static void CloseHook(void* data) {
    auto* self = static_cast<FdWatch*>(data);
    self->hooked_ = false;  // being run: Node drops it itself
    self->Close();
  }

  Napi::Value CloseJs(const Napi::CallbackInfo& info) {
    Close();
    return info.Env().Undefined();
  }

  UniqueFd watched_;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
  Napi::AsyncContext context_;
  bool hooked_ = false;
};

}  // namespace

Napi::Function DefineFdWatch(Napi::Env env) { return FdWatch::Define(env); }

}  // namespace nsproxy
