// netns.cc — see netns.h.
#include "netns.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace nsproxy {

UniqueFd OpenNamespace(const char* path, SysError* error) {
  UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) error->Set("open");
  return fd;
}

bool NamespaceType(int fd, int* type, SysError* error) {
  *type = ioctl(fd, NS_GET_NSTYPE);
  if (*type >= 0) return true;
  *type = 0;
  return errno == ENOTTY || errno == EINVAL || error->Set("ioctl");  // ENOTTY, EINVAL: not an nsfs file
}

UniqueFd OwningUserns(int fd, SysError* error) {
  // The ioctl returns a new fd without close-on-exec: set it before anything could fork.
  UniqueFd userns(ioctl(fd, NS_GET_USERNS));
  if (!userns.valid()) {
    error->Set("ioctl");
  } else if (fcntl(userns.get(), F_SETFD, FD_CLOEXEC) < 0) {
    error->Set("fcntl");
    userns.reset();
  }
  return userns;
}

bool UsernsOwnerUid(int userns_fd, uid_t* uid, SysError* error) {
  return ioctl(userns_fd, NS_GET_OWNER_UID, uid) == 0 || error->Set("ioctl");
}

bool EnterNetns(int fd, SysError* error) { return setns(fd, CLONE_NEWNET) == 0 || error->Set("setns"); }

UniqueFd PidfdOpen(pid_t pid, SysError* error) {
  UniqueFd fd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!fd.valid()) error->Set("pidfd_open");
  return fd;
}

uint64_t FdInode(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) return 0;
  return st.st_ino;
}

}  // namespace nsproxy
