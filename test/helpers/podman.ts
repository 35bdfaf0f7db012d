// Rootful podman for the container tests, with no registry: a per-run
// CONTAINERS_CONF (runc, ulimits within root's hard limits), a busybox image
// imported from a local rootfs tarball, containers and bridge networks that are
// removed in teardown (and on exit, if a test is aborted), and the clean-up of the
// firewall tables a rootful bridge network leaves behind.
//
// Every podman call, and every nsproxy that resolves containers with podman, must
// get podmanEnv() in its environment (nsproxy runs `podman inspect` itself).
import type {} from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { NODE, SERVER_JS, childEnv, type TestLike } from './env';
import { runCommand, type RunResult } from './procs';
import { findStaticBusybox, libraryDirs, busyboxRootfsTar, rootfsVersion } from './rootfs';
import type { ServerMode } from './namespaces';

export const TEST_IMAGE = 'localhost/nsproxy-test-busybox:latest';
const IMAGE_LABEL = 'nsproxy.test.rootfs';
const IMAGE_LOCK = '/run/lock/nsproxy-test-busybox-image.lock';

// ---------------------------------------------------------------------------
// containers.conf and the environment

let confDir: string | null = null;

/** `want`, capped at our own hard limit for a /proc/self/limits row ("Max open files"). */
function capped(want: number, row: string): number {
  const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith(row));
  const hard = line?.slice(row.length).trim().split(/\s+/)[1];
  return hard === undefined || hard === 'unlimited' ? want : Math.min(want, Number(hard));
}

/**
 * containers.conf for podman on this machine kind: runtime runc (crun refuses its hybrid
 * cgroups) and default ulimits within our hard limits (root lacks CAP_SYS_RESOURCE here, and
 * podman's defaults exceed them). `writer` names the helper that wrote it.
 */
export function containersConfText(writer: string): string {
  const nofile = capped(20000, 'Max open files');
  const nproc = capped(32768, 'Max processes');
  return [
    `# written by ${writer} for one test run`,
    '[containers]',
    `default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]`,
    '[engine]',
    'runtime = "runc"',
    '',
  ].join('\n');
}

/**
 * The path of this test process's containers.conf (written on first use into a
 * temp dir that is removed on exit): runtime runc (crun refuses this machine's
 * hybrid cgroups) and default ulimits that root may set (it lacks CAP_SYS_RESOURCE:
 * podman's defaults exceed the hard limits).
 */
export function containersConf(): string {
  if (confDir === null) {
    confDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsproxy-podman-'));
    fs.writeFileSync(path.join(confDir, 'containers.conf'), containersConfText('test/helpers/podman.ts'));
  }
  return path.join(confDir, 'containers.conf');
}

/** The environment podman (and nsproxy, which runs podman) needs. */
export function podmanEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { CONTAINERS_CONF: containersConf(), ...extra };
}

/** Runs `podman ARGS` (never throws; SIGKILL after timeoutMs). */
export function podman(args: string[], timeoutMs = 60000): Promise<RunResult> {
  return runCommand('podman', args, { env: childEnv(podmanEnv()), timeoutMs });
}

/** Runs `podman ARGS`, returns stdout; throws with stderr when it fails. */
export async function podmanOk(args: string[], timeoutMs = 60000): Promise<string> {
  const r = await podman(args, timeoutMs);
  if (r.code !== 0) {
    throw new Error(`podman ${args.join(' ')} failed (code ${r.code}, signal ${r.signal}${r.timedOut ? ', timed out' : ''}): ${r.stderr.trim()}`);
  }
  return r.stdout;
}

function inPath(cmd: string): string | null {
  for (const d of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (!d) continue;
    const p = path.join(d, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

/** null when rootful podman with runc and a static busybox can run containers here; else what is missing. */
export async function podmanAvailable(): Promise<string | null> {
  const missing = ['podman', 'runc'].filter((c) => inPath(c) === null);
  if (missing.length > 0) {
    return `${missing.join(' and ')} not found in PATH; the container tests need them (apt-get install podman runc uidmap busybox-static netavark aardvark-dns iptables nftables; .ci/run installs them)`;
  }
  const bb = findStaticBusybox();
  if ('problem' in bb) return bb.problem;
  if (process.getuid?.() !== 0) return 'the container tests need root (rootful podman)';
  const r = await podman(['info', '--format', '{{.Host.OCIRuntime.Name}}'], 60000);
  if (r.code !== 0) return `podman info fails with CONTAINERS_CONF=${containersConf()}: ${r.stderr.trim()}`;
  if (r.stdout.trim() !== 'runc') return `podman uses OCI runtime '${r.stdout.trim()}', expected runc from ${containersConf()}`;
  return null;
}

/** Fails the test (never skips: CI installs podman) when podman cannot run containers. */
export async function requirePodman(t: tap.Test): Promise<boolean> {
  const problem = await podmanAvailable();
  if (problem === null) return true;
  t.fail(`podman is not usable: ${problem}`);
  return false;
}

// ---------------------------------------------------------------------------
// the image

/**
 * Makes sure TEST_IMAGE exists and holds the current rootfs (busybox + applet links,
 * see rootfs.ts): imported once from a tarball and then kept as a cache. Idempotent,
 * and safe against test files running in parallel (flock).
 */
export async function ensureBusyboxImage(): Promise<void> {
  const bb = findStaticBusybox();
  if ('problem' in bb) throw new Error(bb.problem);
  const version = rootfsVersion(bb.path);
  const current = async (): Promise<boolean> => {
    const r = await podman(['image', 'inspect', '--format', `{{index .Labels "${IMAGE_LABEL}"}}`, TEST_IMAGE]);
    return r.code === 0 && r.stdout.trim() === version;
  };
  await sweepStale();
  if (await current()) return;

  // an older version of the image, replaced below: removed afterwards (not left dangling)
  const old = await podman(['image', 'inspect', '--format', '{{.Id}}', TEST_IMAGE]);
  const oldId = old.code === 0 ? old.stdout.trim() : null;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsproxy-rootfs-'));
  try {
    const tar = await busyboxRootfsTar(dir, bb.path);
    fs.mkdirSync(path.dirname(IMAGE_LOCK), { recursive: true });
    // under the lock: check again (another test file may have imported it meanwhile), then import
    const script =
      'if [ "$(podman image inspect --format "{{index .Labels \\"$LABEL\\"}}" "$IMAGE" 2>/dev/null)" = "$VERSION" ]; then exit 0; fi; ' +
      'podman import -q --change "LABEL $LABEL=$VERSION" "$TAR" "$IMAGE" >/dev/null';
    const r = await runCommand('flock', ['-w', '120', IMAGE_LOCK, 'sh', '-c', script], {
      env: childEnv(podmanEnv({ LABEL: IMAGE_LABEL, VERSION: version, TAR: tar, IMAGE: TEST_IMAGE })),
      timeoutMs: 150000,
    });
    if (r.code !== 0) throw new Error(`podman import of ${TEST_IMAGE} failed (code ${r.code}): ${r.stderr.trim()}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (!(await current())) throw new Error(`${TEST_IMAGE} does not carry label ${IMAGE_LABEL}=${version} after the import`);
  if (oldId) await podman(['rmi', oldId]); // fails harmlessly while a container still uses it
}

let swept = false;

/**
 * Once per test process: removes containers and networks named nsproxy-t-<pid>-...
 * whose test process <pid> is gone (left behind by a test run that was SIGKILLed).
 */
async function sweepStale(): Promise<void> {
  if (swept) return;
  swept = true;
  const dead = (name: string): boolean => {
    const m = /^nsproxy-t-(\d+)-/.exec(name);
    return m !== null && Number(m[1]) !== process.pid && !fs.existsSync(`/proc/${m[1]}`);
  };
  const cs = await podman(['ps', '-a', '--format', '{{.Names}}']);
  const staleContainers = cs.stdout.split('\n').map((l) => l.trim()).filter(dead);
  if (staleContainers.length > 0) await podman(['rm', '-f', '-t', '0', '--ignore', ...staleContainers]);
  const ns = await podman(['network', 'ls', '--format', '{{.Name}}']);
  const staleNetworks = ns.stdout.split('\n').map((l) => l.trim()).filter(dead);
  for (const n of staleNetworks) await podman(['network', 'rm', '-f', n]);
  if (staleNetworks.length > 0 && liveNetworks.size === 0) await cleanupBridgeLeftovers();
}

// ---------------------------------------------------------------------------
// containers

const liveContainers = new Set<string>();
const liveNetworks = new Set<string>();

function cleanupOnExit(): void {
  if (confDir === null) return; // podman never used in this process
  const env = childEnv(podmanEnv());
  for (const name of liveContainers) {
    try {
      execFileSync('podman', ['rm', '-f', '-t', '0', name], { stdio: 'ignore', env, timeout: 30000 });
    } catch {
      /* best effort */
    }
  }
  for (const name of liveNetworks) {
    try {
      execFileSync('podman', ['network', 'rm', '-f', name], { stdio: 'ignore', env, timeout: 30000 });
    } catch {
      /* best effort */
    }
  }
  fs.rmSync(confDir, { recursive: true, force: true });
}
process.on('exit', cleanupOnExit);
process.on('message', (m: unknown) => {
  if (m !== null && typeof m === 'object' && (m as { tapAbort?: unknown }).tapAbort === 'timeout') cleanupOnExit();
});

let counter = 0;

/** A unique name for something this test process creates: nsproxy-t-<pid>-<n>-<what>. */
export function uniqueName(what: string): string {
  return `nsproxy-t-${process.pid}-${++counter}-${what}`;
}

export interface Container {
  name: string;
  id: string;
  /** State.Pid right after the start (0 when the container was only created) */
  pid: number;
}

export interface RunContainerOpts {
  /** default: a unique nsproxy-t-... name */
  name?: string;
  /** --network= (default none) */
  network?: string;
  /** more `podman run` options, e.g. ['-v', 'a:b:ro', '--user', '70:70'] */
  args?: string[];
  /** the command inside (the image has no default command) */
  cmd: string[];
  image?: string;
  /** `podman create` instead of `podman run -d`: the container exists but does not run */
  createOnly?: boolean;
}

/** Registers teardown `podman rm -f -t0 NAME` (also on an aborted run). */
export function removeOnTeardown(t: TestLike, name: string): void {
  liveContainers.add(name);
  t.teardown(async () => {
    const r = await podman(['rm', '-f', '-t', '0', '--ignore', name]);
    liveContainers.delete(name);
    if (r.code !== 0) throw new Error(`podman rm -f ${name} failed: ${r.stderr.trim()}`);
  });
}

/** `podman run -d --name NAME --network=none ... IMAGE CMD` (or `podman create`); removed in teardown. */
export async function runContainer(t: TestLike, opts: RunContainerOpts): Promise<Container> {
  await ensureBusyboxImage();
  const name = opts.name ?? uniqueName('c');
  removeOnTeardown(t, name);
  const argv = [
    ...(opts.createOnly ? ['create'] : ['run', '-d']),
    '--name', name,
    `--network=${opts.network ?? 'none'}`,
    ...(opts.args ?? []),
    opts.image ?? TEST_IMAGE,
    ...opts.cmd,
  ];
  const id = (await podmanOk(argv)).trim().split('\n').pop() ?? '';
  const st = await inspectContainer(name);
  if (!opts.createOnly && (!st.running || st.pid <= 0)) {
    const logs = await podman(['logs', name]);
    throw new Error(`container ${name} is not running after podman run (status ${st.status}): ${logs.stdout}${logs.stderr}`);
  }
  return { name, id, pid: st.pid };
}

export interface ContainerState {
  pid: number;
  running: boolean;
  status: string;
  /** network name -> IPv4 address */
  networks: Record<string, string>;
}

export async function inspectContainer(name: string): Promise<ContainerState> {
  const out = await podmanOk(['inspect', '--type', 'container', '--format', '{{json .State}}\t{{json .NetworkSettings.Networks}}', name]);
  const [state, nets] = out.trim().split('\t');
  const s = JSON.parse(state) as { Pid: number; Running: boolean; Status: string };
  const n = (JSON.parse(nets) ?? {}) as Record<string, { IPAddress?: string }>;
  const networks: Record<string, string> = {};
  for (const [k, v] of Object.entries(n)) networks[k] = v.IPAddress ?? '';
  return { pid: s.Pid, running: s.Running, status: s.Status, networks };
}

// ---------------------------------------------------------------------------
// the fixture server inside a container

/** `-v` options that let `node /fixtures/server.js` run in the busybox image. */
export function fixtureServerMounts(): string[] {
  const mounts: string[] = [];
  for (const d of libraryDirs([NODE])) mounts.push('-v', `${d}:${d}:ro`);
  mounts.push('-v', `${NODE}:/usr/bin/node:ro`);
  mounts.push('-v', `${path.dirname(SERVER_JS)}:/fixtures:ro`);
  return mounts;
}

/** The argv of the fixture server inside such a container. */
export function fixtureServerCmd(mode: ServerMode, listens: string[]): string[] {
  const cmd = ['node', '/fixtures/server.js', '--mode', mode];
  for (const l of listens) cmd.push('--listen', l);
  return cmd;
}

/** The fixture server (`node test/fixtures/server.js`) as the container's process. */
export async function runServerContainer(
  t: TestLike,
  mode: ServerMode,
  listens: string[],
  opts: Omit<RunContainerOpts, 'cmd'> & { waitPort?: number | null } = {},
): Promise<Container> {
  const c = await runContainer(t, {
    ...opts,
    args: [...fixtureServerMounts(), ...(opts.args ?? [])],
    cmd: fixtureServerCmd(mode, listens),
  });
  const port = opts.waitPort === undefined ? portOf(listens[0]) : opts.waitPort;
  if (port !== null) await waitForListenIn(c.pid, port, 20000, `the fixture server in ${c.name}`);
  return c;
}

function portOf(hostPort: string): number {
  const m = /:(\d+)$/.exec(hostPort) ?? /^(\d+)$/.exec(hostPort);
  if (!m) throw new Error(`no port in ${hostPort}`);
  return Number(m[1]);
}

/** The TCP ports in LISTEN state in the netns of pid (/proc/PID/net/tcp{,6}, no setns needed). */
export function listeningPorts(pid: number): Set<number> {
  const ports = new Set<number>();
  for (const f of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${f}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4 || cols[3] !== '0A') continue;
      ports.add(parseInt(cols[1].split(':')[1], 16));
    }
  }
  return ports;
}

/** Waits until something listens on port in the netns of pid. */
export async function waitForListenIn(pid: number, port: number, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!listeningPorts(pid).has(port)) {
    if (!fs.existsSync(`/proc/${pid}`)) throw new Error(`${what}: pid ${pid} exited before listening on ${port}`);
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: nothing listens on port ${port} in the netns of pid ${pid} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------
// bridge networks and their firewall leftovers

interface NftItem {
  table?: { family: string; name: string };
  chain?: { family: string; table: string; name: string; hook?: string };
  rule?: { family: string; table: string; chain: string; expr?: unknown[] };
}

const OURS = /^(NETAVARK|CNI-)/;

/**
 * The nftables tables that hold nothing but podman's network chains (netavark's
 * NETAVARK*, CNI's CNI-*) and base chains whose every rule jumps to one of them:
 * what a rootful bridge network leaves behind. A table with anything else is not listed.
 */
export function podmanOnlyTables(ruleset: NftItem[]): Array<{ family: string; name: string }> {
  const tables = ruleset.filter((x) => x.table).map((x) => x.table as { family: string; name: string });
  const out: Array<{ family: string; name: string }> = [];
  for (const tb of tables) {
    const key = (o: { family: string; table: string }): boolean => o.family === tb.family && o.table === tb.name;
    const chains = ruleset.filter((x) => x.chain && key(x.chain)).map((x) => x.chain as { name: string; hook?: string });
    const rules = ruleset.filter((x) => x.rule && key(x.rule)).map((x) => x.rule as { chain: string; expr?: unknown[] });
    const ourChains = chains.filter((c) => OURS.test(c.name));
    if (ourChains.length === 0) continue;
    const foreign = rules.some((r) => !OURS.test(r.chain) && !/"(jump|goto)":\{"target":"(NETAVARK|CNI-)/.test(JSON.stringify(r.expr ?? [])));
    const foreignChains = chains.some((c) => !OURS.test(c.name) && c.hook === undefined);
    if (!foreign && !foreignChains) out.push({ family: tb.family, name: tb.name });
  }
  return out;
}

const FORWARDING = ['/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding'];
// What IP forwarding was before the first bridge network of any test process (netavark
// turns it on); the first createNetwork writes it, the clean-up that restores it removes it.
const FORWARDING_SAVED = '/run/nsproxy-test-forwarding.json';

function readSysctl(p: string): string | null {
  try {
    return fs.readFileSync(p, 'utf8').trim();
  } catch {
    return null;
  }
}

function saveForwarding(): void {
  try {
    fs.writeFileSync(FORWARDING_SAVED, JSON.stringify(FORWARDING.map(readSysctl)), { flag: 'wx' });
  } catch {
    /* already saved by an earlier network (of this or another test process) */
  }
}

function savedForwarding(): Array<string | null> | null {
  try {
    return JSON.parse(fs.readFileSync(FORWARDING_SAVED, 'utf8')) as Array<string | null>;
  } catch {
    return null;
  }
}

/** The network lists of all containers (of any test process) that are on a network other than none/host. */
export async function containersOnNetworks(): Promise<string[]> {
  const ps = await podmanOk(['ps', '-a', '--format', '{{.Networks}}']);
  return ps.split('\n').map((l) => l.trim()).filter((l) => l !== '' && l !== '[]' && !/^\[?(none|host)\]?$/.test(l));
}

/**
 * After the last bridge network is gone: deletes the tables that hold only podman's
 * chains and restores IP forwarding to what it was before (netavark turns it on).
 * Returns what it did, for t.comment.
 */
export async function cleanupBridgeLeftovers(): Promise<string[]> {
  const done: string[] = [];
  // containers still attached to a network (anything but none/host) keep their rules
  const busy = await containersOnNetworks();
  if (busy.length > 0) return [`not cleaning firewall tables: containers are still on networks (${busy.join(', ')})`];
  if (inPath('nft') === null) return ['nft not found: cannot check for firewall tables left by podman (apt-get install nftables)'];
  const r = await runCommand('nft', ['-j', 'list', 'ruleset'], { timeoutMs: 20000 });
  if (r.code !== 0) return [`nft -j list ruleset failed: ${r.stderr.trim()}`];
  const ruleset = ((JSON.parse(r.stdout) as { nftables: NftItem[] }).nftables ?? []) as NftItem[];
  for (const tb of podmanOnlyTables(ruleset)) {
    const d = await runCommand('nft', ['delete', 'table', tb.family, tb.name], { timeoutMs: 20000 });
    done.push(d.code === 0 ? `deleted nftables table ${tb.family} ${tb.name} (podman's chains only)` : `nft delete table ${tb.family} ${tb.name} failed: ${d.stderr.trim()}`);
  }
  const forwardingBefore = savedForwarding();
  if (forwardingBefore === null) return done;
  FORWARDING.forEach((p, i) => {
    const before = forwardingBefore[i];
    const now = readSysctl(p);
    if (before !== null && now !== null && now !== before) {
      fs.writeFileSync(p, `${before}\n`);
      done.push(`restored ${p} to ${before}`);
    }
  });
  fs.rmSync(FORWARDING_SAVED, { force: true });
  return done;
}

/**
 * `podman network create --disable-dns NAME` (a rootful bridge); in teardown
 * `podman network rm -f NAME` (and its containers), then the firewall leftovers.
 */
export async function createNetwork(t: TestLike, name = uniqueName('net')): Promise<string> {
  saveForwarding();
  liveNetworks.add(name);
  t.teardown(async () => {
    const r = await podman(['network', 'rm', '-f', name]);
    liveNetworks.delete(name);
    if (r.code !== 0 && !/network not found|no such network/i.test(r.stderr)) {
      throw new Error(`podman network rm -f ${name} failed: ${r.stderr.trim()}`);
    }
    if (liveNetworks.size === 0) {
      for (const c of await cleanupBridgeLeftovers()) t.comment(c);
    }
  });
  await podmanOk(['network', 'create', '--disable-dns', name]);
  return name;
}
