// netns.h — opening and entering network namespaces, and holding processes by pidfd.
// Kernel facts this relies on (see shared/design.md): a socket belongs for life to the netns it was
// created in; setns(CLONE_NEWNET) moves only the calling thread; it needs CAP_SYS_ADMIN over the
// namespace's owning user namespace.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "syserror.h"
#include "unique_fd.h"

namespace nsproxy {

// open(path, O_RDONLY|O_CLOEXEC): a /proc/PID/ns/net or a bind mount under /run/netns.
// Keeping the fd pins the namespace and avoids resolving the path again.
UniqueFd OpenNamespace(const char* path, SysError* error);

// The CLONE_NEW* type of a namespace fd (ioctl NS_GET_NSTYPE) in *type, 0 if the fd is not a namespace.
bool NamespaceType(int fd, int* type, SysError* error);

// The user namespace that owns namespace `fd` (ioctl NS_GET_USERNS).
UniqueFd OwningUserns(int fd, SysError* error);

// The uid that created user namespace `userns_fd` (ioctl NS_GET_OWNER_UID).
bool UsernsOwnerUid(int userns_fd, uid_t* uid, SysError* error);

// setns(fd, CLONE_NEWNET) for the calling thread only.
bool EnterNetns(int fd, SysError* error);

// pidfd_open(pid, 0): holds the process without a PID-reuse race.
UniqueFd PidfdOpen(pid_t pid, SysError* error);

// The inode of a pidfd (what systemd >= 259 puts in $LISTEN_PIDFDID), 0 on failure.
uint64_t FdInode(int fd);

}  // namespace nsproxy
