// runc.ts — --container --runtime runc: `runc [--root DIR] state ID` (the OCI bundle pattern).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { NsproxyError } from '../errors';
import { complaint, runCommand, runtimeFailed, type ContainerRuntime } from './runtime';

interface RuncState {
  id: string;
  pid: number;
  status: string;
  bundle?: string;
}

/** process.env of the bundle's config.json, what `runc exec` gives a command by default. */
function bundleEnv(bundle: string | undefined): string[] | undefined {
  if (!bundle) return undefined;
  try {
    const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { process?: { env?: string[] } };
    return config.process?.env;
  } catch {
    return undefined;
  }
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
      return { id: state.id, pid: state.pid, running: state.status === 'running', status: state.status, networks: {}, env: bundleEnv(state.bundle) };
    },
  };
}
