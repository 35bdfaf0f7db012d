// runc.ts — --container --runtime runc: `runc [--root DIR] state ID` (the OCI bundle pattern).
import { NsproxyError } from '../errors';
import { complaint, runCommand, runtimeFailed, type ContainerRuntime } from './runtime';

interface RuncState {
  id: string;
  pid: number;
  status: string;
}

export function runcRuntime(env: NodeJS.ProcessEnv, root?: string): ContainerRuntime {
  return {
    name: 'runc',
    async inspect(container) {
      const result = await runCommand('runc', [...(root ? ['--root', root] : []), 'state', container], env);
      if (result.code !== 0) {
        const why = complaint(result);
        if (!/does not exist|not found/i.test(why)) throw runtimeFailed(`runc state ${container}`, result);
        throw new NsproxyError('NSPROXY_ERR_CONTAINER_NOT_FOUND', `runc has no container '${container}' (${why}); check the ID with runc${root ? ` --root ${root}` : ''} list`);
      }
      const state = JSON.parse(result.stdout) as RuncState;
      return { id: state.id, pid: state.pid, running: state.status === 'running', status: state.status, networks: {} };
    },
  };
}
