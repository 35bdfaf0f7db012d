// target_jobs.cc — see target_jobs.h.
#include "target_jobs.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cstdlib>
#include <thread>

#include "errors.h"
#include "exec_in_target.h"
#include "netns_inspect.h"

namespace nsproxy {

namespace {

std::vector<std::string> StringList(Napi::Env env, Napi::Object spec, const char* key) {
  Napi::Value value = spec.Get(key);
  if (!value.IsArray()) throw Napi::TypeError::New(env, std::string("execInTarget: ") + key + " must be an array of strings");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value item = array.Get(i);
    if (!item.IsString()) throw Napi::TypeError::New(env, std::string("execInTarget: ") + key + " must be an array of strings");
    out.push_back(item.As<Napi::String>().Utf8Value());
  }
  return out;
}

int64_t Int(Napi::Object spec, const char* key, int64_t fallback) {
  Napi::Value value = spec.Get(key);
  return value.IsNumber() ? value.As<Napi::Number>().Int64Value() : fallback;
}

// A capability set written as in /proc/PID/status ("000001ffffffffff").
uint64_t CapSet(Napi::Env env, Napi::Object caps, const char* key) {
  Napi::Value value = caps.Get(key);
  if (!value.IsString()) throw Napi::TypeError::New(env, std::string("execInTarget: capabilities.") + key + " must be a hex string");
  return std::strtoull(value.As<Napi::String>().Utf8Value().c_str(), nullptr, 16);
}

struct ExecTask {
  Napi::Promise::Deferred deferred;
  ExecSpec spec;
  ExecResult result;
};

void SettleExec(Napi::Env env, Napi::Function, void*, ExecTask* task) {
  if (env != nullptr) {
    const ExecResult& r = task->result;
    Napi::Object out = Napi::Object::New(env);
    out.Set("output", Napi::String::New(env, r.output));
    out.Set("truncated", r.output_truncated);
    switch (r.outcome) {
      case ExecResult::Outcome::kExited:
        out.Set("outcome", "exited");
        if (WIFEXITED(r.wait_status)) out.Set("exitCode", WEXITSTATUS(r.wait_status));
        if (WIFSIGNALED(r.wait_status)) {
          const char* name = sigabbrev_np(WTERMSIG(r.wait_status));
          out.Set("signal", name != nullptr ? std::string("SIG") + name : std::to_string(WTERMSIG(r.wait_status)));
        }
        break;
      case ExecResult::Outcome::kTimedOut:
        out.Set("outcome", "timeout");
        break;
      case ExecResult::Outcome::kFailed:
        out.Set("outcome", "failed");
        out.Set("code", ErrnoName(r.error.err));
        out.Set("errno", -r.error.err);
        out.Set("syscall", r.error.syscall ? r.error.syscall : "unknown");
        break;
    }
    task->deferred.Resolve(out);
  }
  delete task;
}

struct InspectTask {
  Napi::Promise::Deferred deferred;
  int netns_fd = -1;
  int userns_fd = -1;
  int timeout_ms = 0;
  bool ok = false;
  NetnsSnapshot snapshot;
  SysError error;
};

void SettleInspect(Napi::Env env, Napi::Function, void*, InspectTask* task) {
  if (env != nullptr) {
    if (!task->ok) {
      task->deferred.Reject(ErrnoError(env, task->error).Value());
    } else {
      Napi::Object out = Napi::Object::New(env);
      Napi::Array links = Napi::Array::New(env, task->snapshot.links.size());
      for (size_t i = 0; i < task->snapshot.links.size(); i++) {
        const NetnsLink& l = task->snapshot.links[i];
        Napi::Object o = Napi::Object::New(env);
        o.Set("index", l.index);
        o.Set("name", l.name);
        o.Set("up", l.up);
        o.Set("loopback", l.loopback);
        links.Set(static_cast<uint32_t>(i), o);
      }
      Napi::Array addresses = Napi::Array::New(env, task->snapshot.addresses.size());
      for (size_t i = 0; i < task->snapshot.addresses.size(); i++) {
        const NetnsAddress& a = task->snapshot.addresses[i];
        Napi::Object o = Napi::Object::New(env);
        o.Set("index", a.index);
        o.Set("family", a.family == AF_INET6 ? 6 : 4);
        o.Set("address", a.address);
        o.Set("prefixLength", a.prefix_length);
        o.Set("scope", a.scope);
        addresses.Set(static_cast<uint32_t>(i), o);
      }
      out.Set("links", links);
      out.Set("addresses", addresses);
      out.Set("tcp", task->snapshot.tcp);
      out.Set("tcp6", task->snapshot.tcp6);
      task->deferred.Resolve(out);
    }
  }
  close(task->netns_fd);
  if (task->userns_fd >= 0) close(task->userns_fd);
  delete task;
}

}  // namespace

Napi::Value ExecInTargetJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "execInTarget(spec)");
  Napi::Object spec = info[0].As<Napi::Object>();
  auto* task = new ExecTask{Napi::Promise::Deferred::New(env)};
  ExecSpec& s = task->spec;
  try {
    s.pid = static_cast<pid_t>(Int(spec, "pid", 0));
    s.pidfd = static_cast<int>(Int(spec, "pidfd", -1));
    s.netns_fd = static_cast<int>(Int(spec, "netnsFd", -1));
    s.userns_fd = static_cast<int>(Int(spec, "usernsFd", -1));
    s.uid = Int(spec, "uid", -1);
    s.gid = Int(spec, "gid", -1);
    s.timeout_ms = static_cast<int>(Int(spec, "timeoutMs", 10000));
    s.output_max = static_cast<size_t>(Int(spec, "outputMax", 4096));
    if (spec.Get("groups").IsArray()) {
      s.set_groups = true;
      Napi::Array groups = spec.Get("groups").As<Napi::Array>();
      for (uint32_t i = 0; i < groups.Length(); i++) {
        if (!groups.Get(i).IsNumber()) throw Napi::TypeError::New(env, "execInTarget: groups must be an array of numbers");
        s.groups.push_back(static_cast<gid_t>(groups.Get(i).As<Napi::Number>().Int64Value()));
      }
    }
    Napi::Value caps = spec.Get("capabilities");
    if (caps.IsObject()) {
      Napi::Object c = caps.As<Napi::Object>();
      s.set_caps = true;
      s.cap_bounding = CapSet(env, c, "bounding");
      s.cap_effective = CapSet(env, c, "effective");
      s.cap_permitted = CapSet(env, c, "permitted");
      s.cap_inheritable = CapSet(env, c, "inheritable");
    }
    s.no_new_privs = spec.Get("noNewPrivs").ToBoolean();
    s.argv = StringList(env, spec, "argv");
    s.candidates = StringList(env, spec, "candidates");
    s.env = StringList(env, spec, "env");
  } catch (...) {
    delete task;
    throw;
  }
  if (s.netns_fd < 0 || s.argv.empty() || s.candidates.empty() || s.timeout_ms < 1) {
    delete task;
    throw Napi::RangeError::New(env, "execInTarget: netnsFd, argv, candidates and timeoutMs are required");
  }
  Napi::Promise promise = task->deferred.Promise();
  auto done = Napi::TypedThreadSafeFunction<void, ExecTask, SettleExec>::New(env, "nsproxy-exec", 0, 1);
  std::thread([task, done]() mutable {
    ExecInTarget(task->spec, &task->result);
    if (done.BlockingCall(task) != napi_ok) delete task;
    done.Release();
  }).detach();
  return promise;
}

Napi::Value InspectNetnsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) {
    throw Napi::TypeError::New(env, "inspectNetns(netnsFd, usernsFd, timeoutMs)");
  }
  auto* task = new InspectTask{Napi::Promise::Deferred::New(env)};
  // Our own duplicates: JavaScript may close its fds while the child runs.
  task->netns_fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
  int userns = info[1].As<Napi::Number>().Int32Value();
  task->userns_fd = userns >= 0 ? fcntl(userns, F_DUPFD_CLOEXEC, 0) : -1;
  task->timeout_ms = info[2].As<Napi::Number>().Int32Value();
  if (task->netns_fd < 0 || (userns >= 0 && task->userns_fd < 0)) {
    int err = errno;
    if (task->netns_fd >= 0) close(task->netns_fd);
    delete task;
    throw ErrnoError(env, err, "fcntl");
  }
  Napi::Promise promise = task->deferred.Promise();
  auto done = Napi::TypedThreadSafeFunction<void, InspectTask, SettleInspect>::New(env, "nsproxy-inspect", 0, 1);
  std::thread([task, done]() mutable {
    task->ok = InspectNetns(task->netns_fd, task->userns_fd, task->timeout_ms, &task->snapshot, &task->error);
    if (done.BlockingCall(task) != napi_ok) delete task;
    done.Release();
  }).detach();
  return promise;
}

}  // namespace nsproxy
