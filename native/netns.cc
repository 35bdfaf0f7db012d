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

int OpenNamespace(const char* path, SysError* error) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return error->Set("open");
  return fd;
}

int NamespaceType(int fd, SysError* error) {
  int type = ioctl(fd, NS_GET_NSTYPE);
  if (type >= 0) return type;
  if (errno == ENOTTY || errno == EINVAL) return 0;  // not an nsfs file
  return error->Set("ioctl");
}

int OwningUserns(int fd, SysError* error) {
  int userns = ioctl(fd, NS_GET_USERNS);
  if (userns < 0) return error->Set("ioctl");
  fcntl(userns, F_SETFD, FD_CLOEXEC);
  return userns;
}

bool UsernsOwnerUid(int userns_fd, uid_t* uid, SysError* error) {
  if (ioctl(userns_fd, NS_GET_OWNER_UID, uid) == 0) return true;
  error->Set("ioctl");
  return false;
}

bool EnterNetns(int fd, SysError* error) {
  if (setns(fd, CLONE_NEWNET) == 0) return true;
  error->Set("setns");
  return false;
}

int PidfdOpen(pid_t pid, SysError* error) {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return error->Set("pidfd_open");
  return fd;
}

uint64_t FdInode(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) return 0;
  return st.st_ino;
}

}  // namespace nsproxy
