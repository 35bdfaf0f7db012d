// syserror.h — how the N-API-free layers report a failed system call: the errno and the call's name.
// The addon turns one into a JS Error shaped like Node's own (see errors.h).
#pragma once

#include <cerrno>

namespace nsproxy {

struct SysError {
  int err = 0;
  const char* syscall = nullptr;

  explicit operator bool() const { return err != 0; }

  // Records errno for `call`; returns -1 so callers can `return error->Set("x");`.
  int Set(const char* call, int e = errno) {
    err = e;
    syscall = call;
    return -1;
  }
};

}  // namespace nsproxy
