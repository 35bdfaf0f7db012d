// @ts-check
// peers.js — the paths a workload's traffic takes: direct (client inside the namespace), and
// proxies from a host port into the namespace: nsproxy in one or more variants (a build and
// extra options: see variants.js), socket-proxyd, socat, a Node proxy. Each proxy instance is
// started fresh for one workload run and stopped after it, so its CPU, fds and memory belong to
// that run alone.
'use strict';
const net = require('node:net');
const fs = require('node:fs');
const path = require('node:path');
const procs = require('./procs');

/** `sh -c 'trap "" PIPE; exec "$@"'`: SIGPIPE ignored, as systemd does for its services. */
const NOPIPE = ['sh', '-c', 'trap "" PIPE; exec "$@"', 'sh'];

const SOCKET_PROXYD = '/lib/systemd/systemd-socket-proxyd';

/**
 * @typedef {object} Endpoint where a client connects
 * @property {string} host
 * @property {number} port
 * @property {boolean} inNetns the client must run inside the namespace (direct)
 * @property {number | null} pid root of the proxy's process tree (null: no proxy)
 * @property {import('./procs').Proc | null} proc
 */

/**
 * @typedef {object} PeerCtx
 * @property {{name: string, path: string}} ns
 * @property {number} connectionsMax
 * @property {number} threads nsproxy --threads
 * @property {Record<string, string>} nsproxyMains build ('current', 'baseline') -> its copied dist/main.js
 * @property {() => number} nextPort a free host port
 */

/**
 * @typedef {object} Activation how a socket-activated peer is started
 * @property {string} name
 * @property {string[]} argv the command systemd-socket-activate execs (SIGPIPE ignored)
 * @property {(p: import('./procs').Proc) => Promise<void>} ready resolves once the proxy runs
 */

/**
 * @typedef {object} Peer
 * @property {string} id
 * @property {string} label
 * @property {string} how one line for the report
 * @property {import('./variants').Variant} [variant] nsproxy peers only: which build, which options
 * @property {(ctx: PeerCtx, targetPort: number) => Promise<Endpoint>} start
 * @property {(ctx: PeerCtx, targetPort: number) => Activation} [activation] socket-activated peers only
 */

/**
 * systemd-socket-activate listening on 127.0.0.1:hostPort, waiting for its first connection to
 * exec the peer's command; resolves once it listens.
 * @param {Activation} act
 * @param {number} hostPort
 */
async function listenActivated(act, hostPort) {
  const proc = procs.start(act.name, 'systemd-socket-activate', ['-l', `127.0.0.1:${hostPort}`, ...NOPIPE, ...act.argv]);
  try {
    await procs.waitListening(hostPort, 'self', 10000, `systemd-socket-activate for ${act.name}`, proc);
  } catch (err) {
    await procs.stop(proc);
    throw err;
  }
  return proc;
}

/** A proxy that exited before it was ready: its exit code and last output lines. */
class StartError extends Error {
  /**
   * @param {string} message
   * @param {number | null} exitCode
   * @param {string} output
   */
  constructor(message, exitCode, output) {
    super(message);
    this.exitCode = exitCode;
    this.output = output;
  }
}

/**
 * Start a socket-activated peer on 127.0.0.1:hostPort, make the first connection
 * (socket-activate execs the command only then), wait until the proxy runs, close that
 * connection and wait until the proxy has dealt with it.
 * @param {Activation} act
 * @param {number} hostPort
 */
async function activated(act, hostPort) {
  const { name, ready } = act;
  const proc = await listenActivated(act, hostPort);
  try {
    const trigger = net.connect({ host: '127.0.0.1', port: hostPort });
    trigger.on('error', () => {});
    const closed = new Promise((r) => trigger.on('close', r));
    await Promise.race([
      ready(proc),
      proc.exited.then((e) => {
        // systemd-socket-activate's own lines (Listening on…, Execing…) say nothing about the failure
        const own = (/** @type {string} */ t) => t.split('\n').filter((l) => !/^(Listening on |Communication attempt on fd |Execing )/.test(l)).join('\n');
        const output = `${own(proc.err.tail())}\n${proc.out.tail()}`.trim();
        throw new StartError(`${name} exited during start-up (${e.signal ? `killed by ${e.signal}` : `exit code ${e.code}`}):\n${output}`, e.code, output);
      }),
    ]);
    // Abort it (RST): a half-close would leave some servers (iperf3) holding the forwarded
    // connection for seconds. Then give the proxy a moment to tear its side down.
    trigger.resetAndDestroy();
    await Promise.race([closed, procs.timeout(1000)]);
    await procs.sleep(100);
    return proc;
  } catch (err) {
    await procs.stop(proc);
    throw err;
  }
}

/**
 * Resolves when /proc/PID/exe is `base` (the exec chain reached the proxy binary).
 * @param {string} base
 * @param {number} timeoutMs
 */
function exeIs(base, timeoutMs = 10000) {
  return async (/** @type {import('./procs').Proc} */ proc) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if (path.basename(fs.readlinkSync(`/proc/${proc.pid}/exe`)) === base) return;
      } catch {
        /* not yet, or gone (the race above reports the exit) */
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${base} to start`);
      await procs.sleep(10);
    }
  };
}

/**
 * A socket-activated peer, started and past its first connection: where clients connect.
 * @param {Peer} peer
 * @param {PeerCtx} ctx
 * @param {number} targetPort
 * @returns {Promise<Endpoint>}
 */
async function activatedEndpoint(peer, ctx, targetPort) {
  const hostPort = ctx.nextPort();
  const proc = await activated(/** @type {NonNullable<Peer['activation']>} */ (peer.activation)(ctx, targetPort), hostPort);
  return { host: '127.0.0.1', port: hostPort, inNetns: false, pid: proc.pid, proc };
}

/**
 * An nsproxy peer: a build (the tree's own, or --baseline's) run with the variant's options.
 * @param {import('./variants').Variant} v
 * @returns {Peer}
 */
function nsproxyPeer(v) {
  const extra = v.options.length ? ` ${v.options.join(' ')}` : '';
  const build = v.build === 'baseline' ? `${v.dir}/dist/main.js` : 'dist/main.js';
  return {
    id: v.peerId,
    label: v.label,
    how: `systemd-socket-activate -l HOST:PORT ${build} --netns NS --to 127.0.0.1:PORT${extra} (run as a program: its #! line's node flags apply)`,
    variant: v,
    activation(ctx, targetPort) {
      const args = [ctx.nsproxyMains[v.build], '--netns', ctx.ns.name, '--to', `127.0.0.1:${targetPort}`, '--connections-max', String(ctx.connectionsMax)];
      // the variant's own --threads wins over the harness's
      if (ctx.threads !== 1 && !v.options.some((o) => o === '--threads' || o.startsWith('--threads='))) args.push('--threads', String(ctx.threads));
      args.push(...v.options);
      return {
        name: v.label,
        argv: args,
        ready: (p) => p.out.waitFor((l) => l.includes('"msg":"ready"'), 15000, `${v.label}'s "ready" log line`).then(() => undefined),
      };
    },
    async start(ctx, targetPort) {
      return activatedEndpoint(this, ctx, targetPort);
    },
  };
}

/** The peers that are not nsproxy. @type {Record<string, Peer>} */
const OTHER_PEERS = {
  direct: {
    id: 'direct',
    label: 'direct',
    how: 'client inside the namespace, no proxy (the physical limit)',
    async start(_ctx, targetPort) {
      return { host: '127.0.0.1', port: targetPort, inNetns: true, pid: null, proc: null };
    },
  },
  'socket-proxyd': {
    id: 'socket-proxyd',
    label: 'socket-proxyd',
    how: 'systemd-socket-activate -l HOST:PORT sh -c \'trap "" PIPE; exec nsenter --net=NS systemd-socket-proxyd 127.0.0.1:PORT\'',
    activation(ctx, targetPort) {
      return {
        name: 'systemd-socket-proxyd',
        argv: ['nsenter', `--net=${ctx.ns.path}`, SOCKET_PROXYD, `--connections-max=${ctx.connectionsMax}`, `127.0.0.1:${targetPort}`],
        ready: exeIs('systemd-socket-proxyd'),
      };
    },
    async start(ctx, targetPort) {
      return activatedEndpoint(this, ctx, targetPort);
    },
  },
  socat: {
    id: 'socat',
    label: 'socat',
    how: 'socat TCP-LISTEN:PORT,fork EXEC:"nsenter --net=NS socat STDIO TCP:127.0.0.1:PORT",nofork (a process per connection)',
    async start(ctx, targetPort) {
      // socat 1.7.4 (Debian 12) has no ACCEPT-FD and no netns= option, so it cannot take a
      // listening socket from systemd-socket-activate nor connect into another namespace by
      // itself. It listens itself; per connection the forked child execs (nofork: no extra
      // process, the accepted socket becomes its stdin/stdout) nsenter + socat, which connects
      // inside the namespace: one relay process per connection, like `socat ... fork TCP:`.
      const hostPort = ctx.nextPort();
      // socat's address parser splits on ':' and ',': escape the inner address's colons
      const inner = `nsenter --net=${ctx.ns.path} socat STDIO TCP\\:127.0.0.1\\:${targetPort}`;
      const proc = procs.start('socat', NOPIPE[0], [
        ...NOPIPE.slice(1),
        'socat',
        `TCP-LISTEN:${hostPort},bind=127.0.0.1,reuseaddr,fork,backlog=4096`,
        `EXEC:${inner},nofork`,
      ]);
      try {
        await procs.waitListening(hostPort, 'self', 10000, 'socat', proc);
      } catch (err) {
        await procs.stop(proc);
        throw err;
      }
      return { host: '127.0.0.1', port: hostPort, inNetns: false, pid: proc.pid, proc };
    },
  },
  node: {
    id: 'node',
    label: 'Node net proxy',
    how: 'systemd-socket-activate -l HOST:PORT nsenter --net=NS node bench/peers/node-proxy.js 127.0.0.1:PORT',
    activation(ctx, targetPort) {
      return {
        name: 'node-proxy',
        argv: ['nsenter', `--net=${ctx.ns.path}`, process.execPath, path.join(__dirname, '..', 'peers', 'node-proxy.js'), `127.0.0.1:${targetPort}`],
        ready: (p) => p.out.waitFor((l) => l === 'ready', 15000, 'node-proxy ready').then(() => undefined),
      };
    },
    async start(ctx, targetPort) {
      return activatedEndpoint(this, ctx, targetPort);
    },
  },
};

/**
 * Every peer of a run, in the report's order: direct, the nsproxy variants (the baseline last
 * of them), socket-proxyd, socat, the Node proxy.
 * @param {import('./variants').Variant[]} variants
 * @returns {{peers: Record<string, Peer>, order: string[]}}
 */
function makePeers(variants) {
  /** @type {Record<string, Peer>} */
  const peers = { direct: OTHER_PEERS.direct };
  for (const v of variants) peers[v.peerId] = nsproxyPeer(v);
  for (const id of ['socket-proxyd', 'socat', 'node']) peers[id] = OTHER_PEERS[id];
  return { peers, order: Object.keys(peers) };
}

/** Is this peer started by systemd-socket-activate (so it has a cold start)? @param {Peer} p */
const isActivated = (p) => typeof p.activation === 'function';

/**
 * Free host ports below the ephemeral range (so that client source ports never collide).
 * @returns {() => number}
 */
function portAllocator() {
  let next = 20000 + (process.pid % 400) * 25;
  return () => {
    for (let i = 0; i < 12000; i++) {
      const p = next;
      next = next >= 32000 ? 20000 : next + 1;
      if (!procs.isListening(p) && !portInUse(p)) return p;
    }
    throw new Error('no free host port in 20000-32000');
  };
}

/** Any TCP socket (any state) on local port p in our netns? @param {number} p */
function portInUse(p) {
  const hex = `:${p.toString(16).toUpperCase().padStart(4, '0')}`;
  try {
    return fs
      .readFileSync('/proc/self/net/tcp', 'utf8')
      .split('\n')
      .some((l) => (l.trim().split(/\s+/)[1] || '').endsWith(hex));
  } catch {
    return false;
  }
}

module.exports = { makePeers, isActivated, portAllocator, listenActivated, StartError };
