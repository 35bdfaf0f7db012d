// target.ts — from --pid / --netns to an open namespace fd. The fd is opened once and kept: it
// pins the namespace, and nothing resolves the path again later (no TOCTOU).
import { describeTarget, type TargetSpec } from './config';
import { errnoCode, NsproxyError } from './errors';
import type { Native } from './native';

export interface Target {
  /** open fd of the target network namespace */
  netnsFd: number;
  /** "pid 4242", "netns blue" */
  description: string;
  /** the file the fd was opened from */
  path: string;
}

function openFailure(spec: TargetSpec, path: string, err: unknown): NsproxyError {
  const code = errnoCode(err);
  if (spec.kind === 'pid' && code === 'ENOENT') {
    return new NsproxyError('NSPROXY_ERR_TARGET_NOT_FOUND', `--pid ${spec.pid}: no such process (or it has exited); check the PID, e.g. podman inspect -f '{{.State.Pid}}' NAME`, { cause: err });
  }
  if (code === 'ENOENT') {
    const hint = path.startsWith('/run/netns/') ? `create it with ip netns add ${spec.kind === 'netns' ? spec.name : ''}, or give a path` : 'check the path';
    return new NsproxyError('NSPROXY_ERR_TARGET_NOT_FOUND', `--netns: ${path} does not exist; ${hint}`, { cause: err });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new NsproxyError('NSPROXY_ERR_TARGET_ACCESS', `cannot open ${path} (${code}); run nsproxy as root or as the user who owns the target`, { cause: err });
  }
  return new NsproxyError('NSPROXY_ERR_TARGET_ACCESS', `cannot open ${path}: ${(err as Error).message}`, { cause: err });
}

export function openTarget(spec: TargetSpec, native: Native, closeFd: (fd: number) => void): Target {
  const path = spec.kind === 'pid' ? `/proc/${spec.pid}/ns/net` : spec.path;
  let fd: number;
  try {
    fd = native.openNamespace(path);
  } catch (err) {
    throw openFailure(spec, path, err);
  }
  if (native.namespaceType(fd) !== native.constants.CLONE_NEWNET) {
    closeFd(fd);
    throw new NsproxyError('NSPROXY_ERR_NOT_A_NETNS', `--netns: ${path} is not a network namespace; give /run/netns/NAME (from ip netns add) or /proc/PID/ns/net`);
  }
  return { netnsFd: fd, description: describeTarget(spec), path };
}
