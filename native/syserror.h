// syserror.h — how the N-API-free layers report a failed system call: the errno and the call's name.
// The addon turns one into a JS Error shaped like Node's own (see errors.h).
//
// One convention throughout native/: a function that can fail takes a SysError* and says whether
// it succeeded with its return value — false, or an invalid UniqueFd for functions that make an
// fd — having filled in *error.
#pragma once

#include <cerrno>

namespace nsproxy {

struct SysError {
  int err = 0;
  const char* syscall = nullptr;

  explicit operator bool() const { return err != 0; }

  // Records errno (or `e`) for `call`; returns false so that callers can `return error->Set("x");`.
  bool Set(const char* call, int e = errno) {
    err = e;
    syscall = call;
    return false;
  }
};

}  // namespace nsproxy
