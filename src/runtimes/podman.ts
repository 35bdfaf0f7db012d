// podman.ts — --container with podman: `podman inspect --type container NAME`.
import { NsproxyError } from '../errors';
import { runCommand, runtimeFailed, type ContainerHealth, type ContainerRuntime, type ContainerState } from './runtime';

interface PodmanHealth {
  Status?: string;
  FailingStreak?: number;
  Log?: Array<{ ExitCode?: number; Output?: string }> | null;
}

interface PodmanInspect {
  Id: string;
  ImageName?: string;
  Config?: { Env?: string[] | null };
  /** podman 4 calls it Health (and Healthcheck, its older name); podman 5 Health */
  State: { Pid: number; Running: boolean; Status: string; Health?: PodmanHealth; Healthcheck?: PodmanHealth };
  NetworkSettings?: { Networks?: Record<string, { IPAddress?: string; GlobalIPv6Address?: string }> };
}

/** State.Health, when the container has a healthcheck (podman reports Status "" without one). */
function healthOf(state: PodmanInspect['State']): ContainerHealth | undefined {
  const health = state.Health ?? state.Healthcheck;
  if (!health?.Status) return undefined;
  const last = health.Log?.[health.Log.length - 1];
  return { status: health.Status, failingStreak: health.FailingStreak ?? 0, lastExitCode: last?.ExitCode, lastOutput: last?.Output };
}

export function podmanRuntime(env: NodeJS.ProcessEnv): ContainerRuntime {
  return {
    name: 'podman',
    async inspect(container) {
      const result = await runCommand('podman', ['inspect', '--type', 'container', '--format', 'json', container], env);
      if (result.code !== 0) {
        if (/no such (container|object)/i.test(result.stderr)) {
          throw new NsproxyError('NSPROXY_ERR_CONTAINER_NOT_FOUND', `podman has no container '${container}'; check the name with podman ps -a (as the user who runs it)`);
        }
        throw runtimeFailed(`podman inspect ${container}`, result);
      }
      const [data] = JSON.parse(result.stdout) as PodmanInspect[];
      if (!data) throw new NsproxyError('NSPROXY_ERR_CONTAINER_NOT_FOUND', `podman has no container '${container}'; check the name with podman ps -a`);
      const networks: ContainerState['networks'] = {};
      for (const [name, net] of Object.entries(data.NetworkSettings?.Networks ?? {})) {
        networks[name] = { ipv4: net.IPAddress || undefined, ipv6: net.GlobalIPv6Address || undefined };
      }
      return { id: data.Id, pid: data.State.Pid, running: data.State.Running, status: data.State.Status, networks, env: data.Config?.Env ?? undefined, image: data.ImageName || undefined, health: healthOf(data.State) };
    },
  };
}
