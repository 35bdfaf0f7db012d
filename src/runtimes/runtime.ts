// runtime.ts — the one small interface a container runtime implements for --container: from a
// name to the PID whose network namespace is the container's, and its addresses on networks.
import { execFile } from 'node:child_process';

import { NsproxyError } from '../errors';

export interface ContainerState {
  /** full ID, as the runtime reports it */
  id: string;
  /** PID of the container's first process (0 when not running) */
  pid: number;
  running: boolean;
  /** "running", "exited", "created", ... as the runtime words it */
  status: string;
  /** addresses per network name (podman: NetworkSettings.Networks) */
  networks: Record<string, { ipv4?: string; ipv6?: string }>;
}

export interface ContainerRuntime {
  /** "podman", "runc" */
  readonly name: string;
  /** Throws NsproxyError NSPROXY_ERR_RUNTIME_MISSING / NSPROXY_ERR_CONTAINER_NOT_FOUND. */
  inspect(container: string): Promise<ContainerState>;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a runtime's CLI; a missing binary is a clear configuration error. */
export function runCommand(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { env, timeout: 30_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new NsproxyError('NSPROXY_ERR_RUNTIME_MISSING', `${command} not found in PATH; install ${command}, or name the target with --pid or --netns`));
        return;
      }
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** The first line of a CLI's complaint, for our own one-line errors (logrus' msg="..." unwrapped). */
export function firstLine(text: string): string {
  const line = text.trim().split('\n')[0] ?? '';
  const logrus = /\bmsg="((?:[^"\\]|\\.)*)"/.exec(line);
  return (logrus ? (logrus[1] as string).replace(/\\"/g, '"') : line).replace(/^Error: /, '');
}
