// index.ts — the container runtimes nsproxy can resolve with. Docker, nerdctl or nspawn machines
// would be one more file implementing ContainerRuntime, and one more line here.
import { podmanRuntime } from './podman';
import { runcRuntime } from './runc';
import type { ContainerRuntime } from './runtime';

export const RUNTIMES = ['podman', 'runc'] as const;
export type RuntimeName = (typeof RUNTIMES)[number];

export function containerRuntime(name: RuntimeName, env: NodeJS.ProcessEnv, runcRoot?: string): ContainerRuntime {
  return name === 'runc' ? runcRuntime(env, runcRoot) : podmanRuntime(env);
}

export type { ContainerHealth, ContainerRuntime, ContainerState } from './runtime';
