// Network namespaces and the fixture server running inside them.
import { readlinkSync } from 'node:fs';
import { NODE, SERVER_JS, childEnv, type TestLike } from './env';
import { Proc, mustRun, registerNetns, unregisterNetns, waitForStdoutLine } from './procs';

export type ServerMode = 'hash' | 'echo' | 'reply-after-eof' | 'close-first' | 'sink' | 'reset' | 'multi';

let counter = 0;

/** `ip netns add nsproxy-t-<pid>-<n>`, lo up; deleted on teardown. Returns the name. */
export async function makeNetns(t: TestLike): Promise<string> {
  const name = `nsproxy-t-${process.pid}-${++counter}`;
  registerNetns(name);
  await mustRun('ip', ['netns', 'add', name]);
  t.teardown(async () => {
    await mustRun('ip', ['netns', 'del', name]);
    unregisterNetns(name);
  });
  await mustRun('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

/** One line the fixture server prints per closed connection. */
export interface ServerCloseEvent {
  event: 'close';
  mode: string;
  bytesIn: number;
  bytesOut: number;
  error: string | null;
}

export class TestServer {
  constructor(readonly proc: Proc) {}

  get pid(): number {
    return this.proc.pid;
  }

  /** The per-connection close events printed so far. */
  closeEvents(): ServerCloseEvent[] {
    return this.proc.stdout.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as ServerCloseEvent);
  }

  /** A position in the server's output, for waitForClose(..., since). */
  mark(): number {
    return this.proc.stdout.lines.length;
  }

  /** Waits for a close event matching pred (printed after `since` = mark(), or future). */
  async waitForClose(pred: (e: ServerCloseEvent) => boolean, timeoutMs = 30000, since = 0): Promise<ServerCloseEvent> {
    const line = await waitForStdoutLine(
      this.proc,
      (l) => l.startsWith('{') && pred(JSON.parse(l) as ServerCloseEvent),
      timeoutMs,
      'a matching connection close event from the test server',
      since,
    );
    return JSON.parse(line) as ServerCloseEvent;
  }

  /** Kills the server by PID and waits for it to exit. */
  async stop(): Promise<void> {
    await this.proc.stop('SIGTERM', 5000);
  }
}

function serverArgs(mode: ServerMode, listens: string[]): string[] {
  const args = [SERVER_JS, '--mode', mode];
  for (const l of listens) args.push('--listen', l);
  return args;
}

async function started(t: TestLike, proc: Proc): Promise<TestServer> {
  const server = new TestServer(proc);
  t.teardown(() => server.stop());
  await waitForStdoutLine(proc, (l) => l === 'listening', 20000, `"listening" from ${proc.label}`);
  // We kill by PID: make sure the PID is the server itself, not a wrapper.
  const exe = readlinkSync(`/proc/${proc.pid}/exe`);
  if (exe !== NODE && !exe.endsWith('/node')) {
    throw new Error(`${proc.label}: pid ${proc.pid} is ${exe}, not node`);
  }
  return server;
}

// Servers get a parent-death signal (it survives the execs below, so the PID stays
// the server's): if the test process is SIGKILLed, its servers die with it.
const PDEATHSIG = ['setpriv', '--pdeathsig', 'KILL'];

/** `ip netns exec NS node test/fixtures/server.js --mode MODE --listen ...` */
export async function startServerInNetns(t: TestLike, ns: string, mode: ServerMode, listens: string[]): Promise<TestServer> {
  const proc = new Proc(`server ${mode} in netns ${ns}`, PDEATHSIG[0], [...PDEATHSIG.slice(1), 'ip', 'netns', 'exec', ns, NODE, ...serverArgs(mode, listens)], {
    env: childEnv(),
  });
  return started(t, proc);
}

/**
 * `unshare -n sh -c 'ip link set lo up && exec node test/fixtures/server.js ...'`:
 * the returned server's PID is the process whose /proc/PID/ns/net is the target.
 */
export async function startUnshareServer(t: TestLike, mode: ServerMode, listens: string[]): Promise<TestServer> {
  const proc = new Proc(
    `server ${mode} in unshare -n`,
    PDEATHSIG[0],
    [...PDEATHSIG.slice(1), 'unshare', '-n', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', NODE, ...serverArgs(mode, listens)],
    { env: childEnv() },
  );
  const server = await started(t, proc);
  if (readlinkSync(`/proc/${proc.pid}/ns/net`) === readlinkSync('/proc/self/ns/net')) {
    throw new Error(`unshare server pid ${proc.pid} is in the host netns`);
  }
  return server;
}
