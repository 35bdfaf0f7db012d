// commands/check.ts — `nsproxy check`: what nsproxy sees of a target, without forwarding
// anything. The resolved target (runtime, PID, namespace, owner, how nsproxy would enter it),
// the namespace's addresses and listening TCP sockets, a probe of each --to, and one run of the
// readiness check. Exit 0 when nothing is wrong, 1 otherwise; --json for scripts.
//
// Listening sockets of a process target come from /proc/PID/net/tcp{,6}, which its owner may
// read without entering anything. A --netns namespace has no process: there, and for the
// addresses (rtnetlink) in any case, a forked child enters the namespace the way nsproxy's
// engine would (native/netns_inspect.h).
import { formatEndpoint } from '../address';
import { list, parseRoute, readyExec, readyHealth, single, targetSpec, type RawOptions, type TargetSpec } from '../config';
import { EXIT_FAILURE, EXIT_OK, NsproxyError } from '../errors';
import { COMMAND_USAGES } from '../help';
import { hostDeps } from '../host';
import type { NetnsSnapshot } from '../native';
import { READY_OPTIONS, TARGET_OPTIONS, TO_OPTION, type OptionSpec } from '../options';
import { parseTcpTable, socketHolders, tcpSocketsOf, type TcpSocket } from '../procfs';
import { describeOutcome, EXEC_TIMEOUT_MS, runReadyExec } from '../ready-exec';
import { describeHealth } from '../ready-health';
import { resolveDestination } from '../routes';
import { containerRuntime } from '../runtimes';
import { accessPlan, closeTarget, resolveTarget, type AccessPlan, type Target, type TargetDeps } from '../target';
import { renderCheck, type CheckReport } from './check-report';
import { parseCommand } from './parse';

const PROBE_TIMEOUT_MS = 2000;
const INSPECT_TIMEOUT_MS = 5000;

export const OPTIONS: OptionSpec[] = [
  ...TARGET_OPTIONS,
  { ...TO_OPTION, description: 'An address inside the namespace to probe (as the daemon takes it); repeatable' },
  READY_OPTIONS[0] as OptionSpec,
  READY_OPTIONS[1] as OptionSpec,
  { name: 'json', type: 'boolean', description: 'One JSON object on stdout instead of text' },
];

export const DESCRIPTION = `What nsproxy sees of a target, without forwarding anything: the resolved target (runtime,
PID, network namespace, its owner, whether and how nsproxy may enter it: in-thread with
CAP_SYS_ADMIN, or through a helper that joins the owning user namespace), the namespace's
addresses and listening TCP sockets, a TCP probe of each --to from inside, and one run of
--ready-exec or a look at the container's health. Exit status 0 when nothing is wrong, 1 when
something is (the text says what), 2 for bad options.`;

function wildcardFor(family: 4 | 6): string {
  return family === 6 ? '::' : '0.0.0.0';
}

/** Whether a listening socket takes connections to address:port (its own address, or a wildcard). */
function listensOn(socket: TcpSocket, address: string, port: number, family: 4 | 6): boolean {
  if (socket.port !== port) return false;
  if (socket.address === address || socket.address === `::ffff:${address}`) return true;
  return socket.address === wildcardFor(family) || (family === 4 && socket.address === '::');
}

async function ownerOf(target: Target, deps: TargetDeps): Promise<{ uid?: number; usernsInode?: string }> {
  try {
    const userns = deps.native.owningUserns(target.netnsFd);
    try {
      return { uid: deps.native.usernsOwnerUid(userns), usernsInode: deps.native.fdInode(userns) };
    } finally {
      deps.closeFd(userns);
    }
  } catch {
    return {};
  }
}

function describeAccess(plan: AccessPlan, deps: TargetDeps): string {
  switch (plan.path) {
    case 'in-thread':
      return `in-thread: nsproxy has CAP_SYS_ADMIN (uid ${deps.euid}) and enters the namespace from its engine threads (setns)`;
    case 'helper':
      return `helper: nsproxy (uid ${deps.euid}, no CAP_SYS_ADMIN) owns the namespace; a helper process joins its user namespace, then the netns`;
    case 'refused':
      return `refused: ${plan.error.message}`;
  }
}

/** Gathers the whole report; never throws for what it finds, only for bad usage. */
export async function checkTarget(spec: TargetSpec, raw: RawOptions, deps: TargetDeps): Promise<CheckReport> {
  const routes = list(raw.to).map((text) => parseRoute(text, spec));
  const ready = readyExec(single('ready-exec', raw.readyExec));
  const health = readyHealth(single('ready', raw.ready), spec);
  const report: CheckReport = { ok: false, problems: [], target: { kind: spec.kind, description: '' }, addresses: [], listening: [], probes: [] };

  let target: Target;
  try {
    target = await resolveTarget(spec, deps);
  } catch (err) {
    if (!(err instanceof NsproxyError)) throw err;
    report.target.description = spec.kind === 'container' ? `container ${spec.name}` : spec.kind === 'pid' ? `pid ${spec.pid}` : `netns ${spec.name}`;
    report.problems.push(err.message);
    return report;
  }
  try {
    const owner = await ownerOf(target, deps);
    const plan = accessPlan(target.netnsFd, target.description, deps);
    const usernsFd = plan.path === 'helper' ? plan.usernsFd : undefined;
    report.target = {
      kind: spec.kind,
      description: target.description,
      runtime: spec.kind === 'container' ? spec.runtime : undefined,
      containerId: target.container?.id,
      status: target.container?.status,
      networks: target.container?.networks,
      pid: target.pid,
      netnsInode: deps.native.fdInode(target.netnsFd),
      ownerUid: owner.uid,
      usernsInode: owner.usernsInode,
      access: plan.path,
      accessDetail: describeAccess(plan, deps),
    };
    if (plan.path === 'refused') report.problems.push(plan.error.message);
    const netnsInode = report.target.netnsInode as string;

    // addresses, and the sockets of a namespace without a process, from inside
    let snapshot: NetnsSnapshot | undefined;
    if (plan.path !== 'refused') {
      try {
        snapshot = await deps.native.inspectNetns(target.netnsFd, usernsFd ?? -1, INSPECT_TIMEOUT_MS);
      } catch (err) {
        report.problems.push(`cannot look inside the namespace: ${(err as Error).message}`);
      }
    }
    if (snapshot) {
      const names = new Map(snapshot.links.map((l) => [l.index, l]));
      report.interfaces = snapshot.links.map((l) => ({ name: l.name, up: l.up }));
      report.addresses = snapshot.addresses.map((a) => ({ interface: names.get(a.index)?.name ?? `#${a.index}`, family: a.family, address: a.address, prefixLength: a.prefixLength }));
    }
    const sockets = target.pid !== undefined ? tcpSocketsOf(target.pid) : snapshot ? [...parseTcpTable(snapshot.tcp), ...parseTcpTable(snapshot.tcp6)] : [];
    const listening = sockets.filter((s) => s.state === 'LISTEN');
    const holders = socketHolders(listening.map((s) => s.inode), netnsInode);
    report.listening = listening.map((s) => ({ address: s.local, uid: s.uid, process: holders.get(s.inode)?.command, pid: holders.get(s.inode)?.pid }));
    report.listeningSource = target.pid !== undefined ? `/proc/${target.pid}/net/tcp{,6}` : snapshot ? 'read inside the namespace' : 'not available';

    // each --to: does something listen there, does it accept from inside
    for (const route of routes) {
      let endpoint;
      try {
        endpoint = resolveDestination(route.destination, target);
      } catch (err) {
        report.problems.push((err as Error).message);
        continue;
      }
      const to = formatEndpoint(endpoint);
      const listener = listening.find((s) => listensOn(s, endpoint.address, endpoint.port, endpoint.family));
      const probe: CheckReport['probes'][number] = { to, name: route.name, listening: listener?.local };
      if (plan.path !== 'refused') {
        const started = Date.now();
        const failure = await deps.native.probeTcp(target.netnsFd, usernsFd ?? -1, endpoint.address, endpoint.port, PROBE_TIMEOUT_MS);
        probe.elapsedMs = Date.now() - started;
        probe.accepted = failure === null;
        if (failure) probe.error = `${failure.syscall} ${failure.code}`;
        if (failure) {
          const open = listening.map((s) => s.local).join(', ') || 'nothing';
          const why = listener ? '' : `: nothing listens on port ${endpoint.port} for ${endpoint.address} in there (listening: ${open})`;
          report.problems.push(`${to} in ${target.description} did not accept a connection (${probe.error})${why}`);
        }
      }
      report.probes.push(probe);
    }

    if (ready && plan.path !== 'refused') {
      const started = Date.now();
      const withAccess = { ...target, usernsFd };
      const outcome = await runReadyExec(deps.native, withAccess, ready, EXEC_TIMEOUT_MS, deps.env).catch((err: Error) => ({ outcome: 'failed' as const, code: 'ERROR', errno: 0, syscall: err.message, output: '', truncated: false }));
      const ok = outcome.outcome === 'exited' && outcome.exitCode === 0;
      report.readyExec = { command: ready.command, ok, result: describeOutcome(outcome), output: outcome.output, elapsedMs: Date.now() - started };
      if (!ok) report.problems.push(`--ready-exec '${ready.command}' in ${target.description}: ${describeOutcome(outcome)}`);
    }
    if (health && spec.kind === 'container') {
      const state = await containerRuntime(spec.runtime, deps.env, spec.runcRoot).inspect(spec.name);
      const ok = state.health?.status === 'healthy';
      report.health = { status: state.health?.status ?? 'none', detail: state.health ? describeHealth(state.health) : 'no healthcheck configured', ok };
      if (!ok) report.problems.push(state.health ? `${target.description} is not healthy: ${describeHealth(state.health)}` : `${target.description} has no healthcheck (HealthCmd=); --ready health would fail`);
    }
    if (usernsFd !== undefined) deps.closeFd(usernsFd);
  } finally {
    closeTarget(target, deps.closeFd);
  }
  report.ok = report.problems.length === 0;
  return report;
}

export async function runCheck(argv: string[]): Promise<number> {
  const parsed = await parseCommand('check', argv, COMMAND_USAGES[0] as string, DESCRIPTION, OPTIONS);
  if (parsed.help) return EXIT_OK;
  if (parsed.positionals.length > 0) throw new NsproxyError('NSPROXY_ERR_USAGE', `unexpected argument '${parsed.positionals[0]}'; options start with -- (see nsproxy check --help)`);
  const raw = parsed.options as RawOptions & { json?: boolean };
  const spec = targetSpec(raw);
  const report = await checkTarget(spec, raw, hostDeps(process.env));
  process.stdout.write(raw.json ? `${JSON.stringify(report, null, 2)}\n` : renderCheck(report));
  return report.ok ? EXIT_OK : EXIT_FAILURE;
}
