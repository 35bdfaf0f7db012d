// background.cc — see background.h.
#include "background.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

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

class FdWatch : public Napi::ObjectWrap<FdWatch> {
 public:
  FdWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdWatch>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
      throw Napi::TypeError::New(env, "new FdWatch(fd, onReadable)");
    }
    int fd = info[0].As<Napi::Number>().Int32Value();
    watched_.reset(fcntl(fd, F_DUPFD_CLOEXEC, 0));
    cancel_.reset(eventfd(0, EFD_CLOEXEC));
    if (!watched_.valid() || !cancel_.valid()) throw ErrnoError(env, errno, watched_.valid() ? "eventfd" : "fcntl");
    callback_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "nsproxy-fdwatch", 0, 1);
    callback_.Unref(env);
    thread_ = std::thread([this] {
      pollfd fds[2] = {{watched_.get(), POLLIN, 0}, {cancel_.get(), POLLIN, 0}};
      while (poll(fds, 2, -1) < 0 && errno == EINTR) {
      }
      if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && !(fds[1].revents & POLLIN)) callback_.BlockingCall();
      callback_.Release();
    });
  }

  ~FdWatch() override { Close(); }

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdWatch", {InstanceMethod("close", &FdWatch::CloseJs)});
  }

 private:
  void Close() {
    if (!thread_.joinable()) return;
    uint64_t one = 1;
    ssize_t ignored = write(cancel_.get(), &one, sizeof one);
    (void)ignored;
    thread_.join();
  }

  Napi::Value CloseJs(const Napi::CallbackInfo& info) {
    Close();
    return info.Env().Undefined();
  }

  UniqueFd watched_;
  UniqueFd cancel_;
  Napi::ThreadSafeFunction callback_;
  std::thread thread_;
};

}  // namespace

Napi::Function DefineFdWatch(Napi::Env env) { return FdWatch::Define(env); }

}  // namespace nsproxy
