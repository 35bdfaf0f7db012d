// errors.h — native errors for JavaScript, shaped like Node's own:
// message "setns EPERM (Operation not permitted)", code "EPERM", errno -1, syscall "setns".
#pragma once

#include <napi.h>

#include <string>

#include "syserror.h"

namespace nsproxy {

// The symbolic name of an errno value ("ECONNREFUSED"), or "E<number>" if unknown.
const char* ErrnoName(int err);

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& detail = "");
Napi::Error ErrnoError(Napi::Env env, const SysError& error, const std::string& detail = "");

}  // namespace nsproxy
