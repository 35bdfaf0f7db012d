// target.ts — from --pid / --netns / --container to an open namespace fd. The fd is opened once
// and kept: it pins the namespace, and nothing resolves the path again later (no TOCTOU). A
// process target is also held by a pidfd, which becomes readable when the process exits.
import { describeTarget, type TargetSpec } from './config';
import { errnoCode, NsproxyError } from './errors';
import type { Native } from './native';
import { containerRuntime, type ContainerState } from './runtimes';

export interface Target {
  /** open fd of the target network namespace */
  netnsFd: number;
  /** its owning user namespace, when nsproxy must go through a helper to make sockets there
   * (unprivileged, the namespace's owner); undefined when the engine can setns() itself */
  usernsFd?: number;
  /** pidfd of the process whose namespace it is (not for --netns) */
  pidfd?: number;
  pid?: number;
  /** "pid 4242", "netns blue", "container test-postgresql" */
  description: string;
  /** the runtime's view, for --container (addresses on networks) */
  container?: ContainerState;
}

export interface TargetDeps {
  native: Native;
  env: NodeJS.ProcessEnv;
  closeFd: (fd: number) => void;
  /** our effective uid: a namespace's owner goes through a helper */
  euid: number;
  /** CAP_SYS_ADMIN in our effective set (root, or AmbientCapabilities=): we enter namespaces
   * ourselves. Decided by capability, not by uid 0. */
  privileged: boolean;
  /** inode of our own user namespace (/proc/self/ns/user), as native.fdInode gives it */
  ownUsernsInode: string;
}

function openFailure(spec: TargetSpec, path: string, err: unknown): NsproxyError {
  const code = errnoCode(err);
  if (spec.kind === 'pid' && (code === 'ENOENT' || code === 'ESRCH')) {
    return new NsproxyError('NSPROXY_ERR_TARGET_NOT_FOUND', `--pid ${spec.pid}: no such process (or it has exited); check the PID, e.g. podman inspect -f '{{.State.Pid}}' NAME`, { cause: err });
  }
  if (code === 'ENOENT' && spec.kind === 'netns') {
    const hint = path.startsWith('/run/netns/') ? `create it with ip netns add ${spec.name}, or give a path` : 'check the path';
    return new NsproxyError('NSPROXY_ERR_TARGET_NOT_FOUND', `--netns: ${path} does not exist; ${hint}`, { cause: err });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new NsproxyError('NSPROXY_ERR_TARGET_ACCESS', `cannot open ${path} (${code}); run nsproxy as root or as the user who owns the target`, { cause: err });
  }
  return new NsproxyError('NSPROXY_ERR_TARGET_ACCESS', `cannot open ${path}: ${(err as Error).message}; check that the target exists`, { cause: err });
}

function openNetns(spec: TargetSpec, path: string, deps: TargetDeps): number {
  let fd: number;
  try {
    fd = deps.native.openNamespace(path);
  } catch (err) {
    throw openFailure(spec, path, err);
  }
  if (deps.native.namespaceType(fd) !== deps.native.constants.CLONE_NEWNET) {
    deps.closeFd(fd);
    throw new NsproxyError('NSPROXY_ERR_NOT_A_NETNS', `--netns: ${path} is not a network namespace; give /run/netns/NAME (from ip netns add) or /proc/PID/ns/net`);
  }
  return fd;
}

/** Holds `pid` by pidfd and opens its netns; the pidfd is taken first so the PID cannot be reused in between. */
function openProcess(spec: TargetSpec, pid: number, deps: TargetDeps): { pidfd: number; netnsFd: number } {
  let pidfd: number;
  try {
    pidfd = deps.native.pidfdOpen(pid);
  } catch (err) {
    throw openFailure(spec, `/proc/${pid}`, err);
  }
  try {
    return { pidfd, netnsFd: openNetns(spec, `/proc/${pid}/ns/net`, deps) };
  } catch (err) {
    deps.closeFd(pidfd);
    throw err;
  }
}

/** How nsproxy may make sockets in a namespace (also what `nsproxy check` reports). */
export type AccessPlan =
  | { path: 'in-thread' }
  | { path: 'helper'; usernsFd: number; ownerUid: number }
  | { path: 'refused'; error: NsproxyError; ownerUid?: number };

/**
 * How nsproxy may make sockets in `netnsFd`: with CAP_SYS_ADMIN it enters it directly from its
 * own threads; the namespace's owner, without capabilities, through a helper that joins the
 * owning user namespace first. Anybody else is refused before anything is started.
 */
export function accessPlan(netnsFd: number, description: string, deps: TargetDeps): AccessPlan {
  if (deps.privileged) return { path: 'in-thread' };
  const usernsFd = deps.native.owningUserns(netnsFd);
  const owner = deps.native.usernsOwnerUid(usernsFd);
  if (owner !== deps.euid) {
    deps.closeFd(usernsFd);
    const message = `the network namespace of ${description} belongs to uid ${owner}, not to you (uid ${deps.euid}); run nsproxy as uid ${owner}, or with CAP_SYS_ADMIN (root)`;
    return { path: 'refused', ownerUid: owner, error: new NsproxyError('NSPROXY_ERR_TARGET_FOREIGN', message) };
  }
  if (deps.native.fdInode(usernsFd) === deps.ownUsernsInode) {
    // Owned by the user namespace we are in: joining it is no help, and we lack CAP_SYS_ADMIN in it.
    deps.closeFd(usernsFd);
    const message = `cannot enter the network namespace of ${description}: it belongs to your own user namespace and you lack CAP_SYS_ADMIN; run nsproxy as root`;
    return { path: 'refused', ownerUid: owner, error: new NsproxyError('NSPROXY_ERR_ENTER_NETNS', message) };
  }
  return { path: 'helper', usernsFd, ownerUid: owner };
}

function accessFor(netnsFd: number, description: string, deps: TargetDeps): { usernsFd?: number } {
  const plan = accessPlan(netnsFd, description, deps);
  if (plan.path === 'refused') throw plan.error;
  return plan.path === 'helper' ? { usernsFd: plan.usernsFd } : {};
}

function withAccess(target: Target, deps: TargetDeps): Target {
  try {
    return { ...target, ...accessFor(target.netnsFd, target.description, deps) };
  } catch (err) {
    closeTarget(target, deps.closeFd);
    throw err;
  }
}

async function openContainer(spec: Extract<TargetSpec, { kind: 'container' }>, deps: TargetDeps): Promise<Target> {
  const runtime = containerRuntime(spec.runtime, deps.env, spec.runcRoot);
  for (let attempt = 0; ; attempt++) {
    const state = await runtime.inspect(spec.name);
    if (!state.running || state.pid <= 0) {
      throw new NsproxyError('NSPROXY_ERR_CONTAINER_NOT_RUNNING', `container ${spec.name} is not running (${state.status}); start it (e.g. ${runtime.name} start ${spec.name}, or its systemd unit)`);
    }
    const held = openProcess(spec, state.pid, deps);
    // PID reuse: the process we hold must still be the container's after we took the pidfd.
    const again = await runtime.inspect(spec.name).catch(() => undefined);
    if (again?.running && again.pid === state.pid && again.id === state.id) {
      return { ...held, pid: state.pid, description: describeTarget(spec), container: again };
    }
    deps.closeFd(held.pidfd);
    deps.closeFd(held.netnsFd);
    if (attempt >= 2) {
      throw new NsproxyError('NSPROXY_ERR_CONTAINER_NOT_RUNNING', `container ${spec.name} keeps changing its process; check that it is not restarting in a loop`);
    }
  }
}

/** The target's namespace (and process), without deciding yet whether nsproxy may enter it. */
export async function resolveTarget(spec: TargetSpec, deps: TargetDeps): Promise<Target> {
  switch (spec.kind) {
    case 'netns':
      return { netnsFd: openNetns(spec, spec.path, deps), description: describeTarget(spec) };
    case 'pid':
      return { ...openProcess(spec, spec.pid, deps), pid: spec.pid, description: describeTarget(spec) };
    case 'container':
      return openContainer(spec, deps);
  }
}

/** The target, ready for the engine: resolved, and with the way in decided (accessPlan). */
export async function openTarget(spec: TargetSpec, deps: TargetDeps): Promise<Target> {
  return withAccess(await resolveTarget(spec, deps), deps);
}

export function closeTarget(target: Target, closeFd: (fd: number) => void): void {
  closeFd(target.netnsFd);
  if (target.pidfd !== undefined) closeFd(target.pidfd);
  if (target.usernsFd !== undefined) closeFd(target.usernsFd);
}

/** Errors worth retrying while a container restarts: it is gone or not running for a moment. */
export function isTransient(err: unknown): boolean {
  const transient = ['NSPROXY_ERR_CONTAINER_NOT_FOUND', 'NSPROXY_ERR_CONTAINER_NOT_RUNNING', 'NSPROXY_ERR_TARGET_NOT_FOUND', 'NSPROXY_ERR_NO_ADDRESS', 'NSPROXY_ERR_RUNTIME_FAILED'];
  return err instanceof NsproxyError && transient.includes(err.code);
}
