// podman.ts — --container with podman: `podman inspect --type container NAME`.
import { NsproxyError } from '../errors';
import { runCommand, runtimeFailed, type ContainerRuntime, type ContainerState } from './runtime';

interface PodmanInspect {
  Id: string;
  State: { Pid: number; Running: boolean; Status: string };
  NetworkSettings?: { Networks?: Record<string, { IPAddress?: string; GlobalIPv6Address?: string }> };
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
      return { id: data.Id, pid: data.State.Pid, running: data.State.Running, status: data.State.Status, networks };
    },
  };
}
