// runtime.ts — the one small interface a container runtime implements for --container: from a
// name to the PID whose network namespace is the container's, and its addresses on networks.
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
  /** the environment commands run with in it, as `podman exec` gives them (podman: Config.Env;
   * runc: process.env of the bundle's config.json) */
  env?: string[];
  /** the image it runs, as the runtime names it (podman: ImageName) */
  image?: string;
  /** podman's healthcheck: State.Health (undefined: the runtime has none, or the container no check) */
  health?: ContainerHealth;
}

export interface ContainerHealth {
  /** "starting", "healthy", "unhealthy" */
  status: string;
  failingStreak: number;
  /** the latest check's exit code and output */
  lastExitCode?: number;
  lastOutput?: string;
}

export interface ContainerRuntime {
  /** "podman", "runc" */
  readonly name: string;
  /** Throws NsproxyError NSPROXY_ERR_RUNTIME_MISSING / NSPROXY_ERR_CONTAINER_NOT_FOUND. */
  inspect(container: string): Promise<ContainerState>;
}

export interface CommandResult {
  code: number;
  /** the signal that killed it, if one did */
  signal?: string;
  stdout: string;
  stderr: string;
}

/** Runs a runtime's CLI; a missing binary is a clear configuration error. */
export function runCommand(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<CommandResult> {
  // Loaded here, not at the top: only --container needs it, and loading it costs start-up time.
  const { execFile } = require('node:child_process') as typeof import('node:child_process');
  return new Promise((resolve, reject) => {
    execFile(command, args, { env, timeout: 30_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new NsproxyError('NSPROXY_ERR_RUNTIME_MISSING', `${command} not found in PATH; install ${command}, or name the target with --pid or --netns`));
        return;
      }
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, signal: error?.signal ?? undefined, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** One stderr line without logrus' time=... level=... wrapping ("msg" unwrapped) or "Error: ". */
function unwrap(line: string): string {
  const logrus = /\bmsg="((?:[^"\\]|\\.)*)"/.exec(line);
  return (logrus ? (logrus[1] as string).replace(/\\"/g, '"') : line).replace(/^Error: /, '').trim();
}

/**
 * Why a runtime CLI failed, in one line for our own errors: its error line (not a warning that
 * came first), else its last line, else how it ended.
 */
export function complaint(result: Pick<CommandResult, 'code' | 'signal' | 'stderr'>): string {
  const lines = result.stderr.split('\n').map((line) => line.trim()).filter(Boolean);
  const error = lines.find((line) => /^Error:|level=(error|fatal)/.test(line)) ?? lines.filter((line) => !/level=(warning|info|debug)|^WARN/.test(line)).pop() ?? lines.pop();
  if (error) return unwrap(error);
  return result.signal ? `killed by ${result.signal}` : `exit status ${result.code}, no message`;
}

/** A runtime CLI that failed for another reason than "no such container": worth retrying later. */
export function runtimeFailed(command: string, result: CommandResult): NsproxyError {
  return new NsproxyError('NSPROXY_ERR_RUNTIME_FAILED', `${command} failed: ${complaint(result)}; check that it works for this user (same environment), then retry`);
}
