// ready-health.ts — --ready health: podman's own verdict, State.Health.Status == "healthy", from
// the same `podman inspect` nsproxy resolves the container with. podman runs the container's
// HealthCmd (quadlet HealthCmd=, podman run --health-cmd) on its own schedule (a systemd timer
// every HealthInterval, 30 s by default); nsproxy only reads the result, so a short
// HealthInterval= (or HealthStartupCmd=) makes readiness after a restart quick.
import type { TargetSpec } from './config';
import { NsproxyError } from './errors';
import type { ReadyCheck } from './readiness';
import { containerRuntime, type ContainerHealth } from './runtimes';
import type { Target } from './target';

/** "unhealthy (failing streak 3, last check: exit 1: no response)" */
export function describeHealth(health: ContainerHealth): string {
  const output = health.lastOutput?.trim().split('\n').pop()?.trim();
  const last = health.lastExitCode === undefined ? '' : `; last check: exit ${health.lastExitCode}${output ? `: ${output}` : ''}`;
  const streak = health.failingStreak > 0 ? `, failing streak ${health.failingStreak}` : '';
  return `${health.status}${streak}${last}`;
}

export function healthCheck(spec: Extract<TargetSpec, { kind: 'container' }>, target: Target, env: NodeJS.ProcessEnv): ReadyCheck {
  const runtime = containerRuntime(spec.runtime, env, spec.runcRoot);
  const where = target.description;
  return {
    kind: 'health',
    waitingFor: `${where} to be healthy`,
    async attempt() {
      const state = await runtime.inspect(spec.name);
      if (!state.health) {
        throw new NsproxyError('NSPROXY_ERR_USAGE', `--ready health: ${where} has no healthcheck; give it one (HealthCmd= in its quadlet, podman run --health-cmd), or use --ready-exec CMD`);
      }
      if (state.pid !== target.pid) return `${where} restarted meanwhile (PID ${state.pid})`;
      return state.health.status === 'healthy' ? null : `health: ${describeHealth(state.health)}`;
    },
    timeoutMessage: (timeout, last) =>
      `${where} did not become healthy within ${timeout} (last: ${last}); podman runs the check every HealthInterval (podman healthcheck run ${spec.name} runs it now), or raise --ready-timeout`,
  };
}
