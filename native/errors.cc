// errors.cc — see errors.h.
#include "errors.h"

#include <string.h>

namespace nsproxy {

const char* ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  if (name != nullptr) return name;
  static thread_local char buffer[16];
  snprintf(buffer, sizeof buffer, "E%d", err);
  return buffer;
}

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& detail) {
  std::string message = std::string(syscall) + " " + ErrnoName(err) + " (" + strerror(err) + ")";
  if (!detail.empty()) message += " " + detail;
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, ErrnoName(err)));
  error.Set("errno", Napi::Number::New(env, -err));  // negative, as Node's own errors
  error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

Napi::Error ErrnoError(Napi::Env env, const SysError& error, const std::string& detail) {
  return ErrnoError(env, error.err, error.syscall ? error.syscall : "unknown", detail);
}

}  // namespace nsproxy
