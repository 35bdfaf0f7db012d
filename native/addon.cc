// addon.cc — the binding surface: a handful of functions and the Engine class, typed and
// documented once in src/native.ts. Validation and defaults live in TypeScript; this file only
// guards its arguments and turns failed system calls into Node-shaped errors (errors.h).
#include <napi.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "background.h"
#include "engine.h"
#include "errors.h"
#include "netns.h"
#include "notify.h"
#include "sockets.h"
#include "target_jobs.h"

namespace nsproxy {
namespace {

int IntArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  }
  return info[i].As<Napi::Number>().Int32Value();
}

std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsString()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  }
  return info[i].As<Napi::String>().Utf8Value();
}

// An fd handed to JavaScript, which closes it (fs.closeSync).
Napi::Value FdToJs(Napi::Env env, UniqueFd fd) { return Napi::Number::New(env, fd.release()); }

Napi::Value OpenNamespaceJs(const Napi::CallbackInfo& info) {
  std::string path = StringArg(info, 0, "path");
  SysError error;
  UniqueFd fd = OpenNamespace(path.c_str(), &error);
  if (!fd.valid()) throw ErrnoError(info.Env(), error, path);
  return FdToJs(info.Env(), std::move(fd));
}

Napi::Value NamespaceTypeJs(const Napi::CallbackInfo& info) {
  SysError error;
  int type = 0;
  if (!NamespaceType(IntArg(info, 0, "fd"), &type, &error)) throw ErrnoError(info.Env(), error);
  return Napi::Number::New(info.Env(), type);
}

Napi::Value OwningUsernsJs(const Napi::CallbackInfo& info) {
  SysError error;
  UniqueFd fd = OwningUserns(IntArg(info, 0, "fd"), &error);
  if (!fd.valid()) throw ErrnoError(info.Env(), error);
  return FdToJs(info.Env(), std::move(fd));
}

Napi::Value UsernsOwnerUidJs(const Napi::CallbackInfo& info) {
  SysError error;
  uid_t uid = 0;
  if (!UsernsOwnerUid(IntArg(info, 0, "usernsFd"), &uid, &error)) throw ErrnoError(info.Env(), error);
  return Napi::Number::New(info.Env(), uid);
}

Napi::Value PidfdOpenJs(const Napi::CallbackInfo& info) {
  SysError error;
  UniqueFd fd = PidfdOpen(IntArg(info, 0, "pid"), &error);
  if (!fd.valid()) throw ErrnoError(info.Env(), error);
  return FdToJs(info.Env(), std::move(fd));
}

Napi::Value FdInodeJs(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), std::to_string(FdInode(IntArg(info, 0, "fd"))));
}

Endpoint EndpointArgs(const Napi::CallbackInfo& info, size_t i) {
  std::string ip = StringArg(info, i, "address");
  int port = IntArg(info, i + 1, "port");
  Endpoint endpoint;
  if (!ParseEndpoint(ip, port, &endpoint)) {
    throw Napi::RangeError::New(info.Env(), "not a numeric address and port: " + ip + " " + std::to_string(port));
  }
  return endpoint;
}

Napi::Value ListenTcpJs(const Napi::CallbackInfo& info) {
  Endpoint where = EndpointArgs(info, 0);
  SysError error;
  UniqueFd fd = ListenTcp(where, IntArg(info, 2, "backlog"), &error);
  if (!fd.valid()) throw ErrnoError(info.Env(), error, FormatEndpoint(reinterpret_cast<sockaddr*>(&where.addr)));
  return FdToJs(info.Env(), std::move(fd));
}

Napi::Value DescribeSocketJs(const Napi::CallbackInfo& info) {
  SocketInfo socket_info;
  SysError error;
  if (!DescribeSocket(IntArg(info, 0, "fd"), &socket_info, &error)) throw ErrnoError(info.Env(), error);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("isSocket", socket_info.is_socket);
  out.Set("type", socket_info.type);
  out.Set("family", socket_info.family);
  out.Set("listening", socket_info.listening);
  out.Set("local", socket_info.local);
  return out;
}

Napi::Value RaiseNofileLimitJs(const Napi::CallbackInfo& info) {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) < 0) throw ErrnoError(info.Env(), errno, "getrlimit");
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0) throw ErrnoError(info.Env(), errno, "setrlimit");
  }
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("soft", static_cast<double>(limit.rlim_cur));
  out.Set("hard", static_cast<double>(limit.rlim_max));
  return out;
}

Napi::Value SdNotifyJs(const Napi::CallbackInfo& info) {
  std::string path = StringArg(info, 0, "socketPath");
  SysError error;
  if (!SdNotify(path, StringArg(info, 1, "state"), &error)) throw ErrnoError(info.Env(), error, path);
  return info.Env().Undefined();
}

const char* EventTypeName(Event::Type type) {
  switch (type) {
    case Event::Type::kOpened: return "opened";
    case Event::Type::kClosed: return "closed";
    case Event::Type::kConnectFailed: return "connect-failed";
    case Event::Type::kAcceptFailed: return "accept-failed";
    case Event::Type::kHelperRestarted: return "helper-restarted";
    case Event::Type::kSockmapLoss: return "sockmap-loss";
  }
  return "unknown";
}

Napi::Object EventToJs(Napi::Env env, const Event& event) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("type", EventTypeName(event.type));
  out.Set("id", static_cast<double>(event.id));
  out.Set("listener", event.listener);
  if (event.err != 0) {
    out.Set("code", ErrnoName(event.err));
    out.Set("errno", -event.err);
    out.Set("syscall", event.syscall ? event.syscall : "unknown");
  }
  if (event.type == Event::Type::kClosed) {
    out.Set("bytesIn", static_cast<double>(event.bytes_in));
    out.Set("bytesOut", static_cast<double>(event.bytes_out));
    out.Set("durationMs", event.duration_us / 1000.0);
    out.Set("reset", event.reset);
  }
  if (event.type == Event::Type::kAcceptFailed || event.type == Event::Type::kSockmapLoss) {
    out.Set("count", static_cast<double>(event.count));
  }
  if (event.type == Event::Type::kHelperRestarted) out.Set("pid", event.pid);
  if (!event.peer.empty()) out.Set("peer", event.peer);
  return out;
}

// Collects events from the workers and hands them to JavaScript in batches: one thread-safe
// call is queued per batch, so the data path never waits for the JS thread. Owned by the
// thread-safe function (deleted in its finalizer, after the last queued call ran).
class JsEventSink : public EventSink {
 public:
  void Post(Event event) override {
    bool schedule;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      pending_.push_back(std::move(event));
      schedule = !scheduled_;
      scheduled_ = true;
    }
    if (schedule) tsfn_.NonBlockingCall(this);
  }

  static void Deliver(Napi::Env env, Napi::Function callback, JsEventSink* /*context*/, JsEventSink* self) {
    // No environment: the thread-safe function is being torn down, after its finalizer deleted
    // the sink (Node calls the finalizer first, then this for each call still queued).
    if (env == nullptr) return;
    std::vector<Event> batch;
    {
      std::lock_guard<std::mutex> lock(self->mutex_);
      batch.swap(self->pending_);
      self->scheduled_ = false;
    }
    if (callback.IsEmpty()) return;
    try {
      Napi::Array events = Napi::Array::New(env, batch.size());
      for (size_t i = 0; i < batch.size(); i++) events.Set(static_cast<uint32_t>(i), EventToJs(env, batch[i]));
      callback.Call({events});
    } catch (const Napi::Error&) {
      // The environment is going away (a worker_thread terminated): JavaScript cannot run, and
      // nothing is left to tell. Any other exception is the callback's, already pending in JS.
    }
  }

  Napi::TypedThreadSafeFunction<JsEventSink, JsEventSink, Deliver> tsfn_;

 private:
  std::mutex mutex_;
  std::vector<Event> pending_;
  bool scheduled_ = false;
};

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {InstanceMethod("addListener", &EngineWrap::AddListener),
                        InstanceMethod("start", &EngineWrap::Start), InstanceMethod("stop", &EngineWrap::Stop),
                        InstanceMethod("stats", &EngineWrap::Stats),
                        InstanceMethod("engineInUse", &EngineWrap::EngineInUse),
                        InstanceMethod("setAccepting", &EngineWrap::SetAccepting),
                        InstanceMethod("enterNetns", &EngineWrap::EnterNetns),
                        InstanceMethod("setTarget", &EngineWrap::SetTarget)});
  }

  EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
      throw Napi::TypeError::New(env, "new Engine(options, onEvents)");
    }
    Napi::Object options = info[0].As<Napi::Object>();
    EngineOptions engine_options;
    engine_options.netns_fd = options.Get("netnsFd").As<Napi::Number>().Int32Value();
    engine_options.userns_fd = options.Get("usernsFd").As<Napi::Number>().Int32Value();
    engine_options.threads = options.Get("threads").As<Napi::Number>().Int32Value();
    engine_options.connections_max = options.Get("connectionsMax").As<Napi::Number>().Int32Value();
    engine_options.pipe_size = options.Get("pipeSize").As<Napi::Number>().Uint32Value();
    engine_options.connect_timeout_ms = options.Get("connectTimeoutMs").As<Napi::Number>().Int32Value();
    engine_options.keepalive_idle_s = options.Get("keepaliveIdleS").As<Napi::Number>().Int32Value();
    engine_options.keepalive_interval_s = options.Get("keepaliveIntervalS").As<Napi::Number>().Int32Value();
    engine_options.keepalive_count = options.Get("keepaliveCount").As<Napi::Number>().Int32Value();
    engine_options.proxy_protocol = static_cast<ProxyProtocol>(options.Get("proxyProtocol").ToNumber().Int32Value());
    const std::string engine = options.Get("engine").IsString() ? options.Get("engine").As<Napi::String>().Utf8Value() : "splice";
    if (engine != "splice" && engine != "sockmap" && engine != "auto") throw Napi::RangeError::New(env, "engine must be splice, sockmap or auto");
    engine_options.engine = engine == "sockmap" ? EngineKind::kSockmap : engine == "auto" ? EngineKind::kAuto : EngineKind::kSplice;
    if (options.Get("sockmapAfter").IsNumber()) {
      engine_options.sockmap_after = options.Get("sockmapAfter").As<Napi::Number>().Uint32Value();
    }
    if (options.Get("sockmapBulkBytes").IsNumber()) {
      engine_options.sockmap_bulk_bytes = static_cast<uint64_t>(options.Get("sockmapBulkBytes").As<Napi::Number>().DoubleValue());
    }
    engine_options.report_connections = options.Get("reportConnections").ToBoolean();
    engine_options.start_paused = options.Get("startPaused").ToBoolean();
    if (engine_options.threads < 1 || engine_options.connections_max < 1) {
      throw Napi::RangeError::New(env, "threads and connectionsMax must be >= 1");
    }
    if (engine_options.proxy_protocol < ProxyProtocol::kNone || engine_options.proxy_protocol > ProxyProtocol::kV2) {
      throw Napi::RangeError::New(env, "proxyProtocol must be 0, 1 or 2");
    }
    sink_ = new JsEventSink();
    sink_->tsfn_ = Napi::TypedThreadSafeFunction<JsEventSink, JsEventSink, JsEventSink::Deliver>::New(
        env, info[1].As<Napi::Function>(), "nsproxy-events", 0, 1, sink_,
        [](Napi::Env, JsEventSink* sink, JsEventSink*) { delete sink; }, sink_);
    engine_ = std::make_unique<Engine>(engine_options, sink_);
    // When the environment goes away without stop() (a worker_thread terminated, the process
    // exiting), the workers must be joined before the thread-safe function is finalized and
    // deletes the sink they post to. Cleanup hooks run in reverse order of registration, and
    // this one is registered after the thread-safe function's own.
    // The thread-safe function is left alone there: the environment closes it (and its finalizer
    // deletes the sink) right after; releasing it from a cleanup hook would close it twice.
    cleanup_ = env.AddCleanupHook(std::function<void()>([this] {
      cleanup_ = {};  // running: napi forgets it by itself
      engine_.reset();  // stops and joins the workers: no Post() after this
      sink_ = nullptr;
    }));
  }

  ~EngineWrap() override { Shutdown(); }

 private:
  void Shutdown() {
    if (!engine_) return;
    engine_.reset();  // stops and joins the workers: no Post() after this
    sink_->tsfn_.Release();  // the finalizer deletes the sink once queued batches are delivered
    sink_ = nullptr;
    if (!cleanup_.IsEmpty()) {
      cleanup_.Remove(Env());
      cleanup_ = {};
    }
  }

  Napi::Value AddListener(const Napi::CallbackInfo& info) {
    Engine& engine = Running(info);
    int fd = IntArg(info, 0, "fd");
    Endpoint target = EndpointArgs(info, 1);
    int index = -1;
    SysError error;
    if (!engine.AddListener(UniqueFd(fd), target, &index, &error)) throw ErrnoError(info.Env(), error);
    return Napi::Number::New(info.Env(), index);
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    SysError error;
    if (!Running(info).Start(&error)) throw ErrnoError(info.Env(), error);
    return info.Env().Undefined();
  }

  Engine& Running(const Napi::CallbackInfo& info) {
    if (!engine_) throw Napi::Error::New(info.Env(), "engine stopped");
    return *engine_;
  }

  Napi::Value SetAccepting(const Napi::CallbackInfo& info) {
    SysError error;
    if (!Running(info).SetAccepting(info[0].ToBoolean(), &error)) throw ErrnoError(info.Env(), error);
    return info.Env().Undefined();
  }

  Napi::Value EnterNetns(const Napi::CallbackInfo& info) {
    SysError error;
    if (!Running(info).EnterNetns(IntArg(info, 0, "netnsFd"), IntArg(info, 1, "usernsFd"), &error)) {
      throw ErrnoError(info.Env(), error);
    }
    return info.Env().Undefined();
  }

  Napi::Value SetTarget(const Napi::CallbackInfo& info) {
    Engine& engine = Running(info);
    int listener = IntArg(info, 0, "listener");
    if (listener < 0 || listener >= engine.listener_count()) throw Napi::RangeError::New(info.Env(), "no such listener");
    SysError error;
    if (!engine.SetTarget(listener, EndpointArgs(info, 1), &error)) throw ErrnoError(info.Env(), error);
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Object out = Napi::Object::New(info.Env());
    EngineStats stats = engine_ ? engine_->Stats() : EngineStats{};
    out.Set("active", static_cast<double>(stats.active));
    out.Set("total", static_cast<double>(stats.total));
    out.Set("bytesIn", static_cast<double>(stats.bytes_in));
    out.Set("bytesOut", static_cast<double>(stats.bytes_out));
    out.Set("connectFailures", static_cast<double>(stats.connect_failures));
    out.Set("sockmapActive", static_cast<double>(stats.sockmap_active));
    out.Set("sockmapTotal", static_cast<double>(stats.sockmap_total));
    out.Set("migrations", static_cast<double>(stats.migrations));
    out.Set("sockmapLosses", static_cast<double>(stats.sockmap_losses));
    return out;
  }

  // After start(): the engine in use ("splice", "sockmap", "auto") and why it is not the one
  // asked for, if so.
  Napi::Value EngineInUse(const Napi::CallbackInfo& info) {
    Engine& engine = Running(info);
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("engine", engine.engine() == EngineKind::kSockmap ? "sockmap" : engine.engine() == EngineKind::kAuto ? "auto" : "splice");
    if (!engine.engine_note().empty()) out.Set("why", engine.engine_note());
    return out;
  }

  std::unique_ptr<Engine> engine_;
  JsEventSink* sink_ = nullptr;  // owned by its thread-safe function (deleted by its finalizer)
  Napi::Env::CleanupHook<std::function<void()>> cleanup_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // splice() to a socket has no MSG_NOSIGNAL: a peer that resets mid-transfer would raise
  // SIGPIPE. Node ignores it already; say so here too, so the addon never depends on that.
  signal(SIGPIPE, SIG_IGN);

  exports.Set("openNamespace", Napi::Function::New(env, OpenNamespaceJs));
  exports.Set("namespaceType", Napi::Function::New(env, NamespaceTypeJs));
  exports.Set("owningUserns", Napi::Function::New(env, OwningUsernsJs));
  exports.Set("usernsOwnerUid", Napi::Function::New(env, UsernsOwnerUidJs));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpenJs));
  exports.Set("fdInode", Napi::Function::New(env, FdInodeJs));
  exports.Set("listenTcp", Napi::Function::New(env, ListenTcpJs));
  exports.Set("describeSocket", Napi::Function::New(env, DescribeSocketJs));
  exports.Set("raiseNofileLimit", Napi::Function::New(env, RaiseNofileLimitJs));
  exports.Set("sdNotify", Napi::Function::New(env, SdNotifyJs));
  exports.Set("probeTcp", Napi::Function::New(env, ProbeTcpJs));
  exports.Set("execInTarget", Napi::Function::New(env, ExecInTargetJs));
  exports.Set("inspectNetns", Napi::Function::New(env, InspectNetnsJs));
  exports.Set("FdWatch", DefineFdWatch(env));
  exports.Set("Engine", EngineWrap::Define(env));

  Napi::Object constants = Napi::Object::New(env);
  constants.Set("CLONE_NEWNET", CLONE_NEWNET);
  constants.Set("SOCK_STREAM", static_cast<int>(SOCK_STREAM));
  constants.Set("AF_INET", AF_INET);
  constants.Set("AF_INET6", AF_INET6);
  constants.Set("AF_UNIX", AF_UNIX);
  exports.Set("constants", constants);
  return exports;
}

}  // namespace
}  // namespace nsproxy

// NODE_API_MODULE pastes the function name into an identifier: it must be unqualified.
static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return nsproxy::Init(env, exports); }
NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitModule)
