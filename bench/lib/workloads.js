// @ts-check
// workloads.js — what a client does against an endpoint, and what is measured: the client's
// numbers (throughput, latency, rates), the proxy tree's CPU seconds, fds and memory from /proc,
// and the whole machine's busy CPU seconds (/proc/stat) per GB, round trip, connection, transaction.
'use strict';
const procs = require('./procs');
const { PORTS, ECHO_FRESH } = require('./env');
const { listenActivated, isActivated } = require('./peers');

/**
 * @typedef {object} Metric
 * @property {string} id
 * @property {string} label
 * @property {string} unit
 * @property {'higher'|'lower'} better
 * @property {boolean} [proxyOnly] measured on the proxy process: no value for "direct"
 * @property {boolean} [chart] false: not in the ratio chart (informational)
 * @property {boolean} [noRatio] no nsproxy ÷ socket-proxyd (a difference, or the same floor for both)
 * @property {string} [overDirect] not measured: the peer's value of that metric minus direct's in
 *   the same repetition (what the path adds), filled in by the harness once every peer has run
 */

/**
 * @typedef {object} RunCtx
 * @property {{name: string, path: string}} ns
 * @property {string} tcpbench
 * @property {string | null} pgBin
 * @property {Opts} opts
 * @property {number} echoPid the echo server (pinned for pingpong1cpu)
 * @property {number} nproc
 * @property {import('./peers').PeerCtx} peerCtx for workloads that start the peer themselves
 */

/**
 * @typedef {object} Opts
 * @property {number} iperfSeconds
 * @property {number} pingpongCount
 * @property {number} pingpongWarmup
 * @property {number} connSeconds
 * @property {number} pgSeconds
 * @property {number} idleConns
 * @property {number} coldStarts cold starts per coldstart run
 * @property {number} settleMs how long an instance idles before idlerss reads its memory
 */

/**
 * @typedef {object} Workload
 * @property {string} id
 * @property {string} title
 * @property {'iperf'|'echo'|'pg'} target
 * @property {boolean} [freshPort] each run gets a server port of its own (ECHO_FRESH): thousands of short connections leave TIME_WAIT sockets behind
 * @property {Metric[]} metrics
 * @property {(peer: import('./peers').Peer) => boolean} [appliesTo] the peers it applies to (default: all)
 * @property {boolean} [startsPeer] run() starts the peer itself (ep is null; the peer is given)
 * @property {(ctx: RunCtx, ep: import('./peers').Endpoint, peer: import('./peers').Peer) => Promise<{values: Record<string, number|null>, extra?: Record<string, unknown>}>} run
 */

/**
 * argv for a client: inside the namespace for "direct", on the host otherwise.
 * @param {RunCtx} ctx
 * @param {import('./peers').Endpoint} ep
 * @param {string} cmd
 * @param {string[]} args
 * @returns {[string, string[]]}
 */
function client(ctx, ep, cmd, args) {
  return ep.inNetns ? ['nsenter', [`--net=${ctx.ns.path}`, cmd, ...args]] : [cmd, args];
}

/** @param {import('./peers').Endpoint} ep */
const cpu = (ep) => (ep.pid ? procs.treeCpuSeconds(ep.pid) : 0);

/** The whole machine's CPU times (every peer, direct included). */
const mcpu = () => procs.machineCpu();

/**
 * @param {{stdout: string, stderr: string, code: number|null, signal: string|null, timedOut: boolean}} res
 * @param {string} what
 */
function lastJson(res, what) {
  const line = res.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (res.code !== 0 || !line) {
    throw new Error(`${what} failed (exit ${res.code}${res.signal ? ' ' + res.signal : ''}${res.timedOut ? ', timed out' : ''}): ${(res.stderr || res.stdout).trim().slice(-400)}`);
  }
  return JSON.parse(line);
}

/**
 * @param {number} streams
 * @param {boolean} [reverse] iperf3 -R: the server sends (download through the proxy)
 * @returns {Workload}
 */
function iperfWorkload(streams, reverse = false) {
  const p = `iperf${streams}${reverse ? 'r' : ''}`;
  const name = `iperf3 ${streams} stream${streams > 1 ? 's' : ''}${reverse ? ' -R' : ''}`;
  const short = `iperf3 ${streams}×${reverse ? ' -R' : ''}`;
  return {
    id: p,
    title: `iperf3, ${streams} stream${streams > 1 ? 's' : ''}${reverse ? ', reverse (server sends)' : ''}`,
    target: 'iperf',
    metrics: [
      { id: `${p}_gbps`, label: name, unit: 'Gbit/s', better: 'higher' },
      { id: `${p}_cpu_s_per_gb`, label: `${short}: proxy CPU`, unit: 's/GB', better: 'lower', proxyOnly: true },
      { id: `${p}_mcpu_s_per_gb`, label: `${short}: whole-machine CPU`, unit: 's/GB', better: 'lower' },
      { id: `${p}_cpu_pct`, label: `${short}: proxy CPU`, unit: '% of a core', better: 'lower', proxyOnly: true, chart: false },
    ],
    async run(ctx, ep) {
      const t = ctx.opts.iperfSeconds;
      const args = ['-c', ep.host, '-p', String(ep.port), '-t', String(t), '-P', String(streams), '-J', '--connect-timeout', '5000'];
      if (reverse) args.push('-R');
      let lastErr = null;
      for (let attempt = 0; attempt < 2; attempt++) {
        const c0 = cpu(ep);
        const m0 = mcpu();
        const t0 = process.hrtime.bigint();
        const [cmd, argv] = client(ctx, ep, 'iperf3', args);
        const res = await procs.run(cmd, argv, { timeoutMs: (t + 30) * 1000 });
        const wall = Number(process.hrtime.bigint() - t0) / 1e9;
        const c1 = cpu(ep);
        const m1 = mcpu();
        const d = procs.machineCpuDelta(m0, m1);
        let j;
        try {
          j = JSON.parse(res.stdout);
        } catch {
          j = { error: `no JSON from iperf3 (exit ${res.code}): ${res.stderr.slice(-300)}` };
        }
        if (j.error || !j.end || !j.end.sum_received) {
          lastErr = new Error(`iperf3: ${j.error || 'no summary'}`);
          await procs.sleep(1000); // "the server is busy": let it finish the previous test
          continue;
        }
        const bytes = j.end.sum_received.bytes;
        const secs = j.end.sum_received.seconds || t;
        const cpuS = c1 - c0;
        return {
          values: {
            [`${p}_gbps`]: j.end.sum_received.bits_per_second / 1e9,
            [`${p}_cpu_s_per_gb`]: ep.pid ? cpuS / (bytes / 1e9) : null,
            [`${p}_mcpu_s_per_gb`]: d.busy / (bytes / 1e9),
            [`${p}_cpu_pct`]: ep.pid ? (cpuS / Math.max(wall, secs)) * 100 : null,
          },
          extra: { bytes, seconds: secs, proxyCpuSeconds: ep.pid ? cpuS : null, machineCpu: d, wallSeconds: wall, retransmits: j.end.sum_sent ? j.end.sum_sent.retransmits : null, attempt },
        };
      }
      throw lastErr;
    },
  };
}

/**
 * Set the CPU affinity of every thread of a process tree.
 * @param {number} pid
 * @param {string} cpus taskset list, e.g. "0" or "0-1"
 */
async function pinTree(pid, cpus) {
  for (const p of procs.processTree(pid)) {
    await procs.run('taskset', ['-a', '-p', '-c', cpus, String(p)], { timeoutMs: 5000 });
  }
}

/**
 * 1-byte ping-pong; `oneCpu`: client, echo server and proxy all on CPU 0, which takes the
 * scheduler's cross-CPU wake-ups (tens of µs on a VM, and a matter of luck) out of the number
 * and leaves the cost of the hops themselves.
 * @param {boolean} oneCpu
 * @returns {Workload}
 */
function pingpongWorkload(oneCpu) {
  const p = oneCpu ? 'pp1' : 'pp';
  const name = oneCpu ? 'ping-pong on 1 CPU' : 'ping-pong';
  return {
    id: oneCpu ? 'pingpong1cpu' : 'pingpong',
    title: oneCpu ? '1-byte ping-pong, client, server and proxy on CPU 0' : '1-byte ping-pong',
    target: 'echo',
    metrics: [
      { id: `${p}_mean_us`, label: `${name} mean`, unit: 'µs', better: 'lower' },
      { id: `${p}_added_mean_us`, label: `${name} mean: added over direct`, unit: 'µs', better: 'lower', proxyOnly: true, overDirect: `${p}_mean_us` },
      { id: `${p}_p50_us`, label: `${name} p50`, unit: 'µs', better: 'lower' },
      { id: `${p}_p99_us`, label: `${name} p99`, unit: 'µs', better: 'lower' },
      { id: `${p}_mcpu_us`, label: `${name}: whole-machine CPU per round trip`, unit: 'µs', better: 'lower' },
    ],
    async run(ctx, ep) {
      const { pingpongCount: n, pingpongWarmup: w } = ctx.opts;
      let [cmd, argv] = client(ctx, ep, ctx.tcpbench, ['pingpong', ep.host, String(ep.port), String(n), String(w)]);
      const all = `0-${ctx.nproc - 1}`;
      if (oneCpu) {
        await pinTree(ctx.echoPid, '0');
        if (ep.pid) await pinTree(ep.pid, '0');
        argv = ['-c', '0', cmd, ...argv];
        cmd = 'taskset';
      }
      try {
        const m0 = mcpu();
        const res = await procs.run(cmd, argv, { timeoutMs: 120000 });
        const m1 = mcpu();
        const d = procs.machineCpuDelta(m0, m1);
        const j = lastJson(res, 'tcpbench pingpong');
        // the warm-up round trips ran too: machine CPU is per round trip made
        const trips = n + w;
        return {
          values: { [`${p}_mean_us`]: j.mean_us, [`${p}_p50_us`]: j.p50_us, [`${p}_p99_us`]: j.p99_us, [`${p}_mcpu_us`]: (d.busy * 1e6) / trips },
          extra: { min_us: j.min_us, max_us: j.max_us, count: j.count, machineCpu: d },
        };
      } finally {
        if (oneCpu) await pinTree(ctx.echoPid, all);
      }
    },
  };
}

/**
 * @param {number} conc
 * @returns {Workload}
 */
function connrateWorkload(conc) {
  const p = `cr${conc}`;
  return {
    id: `connrate${conc}`,
    title: `connection rate, ${conc} client${conc > 1 ? 's' : ''}`,
    target: 'echo',
    freshPort: true,
    metrics: [
      { id: `${p}_rate`, label: `connections/s, ${conc} client${conc > 1 ? 's' : ''}`, unit: 'conn/s', better: 'higher' },
      { id: `${p}_cpu_us`, label: `proxy CPU per connection, ${conc} client${conc > 1 ? 's' : ''}`, unit: 'µs', better: 'lower', proxyOnly: true },
      { id: `${p}_mcpu_us`, label: `whole-machine CPU per connection, ${conc} client${conc > 1 ? 's' : ''}`, unit: 'µs', better: 'lower' },
    ],
    async run(ctx, ep) {
      const c0 = cpu(ep);
      const m0 = mcpu();
      const [cmd, argv] = client(ctx, ep, ctx.tcpbench, ['connrate', ep.host, String(ep.port), String(conc), String(ctx.opts.connSeconds)]);
      const j = lastJson(await procs.run(cmd, argv, { timeoutMs: (ctx.opts.connSeconds + 60) * 1000 }), 'tcpbench connrate');
      await procs.sleep(300); // let the proxy finish the last closes (socat: reap its children)
      const c1 = cpu(ep);
      const m1 = mcpu();
      const d = procs.machineCpuDelta(m0, m1);
      if (!j.conns) throw new Error(`no connection completed (${j.errors} errors, first: ${j.first_error})`);
      return {
        values: { [`${p}_rate`]: j.rate, [`${p}_cpu_us`]: ep.pid ? ((c1 - c0) * 1e6) / j.conns : null, [`${p}_mcpu_us`]: (d.busy * 1e6) / j.conns },
        extra: { conns: j.conns, errors: j.errors, firstError: j.first_error || null, machineCpu: d },
      };
    },
  };
}

/** @type {Workload} */
const pgbench = {
  id: 'pgbench',
  title: 'pgbench -S -c4 -j2',
  target: 'pg',
  metrics: [
    { id: 'pg_tps', label: 'pgbench -S -c4 -j2', unit: 'TPS', better: 'higher' },
    { id: 'pg_cpu_us_per_tx', label: 'pgbench: proxy CPU per transaction', unit: 'µs', better: 'lower', proxyOnly: true },
    { id: 'pg_mcpu_us_per_tx', label: 'pgbench: whole-machine CPU per transaction', unit: 'µs', better: 'lower' },
  ],
  async run(ctx, ep) {
    const bin = /** @type {string} */ (ctx.pgBin);
    const c0 = cpu(ep);
    const m0 = mcpu();
    const args = ['-S', '-c', '4', '-j', '2', '-T', String(ctx.opts.pgSeconds), '-n', '-h', ep.host, '-p', String(ep.port), '-U', 'bench', 'postgres'];
    const [cmd, argv] = client(ctx, ep, `${bin}/pgbench`, args);
    const res = await procs.run(cmd, argv, { timeoutMs: (ctx.opts.pgSeconds + 60) * 1000 });
    const c1 = cpu(ep);
    const m1 = mcpu();
    const d = procs.machineCpuDelta(m0, m1);
    const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(res.stdout);
    const txs = /number of transactions actually processed: (\d+)/.exec(res.stdout);
    const lat = /latency average = ([\d.]+) ms/.exec(res.stdout);
    if (res.code !== 0 || !tps || !txs) throw new Error(`pgbench failed (exit ${res.code}): ${(res.stderr || res.stdout).trim().slice(-400)}`);
    const n = Number(txs[1]);
    return {
      values: { pg_tps: Number(tps[1]), pg_cpu_us_per_tx: ep.pid && n ? ((c1 - c0) * 1e6) / n : null, pg_mcpu_us_per_tx: n ? (d.busy * 1e6) / n : null },
      extra: { transactions: n, latencyAvgMs: lat ? Number(lat[1]) : null, machineCpu: d },
    };
  },
};

/** @type {Workload} */
const idle = {
  id: 'idle',
  title: 'idle connections',
  target: 'echo',
  metrics: [
    { id: 'idle_held', label: 'idle connections held', unit: 'conns', better: 'higher' },
    { id: 'idle_fds_per_conn', label: 'idle: proxy fds per connection', unit: 'fds', better: 'lower', proxyOnly: true },
    { id: 'idle_kib_per_conn', label: 'idle: proxy memory (PSS) per connection', unit: 'KiB', better: 'lower', proxyOnly: true },
  ],
  async run(ctx, ep) {
    const n = ctx.opts.idleConns;
    const before = ep.pid ? procs.treeFootprint(ep.pid) : null;
    const [cmd, argv] = client(ctx, ep, ctx.tcpbench, ['idle', ep.host, String(ep.port), String(n), '64', '5000']);
    const c = procs.start('tcpbench idle', cmd, argv, { stdin: 'pipe' });
    try {
      const openedLine = await c.out.waitFor((l) => l.startsWith('{"ok"'), 60000 + n * 20, 'the idle client to open its connections');
      const opened = JSON.parse(openedLine);
      await procs.sleep(1000); // let the proxy settle (lazy allocations, socat children)
      const after = ep.pid ? procs.treeFootprint(ep.pid) : null;
      const proxyAlive = ep.proc ? ep.proc.exitInfo === null : null;
      /** @type {any} */ (c.child.stdin).end('check\n');
      const heldLine = await c.out.waitFor((l) => l.startsWith('{"alive"'), 30000, 'the idle client\'s final check');
      const held = JSON.parse(heldLine);
      await Promise.race([c.exited, procs.timeout(10000)]);
      const ok = opened.ok;
      return {
        values: {
          idle_held: held.alive,
          idle_fds_per_conn: before && after && ok ? (after.fds - before.fds) / ok : null,
          idle_kib_per_conn: before && after && ok ? (after.pssKiB - before.pssKiB) / ok : null,
        },
        extra: {
          asked: n,
          opened: ok,
          failed: opened.failed,
          skipped: opened.skipped,
          errors: opened.errors,
          openSeconds: opened.seconds,
          stillOpenAtEnd: held,
          proxyBefore: before,
          proxyAfter: after,
          proxyAlive,
          rssKiBPerConn: before && after && ok ? (after.rssKiB - before.rssKiB) / ok : null,
        },
      };
    } finally {
      await procs.stop(c, { graceMs: 2000 });
    }
  },
};

/**
 * The environment systemd-socket-activate gives the command it execs (it passes on only these,
 * plus LISTEN_*): bare node is timed in the same, so that variables such as NODE_OPTIONS or
 * NODE_EXTRA_CA_CERTS (certificates parsed at start-up) weigh on neither side.
 * @returns {NodeJS.ProcessEnv}
 */
function activatedEnv() {
  /** @type {NodeJS.ProcessEnv} */
  const env = {};
  for (const k of ['PATH', 'HOME', 'TERM']) if (process.env[k] !== undefined) env[k] = process.env[k];
  return env;
}

/** Median of a non-empty list. @param {number[]} xs */
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * Cold start: a fresh systemd-socket-activate listens; the client connects, sends 1 byte and
 * waits for the echo (tcpbench first-echo, timed from just before connect()): the peer's exec,
 * start-up, readiness and first forwarded round trip, with the target already up. Each cold
 * start is followed by a bare `node -e 0` (fork to exit, tcpbench run-time), the floor of any
 * Node start-up on this machine at that moment.
 * @type {Workload}
 */
const coldstart = {
  id: 'coldstart',
  title: 'cold start: socket-activated first round trip, target up',
  target: 'echo',
  appliesTo: isActivated, // nsproxy's variants, socket-proxyd, the Node proxy
  startsPeer: true,
  metrics: [
    { id: 'cold_rt_ms', label: 'cold start: first round trip', unit: 'ms', better: 'lower', proxyOnly: true },
    { id: 'cold_node_ms', label: 'cold start: bare node -e 0 beside it', unit: 'ms', better: 'lower', proxyOnly: true, chart: false, noRatio: true },
    { id: 'cold_over_node_ms', label: 'cold start: first round trip − bare node', unit: 'ms', better: 'lower', proxyOnly: true, chart: false, noRatio: true },
  ],
  async run(ctx, _ep, peer) {
    const act = /** @type {NonNullable<import('./peers').Peer['activation']>} */ (peer.activation)(ctx.peerCtx, PORTS.echo);
    /** @type {number[]} */
    const rt = [];
    /** @type {number[]} */
    const floor = [];
    for (let i = 0; i < ctx.opts.coldStarts; i++) {
      const port = ctx.peerCtx.nextPort();
      const proc = await listenActivated(act, port);
      try {
        const res = await procs.run(ctx.tcpbench, ['first-echo', '127.0.0.1', String(port), '15000'], { timeoutMs: 20000 });
        if (res.code !== 0) throw new Error(`${act.name}: ${res.stderr.trim()}\n${proc.err.tail(5)}\n${proc.out.tail(5)}`);
        rt.push(lastJson(res, 'tcpbench first-echo').us / 1000);
      } finally {
        await procs.stop(proc);
      }
      const bare = lastJson(await procs.run(ctx.tcpbench, ['run-time', process.execPath, '-e', '0'], { env: activatedEnv(), timeoutMs: 20000 }), 'tcpbench run-time node -e 0');
      floor.push(bare.us / 1000);
    }
    return {
      values: { cold_rt_ms: median(rt), cold_node_ms: median(floor), cold_over_node_ms: median(rt) - median(floor) },
      extra: { firstRoundTripMs: rt, bareNodeMs: floor },
    };
  },
};

/**
 * Idle footprint: RSS and threads of the peer's process tree, started and past its first
 * connection, after it idled a moment; a bare idle node started at the same time is read beside it.
 * @type {Workload}
 */
const idlerss = {
  id: 'idlerss',
  title: 'idle footprint after the first connection, bare idle node beside it',
  target: 'echo',
  appliesTo: (peer) => peer.id !== 'direct',
  metrics: [
    { id: 'idle_rss_mib', label: 'idle: proxy RSS', unit: 'MiB', better: 'lower', proxyOnly: true },
    { id: 'idle_rss_node_mib', label: 'idle: bare idle node RSS beside it', unit: 'MiB', better: 'lower', proxyOnly: true, chart: false, noRatio: true },
    { id: 'idle_rss_over_node_mib', label: 'idle: proxy RSS − bare idle node', unit: 'MiB', better: 'lower', proxyOnly: true, chart: false, noRatio: true },
    { id: 'idle_threads', label: 'idle: proxy threads', unit: 'threads', better: 'lower', proxyOnly: true, chart: false },
  ],
  async run(ctx, ep) {
    const bare = procs.start('bare idle node', process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { env: activatedEnv() });
    try {
      await procs.sleep(ctx.opts.settleMs);
      if (bare.exitInfo) throw new Error(`bare node exited: ${bare.err.tail()}`);
      const proxy = procs.treeFootprint(/** @type {number} */ (ep.pid));
      const node = procs.treeFootprint(bare.pid);
      const threads = procs.treeThreads(/** @type {number} */ (ep.pid));
      return {
        values: { idle_rss_mib: proxy.rssKiB / 1024, idle_rss_node_mib: node.rssKiB / 1024, idle_rss_over_node_mib: (proxy.rssKiB - node.rssKiB) / 1024, idle_threads: threads },
        extra: { proxy, bareNode: node, bareNodeThreads: procs.treeThreads(bare.pid) },
      };
    } finally {
      await procs.stop(bare);
    }
  },
};

/** @type {Record<string, Workload>} */
const WORKLOADS = {
  iperf1: iperfWorkload(1),
  iperf4: iperfWorkload(4),
  iperf1r: iperfWorkload(1, true),
  pingpong: pingpongWorkload(false),
  pingpong1cpu: pingpongWorkload(true),
  connrate1: connrateWorkload(1),
  connrate16: connrateWorkload(16),
  pgbench,
  idle,
  coldstart,
  idlerss,
};
const WORKLOAD_ORDER = ['iperf1', 'iperf4', 'iperf1r', 'pingpong', 'pingpong1cpu', 'connrate1', 'connrate16', 'pgbench', 'idle', 'coldstart', 'idlerss'];
/** The default selection: iperf1r (the download direction) only when asked for. */
const DEFAULT_WORKLOADS = WORKLOAD_ORDER.filter((w) => w !== 'iperf1r');

/** @param {'iperf'|'echo'|'pg'} t */
const targetPort = (t) => PORTS[t];

let freshRuns = 0;
/**
 * The server port for one run: the workload's, or for a connection-rate run the next of the echo
 * server's fresh ports (see ECHO_FRESH).
 * @param {Workload} w
 */
const runPort = (w) => (w.freshPort ? ECHO_FRESH.first + (freshRuns++ % ECHO_FRESH.count) : PORTS[w.target]);

module.exports = { WORKLOADS, WORKLOAD_ORDER, DEFAULT_WORKLOADS, targetPort, runPort };
