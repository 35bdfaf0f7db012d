// ready-exec.ts — --ready-exec CMD: the command runs inside the target the way `podman exec`
// would (native/exec_in_target.h): in the namespaces of the target's process, chrooted to its
// root, in its working directory, with its environment, as its effective uid/gid and groups and
// with its capabilities at most. Exit status 0 means ready. nsproxy without CAP_SYS_ADMIN (the
// owner of a rootless container) goes in through the container's user namespace, as its socket
// helper does, and then the ids are those inside that namespace. The environment is the
// container's configured one (podman's Config.Env, runc's config.json), as for `podman exec`;
// for --pid, the process's own. A --netns target has no process: the command runs in that
// network namespace only, as nsproxy's own user with nsproxy's environment, like `ip netns exec`.
import { readFileSync } from 'node:fs';

import type { ReadyExec } from './config';
import { formatDuration } from './duration';
import { NsproxyError } from './errors';
import type { ExecOutcome, ExecSpec, Native } from './native';
import { credentialsOf, environmentOf, mapInside, parseIdMap } from './procfs';
import type { ReadyCheck } from './readiness';
import type { Target } from './target';

/** Longest a single run may take; the next attempt comes after the usual backoff. */
export const EXEC_TIMEOUT_MS = 10_000;
/** Shortest: a run needs time to fork and exec even when the deadline is near. */
const EXEC_MIN_TIMEOUT_MS = 1000;
const OUTPUT_MAX = 4096;
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
// Never handed to the command: they concern nsproxy and its service only.
const PRIVATE_ENV = /^(LISTEN_|NOTIFY_SOCKET=|WATCHDOG_|NSPROXY_|JOURNAL_STREAM=|INVOCATION_ID=)/;

/** The paths tried for argv[0]: itself when it has a slash, else each PATH directory's. */
export function candidatesFor(argv0: string, env: string[]): string[] {
  if (argv0.includes('/')) return [argv0];
  const path = env.find((e) => e.startsWith('PATH='))?.slice(5) || DEFAULT_PATH;
  return path.split(':').map((dir) => `${dir || '.'}/${argv0}`);
}

/**
 * The environment a command gets in the target: the container's configured one (what `podman
 * exec` uses: a non-root container's /proc/PID/environ is closed to its rootless owner), else
 * the process's own; undefined when neither can be read.
 */
function targetEnvironment(target: Target): string[] | undefined {
  return target.container?.env ?? (target.pid === undefined ? undefined : environmentOf(target.pid));
}

/** Who the command runs as, and with what, for this target; throws when an id has no mapping. */
export function execSpec(target: Target, ready: ReadyExec, timeoutMs: number, ownEnv: NodeJS.ProcessEnv): ExecSpec {
  const common = { netnsFd: target.netnsFd, usernsFd: target.usernsFd ?? -1, argv: ready.argv, timeoutMs, outputMax: OUTPUT_MAX, noNewPrivs: false };
  if (target.pid === undefined) {
    const env = Object.entries(ownEnv).filter(([k, v]) => v !== undefined && !PRIVATE_ENV.test(`${k}=`)).map(([k, v]) => `${k}=${v}`);
    return { ...common, pid: 0, pidfd: -1, uid: -1, gid: -1, env, candidates: candidatesFor(ready.argv[0] as string, env) };
  }
  const pid = target.pid;
  const creds = credentialsOf(pid);
  let { uid, gid, groups } = creds;
  if (target.usernsFd !== undefined) {
    // ids as seen inside the user namespace the command will join
    const uids = parseIdMap(readFileSync(`/proc/${pid}/uid_map`, 'utf8'));
    const gids = parseIdMap(readFileSync(`/proc/${pid}/gid_map`, 'utf8'));
    const insideUid = mapInside(uid, uids);
    const insideGid = mapInside(gid, gids);
    if (insideUid === undefined || insideGid === undefined) {
      throw new NsproxyError('NSPROXY_ERR_NOT_READY', `--ready-exec: the user of ${target.description} (uid ${uid}, gid ${gid}) has no id inside its user namespace; run nsproxy as root`);
    }
    uid = insideUid;
    gid = insideGid;
    groups = groups.map((g) => mapInside(g, gids)).filter((g): g is number => g !== undefined);
  }
  const env = targetEnvironment(target) ?? [`PATH=${DEFAULT_PATH}`];
  return {
    ...common,
    pid,
    pidfd: target.pidfd ?? -1,
    uid,
    gid,
    groups,
    capabilities: creds.capabilities,
    noNewPrivs: creds.noNewPrivs,
    env,
    candidates: candidatesFor(ready.argv[0] as string, env),
  };
}

/** How a run ended, in a few words: "exit status 2: no response", "killed by SIGKILL". */
export function describeOutcome(outcome: ExecOutcome, timeoutMs = EXEC_TIMEOUT_MS): string {
  const last = outcome.output.trim().split('\n').pop()?.trim() ?? '';
  const said = last ? `: ${last.length > 200 ? `${last.slice(0, 200)}...` : last}` : '';
  switch (outcome.outcome) {
    case 'exited':
      return outcome.signal ? `killed by ${outcome.signal}${said}` : `exit status ${outcome.exitCode}${said}`;
    case 'timeout':
      return `still running after ${formatDuration(timeoutMs)}, killed${said}`;
    case 'failed':
      return `${outcome.syscall} ${outcome.code}`;
  }
}

/** Setup failures that retrying cannot cure: no such command, no permission, no way in. */
function permanent(outcome: ExecOutcome): boolean {
  if (outcome.outcome !== 'failed') return false;
  if (outcome.syscall === 'execve') return ['ENOENT', 'EACCES', 'ENOEXEC', 'ENOTDIR'].includes(outcome.code);
  return outcome.syscall.startsWith('setns') && ['EPERM', 'EINVAL'].includes(outcome.code);
}

/** Runs the command once in the target. */
export async function runReadyExec(native: Native, target: Target, ready: ReadyExec, timeoutMs: number, env: NodeJS.ProcessEnv): Promise<ExecOutcome> {
  let spec: ExecSpec;
  try {
    spec = execSpec(target, ready, timeoutMs, env);
  } catch (err) {
    if (err instanceof NsproxyError) throw err;
    // the process went away while we read its /proc files: as good as "not ready yet"
    return { outcome: 'failed', code: (err as NodeJS.ErrnoException).code ?? 'ESRCH', errno: 0, syscall: 'open', output: '', truncated: false };
  }
  return native.execInTarget(spec);
}

function hint(outcome: ExecOutcome, ready: ReadyExec, target: Target, ownEnv: NodeJS.ProcessEnv): string {
  if (outcome.outcome !== 'failed' || outcome.syscall !== 'execve') return "check nsproxy's rights over the target (nsproxy check shows them)";
  const command = ready.argv[0] as string;
  if (outcome.code !== 'ENOENT') return `'${command}' cannot be executed in there; check its permissions inside the target`;
  if (command.includes('/')) return `there is no ${command} in the target (or not its libraries)`;
  const env = target.pid === undefined ? Object.entries(ownEnv).map(([k, v]) => `${k}=${v}`) : targetEnvironment(target);
  const path = env ? (env.find((e) => e.startsWith('PATH='))?.slice(5) || DEFAULT_PATH) : `${DEFAULT_PATH}: its environment could not be read`;
  return `'${command}' is not in the target's PATH (${path}); give its full path inside the target`;
}

export function execCheck(native: Native, target: Target, ready: ReadyExec, env: NodeJS.ProcessEnv): ReadyCheck {
  const where = target.description;
  return {
    kind: 'exec',
    waitingFor: `--ready-exec '${ready.command}' to succeed in ${where}`,
    async attempt(budgetMs) {
      const timeoutMs = Math.max(EXEC_MIN_TIMEOUT_MS, Math.min(EXEC_TIMEOUT_MS, budgetMs));
      const outcome = await runReadyExec(native, target, ready, timeoutMs, env);
      if (outcome.outcome === 'exited' && outcome.exitCode === 0) return null;
      if (permanent(outcome)) throw new NsproxyError('NSPROXY_ERR_NOT_READY', `--ready-exec '${ready.command}' in ${where}: ${describeOutcome(outcome)}; ${hint(outcome, ready, target, env)}`);
      return describeOutcome(outcome, timeoutMs);
    },
    timeoutMessage: (timeout, last) =>
      `--ready-exec '${ready.command}' in ${where} did not succeed within ${timeout} (last: ${last}); check the command with nsproxy check --ready-exec, or raise --ready-timeout`,
  };
}
