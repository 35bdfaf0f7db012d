#!/usr/bin/env node
// @ts-check
// bench/run.js — nsproxy's benchmark harness (`npm run bench`, as root).
//
// Sets up a network namespace with servers on 127.0.0.1 inside it (iperf3, an echo server,
// PostgreSQL), then runs every workload through every path, side by side in the same run and
// interleaved (repetition > workload > peer, the peers' order rotating from one repetition to
// the next), each proxy started fresh for each run:
//   direct         the client inside the namespace, no proxy
//   nsproxy        dist/main.js --netns NS --to 127.0.0.1:PORT, under systemd-socket-activate, in
//                  variants: the same build with extra options (nsproxy-NAME, --variants; by
//                  default one per --engine) and another checkout's build (nsproxy-baseline)
//   socket-proxyd  systemd-socket-proxyd under systemd-socket-activate + nsenter, SIGPIPE ignored
//   socat          socat TCP-LISTEN,fork + EXEC nsenter socat (a process per connection)
//   node           a plain Node net pipe proxy (bench/peers/node-proxy.js), socket-activated
// Writes a markdown table to stdout, JSON to bench/results/<time>.json and latest.json, and the
// ratio chart to bench/results/latest.svg (latest-quick.* for --quick). Progress goes to stderr.
// See bench/README.md.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const procs = require('./lib/procs');
const env = require('./lib/env');
const { makePeers, portAllocator } = require('./lib/peers');
const { DEFAULT_VARIANTS, parseVariants, baselineVariant, isUnknownOption } = require('./lib/variants');
const { WORKLOADS, WORKLOAD_ORDER, DEFAULT_WORKLOADS, targetPort, runPort } = require('./lib/workloads');
const report = require('./lib/report');

const USAGE = `usage: node bench/run.js [options]            (as root; npm run bench -- [options])

  --quick              smoke run in about a minute: 1 repetition, tiny durations,
                       200 idle connections (numbers not meaningful; proves the harness works)
  --reps N             repetitions (default 3)
  --peers LIST         comma-separated, from: direct, the nsproxy variants' peers (nsproxy,
                       nsproxy-NAME), socket-proxyd, socat, node (default all)
  --variants TABLE     the nsproxy peers, 'NAME=OPTIONS;NAME=OPTIONS': each runs this build
                       with OPTIONS (extra nsproxy words, split on blanks; may be empty) as
                       peer nsproxy-NAME, labelled "nsproxy (NAME)"; NAME auto is peer nsproxy
                       (default '${DEFAULT_VARIANTS}';
                       those of the default table that this build rejects as unknown options
                       are left out with a note)
  --baseline DIR       one more peer, nsproxy-baseline ("nsproxy (baseline)"): the nsproxy built
                       in the checkout DIR (DIR/dist/main.js, DIR/build/Release/nsproxy.node),
                       e.g. a clone of an older commit: before/after in one interleaved run
  --workloads LIST     comma-separated, from: ${WORKLOAD_ORDER.join(',')}
                       (default ${DEFAULT_WORKLOADS.join(',')}; iperf1r is iperf3 -R)
  --skip-pgbench       leave out the PostgreSQL workload (no server is started)
  --iperf-seconds S    iperf3 -t (default 3)
  --pingpong N         round trips per ping-pong run (default 20000, plus N/10 warm-up)
  --conn-seconds S     duration of each connection-rate run (default 2)
  --pg-seconds S       pgbench -T (default 5)
  --idle N             idle connections to open (default 5000; the hard fd limit here is
                       ${safeUlimit()}: socket-proxyd needs 6 fds per connection)
  --cold-starts N      cold starts per coldstart run, each with a bare node -e 0 timed
                       after it (default 10)
  --threads N          nsproxy --threads (default 1, as single-threaded as socket-proxyd;
                       a variant's own --threads wins)
  --retry-busy PCT     run a measurement again (at most twice) when processes other than
                       the bench's took more than PCT % of all CPUs meanwhile (default 25;
                       0: never; --quick: never)
  --out DIR            where results go (default bench/results)
  --json-only          no markdown on stdout (the JSON path is still printed on stderr)
  -h, --help

Needs: iproute2, util-linux (nsenter, setpriv), systemd (systemd-socket-activate,
systemd-socket-proxyd), iperf3, socat, gcc (cc), postgresql-15 (server + pgbench).`;

function safeUlimit() {
  try {
    return require('node:child_process').execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
}

/** With --quick, the nsproxy peers after the first run only these (one of each kind of row). */
const QUICK_EXTRA_WORKLOADS = ['iperf1', 'pingpong', 'connrate16', 'pgbench'];

/** @param {string[]} argv */
function parseArgs(argv) {
  const o = {
    quick: false,
    reps: 3,
    /** @type {string[]} */
    peers: [],
    /** @type {import('./lib/variants').Variant[]} */
    variants: [],
    /** @type {string | null} */
    baseline: null,
    workloads: [...DEFAULT_WORKLOADS],
    skipPgbench: false,
    iperfSeconds: 3,
    pingpongCount: 20000,
    connSeconds: 2,
    pgSeconds: 5,
    idleConns: 5000,
    coldStarts: 10,
    threads: 1,
    out: path.join(__dirname, 'results'),
    jsonOnly: false,
    retryBusy: 25,
  };
  /** @type {Set<string>} */
  const given = new Set();
  let peersArg = '';
  let variantsArg = DEFAULT_VARIANTS;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const val = () => {
      const v = inline !== undefined ? inline : argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const num = (/** @type {number} */ min) => {
      const v = Number(val());
      if (!Number.isFinite(v) || v < min) throw new Error(`${flag}: give a number >= ${min}`);
      return v;
    };
    /** @param {string[]} allowed */
    const list = (allowed) => {
      const v = val()
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      for (const x of v) if (!allowed.includes(x)) throw new Error(`${flag}: unknown '${x}'; choose from ${allowed.join(',')}`);
      return allowed.filter((x) => v.includes(x));
    };
    given.add(flag);
    switch (flag) {
      case '--quick': o.quick = true; break;
      case '--reps': o.reps = Math.round(num(1)); break;
      case '--peers': peersArg = val(); break;
      case '--variants': variantsArg = val(); break;
      case '--baseline': o.baseline = path.resolve(val()); break;
      case '--workloads': o.workloads = list(WORKLOAD_ORDER); break;
      case '--skip-pgbench': o.skipPgbench = true; break;
      case '--iperf-seconds': o.iperfSeconds = Math.round(num(1)); break;
      case '--pingpong': o.pingpongCount = Math.round(num(10)); break;
      case '--conn-seconds': o.connSeconds = num(0.1); break;
      case '--pg-seconds': o.pgSeconds = Math.round(num(1)); break;
      case '--idle': o.idleConns = Math.round(num(1)); break;
      case '--cold-starts': o.coldStarts = Math.round(num(1)); break;
      case '--threads': o.threads = Math.round(num(1)); break;
      case '--out': o.out = path.resolve(val()); break;
      case '--json-only': o.jsonOnly = true; break;
      case '--retry-busy': o.retryBusy = num(0); break;
      case '-h':
      case '--help':
        process.stdout.write(USAGE + '\n');
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a}\n${USAGE}`);
    }
  }
  if (o.quick) {
    if (!given.has('--reps')) o.reps = 1;
    if (!given.has('--iperf-seconds')) o.iperfSeconds = 1;
    if (!given.has('--pingpong')) o.pingpongCount = 2000;
    if (!given.has('--conn-seconds')) o.connSeconds = 0.5;
    if (!given.has('--pg-seconds')) o.pgSeconds = 1;
    if (!given.has('--idle')) o.idleConns = 200;
    if (!given.has('--cold-starts')) o.coldStarts = 2;
    if (!given.has('--retry-busy')) o.retryBusy = 0;
  }
  if (o.skipPgbench) o.workloads = o.workloads.filter((w) => w !== 'pgbench');
  o.variants = parseVariants(variantsArg, !given.has('--variants'));
  if (o.baseline) o.variants.push(baselineVariant(o.baseline));
  const all = makePeers(o.variants).order;
  o.peers = all;
  if (peersArg) {
    const want = peersArg.split(',').map((x) => x.trim()).filter(Boolean);
    for (const x of want) {
      if (x === 'nsproxy-baseline' && !o.baseline) throw new Error('--peers: nsproxy-baseline needs --baseline DIR');
      if (!all.includes(x)) throw new Error(`--peers: unknown '${x}'; choose from ${all.join(',')} (the nsproxy peers come from --variants)`);
    }
    // --baseline asks for its peer whatever --peers says
    o.peers = all.filter((x) => want.includes(x) || x === 'nsproxy-baseline');
  }
  if (!o.peers.length || !o.workloads.length) throw new Error('nothing to run: no peers or no workloads selected');
  return o;
}

const T0 = Date.now();
/** @param {string} msg */
function say(msg) {
  const s = ((Date.now() - T0) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[${s}s] ${msg}\n`);
}

const loadavg = () => os.loadavg().map((x) => Number(x.toFixed(2)));

/** Jiffies of all CPUs from /proc/stat: [busy, total]. */
function cpuJiffies() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = f[3] + (f[4] || 0);
  return [total - idle, total];
}

/** How busy the machine is right now: % of all CPUs over `ms`, from /proc/stat. @param {number} ms */
async function cpuBusyPct(ms) {
  const [b0, t0] = cpuJiffies();
  await procs.sleep(ms);
  const [b1, t1] = cpuJiffies();
  return t1 > t0 ? Math.round(((b1 - b0) / (t1 - t0)) * 1000) / 10 : 0;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const PEERS = makePeers(o.variants).peers;
  const nsPeers = o.peers.map((id) => PEERS[id]).filter((p) => p.variant);
  const builds = new Set(nsPeers.map((p) => /** @type {import('./lib/variants').Variant} */ (p.variant).build));
  env.checkTools({ peers: o.peers, workloads: o.workloads, builds, baselineDir: o.baseline });
  procs.installExitHandlers();

  const startedAt = new Date();
  const loadBefore = loadavg();
  const busyBefore = await cpuBusyPct(o.quick ? 300 : 1000);
  const machine = env.machineFacts();
  say(`nsproxy bench${o.quick ? ' --quick' : ''}: ${o.reps} rep(s), peers ${o.peers.join(',')}; workloads ${o.workloads.join(',')}; ${machine.nproc} CPUs, loadavg ${loadBefore.join(' ')}, CPUs ${busyBefore}% busy`);

  const tmp = env.makeTempDir();
  const tcpbench = env.compileHelper(tmp);
  /** @type {Record<string, string>} */
  const nsproxyMains = {};
  if (builds.has('current')) nsproxyMains.current = env.snapshotNsproxy(tmp);
  if (builds.has('baseline') && o.baseline) nsproxyMains.baseline = env.snapshotNsproxy(tmp, o.baseline, 'nsproxy-baseline');
  const baseline = builds.has('baseline') && o.baseline ? env.baselineFacts(o.baseline) : null;
  const ns = env.makeNetns();
  say(`namespace ${ns.name}, temp dir ${tmp}`);
  const workloads = o.workloads.map((id) => WORKLOADS[id]);
  const need = new Set(workloads.map((w) => w.target));
  /** @type {import('./lib/env').World} */
  const world = { tmp, tcpbench, ns, servers: [], pgBin: env.findPgBin(), pgUser: '' };
  await env.startServers(world, { iperf: need.has('iperf'), echo: need.has('echo'), pg: need.has('pg') }, say);
  say('servers up inside the namespace');

  const opts = {
    iperfSeconds: o.iperfSeconds,
    pingpongCount: o.pingpongCount,
    pingpongWarmup: Math.max(100, Math.round(o.pingpongCount / 10)),
    connSeconds: o.connSeconds,
    pgSeconds: o.pgSeconds,
    idleConns: o.idleConns,
    coldStarts: o.coldStarts,
    settleMs: o.quick ? 500 : 2000,
  };
  const echo = world.servers.find((p) => p.name === 'echo server');
  const peerCtx = { ns, connectionsMax: Math.max(4096, o.idleConns + 64), threads: o.threads, nsproxyMains, nextPort: portAllocator() };
  const runCtx = { ns, tcpbench, pgBin: world.pgBin, opts, echoPid: echo ? echo.pid : 0, nproc: machine.nproc, peerCtx };

  // Every nsproxy peer is started once before anything is measured: one that cannot start is
  // left out of the run with a note, rather than failing each of its runs.
  const leftOut = await preflight(nsPeers, peerCtx, targetPort(need.has('echo') ? 'echo' : workloads[0].target));
  for (const l of leftOut) say(`${l.label} left out: ${l.tolerated ? 'this build does not know its options' : 'it did not start'}: ${oneLine(l.error)}`);
  const peers = o.peers.filter((id) => !leftOut.some((l) => l.peer === id));
  // --quick: the nsproxy peers after the first run a subset of the workloads (the run stays short)
  const firstNs = peers.find((id) => PEERS[id].variant);
  const quickExtras = o.quick ? peers.filter((id) => PEERS[id].variant && id !== firstNs) : [];
  /** @param {import('./lib/workloads').Workload} w */
  const peersOf = (w) =>
    peers.filter((id) => (!w.appliesTo || w.appliesTo(PEERS[id])) && !(quickExtras.includes(id) && !QUICK_EXTRA_WORKLOADS.includes(w.id)));

  /** @type {import('./lib/report').RunRecord[]} */
  const runs = [];
  for (let rep = 1; rep <= o.reps; rep++) {
    // the peers take turns at going first, so that none always follows the same one
    const order = peers.map((_, i) => peers[(i + rep - 1) % peers.length]);
    for (const w of workloads) {
      const applies = peersOf(w);
      for (const pid of order) {
        if (!applies.includes(pid)) continue;
        const peer = PEERS[pid];
        const tag = `rep ${rep}/${o.reps} ${w.id} × ${peer.id}`;
        /** @type {import('./lib/report').RunRecord} */
        let rec;
        for (let attempt = 1; ; attempt++) {
          // how much CPU did processes other than ours (and the kernel's own threads) take?
          const [b0, t0] = cpuJiffies();
          const own0 = procs.treeCpuSeconds(process.pid);
          rec = await runOnce(peer, w, rep, peerCtx, runCtx);
          const [b1, t1] = cpuJiffies();
          const own1 = procs.treeCpuSeconds(process.pid);
          const allSecs = (t1 - t0) / procs.CLK_TCK;
          rec.otherCpuPct = allSecs > 0 ? Math.max(0, Math.round((((b1 - b0) / procs.CLK_TCK - (own1 - own0)) / allSecs) * 1000) / 10) : 0;
          rec.attempts = attempt;
          if (!o.retryBusy || !rec.ok || rec.otherCpuPct <= o.retryBusy || attempt > 2) break;
          say(`${tag}: other processes took ${rec.otherCpuPct}% of the CPUs meanwhile; running it again`);
          await procs.sleep(3000);
        }
        runs.push(rec);
        say(
          `${tag}: ${rec.ok ? summarize(w, rec) : 'FAILED: ' + rec.error}${rec.proxyExit ? ` [proxy ${rec.proxyExit} during the run]` : ''}` +
            (rec.otherCpuPct && rec.otherCpuPct > 5 ? ` [others: ${rec.otherCpuPct}% CPU]` : ''),
        );
      }
    }
  }

  await env.stopServers(world);
  const loadAfter = loadavg();
  const busyAfter = await cpuBusyPct(o.quick ? 300 : 1000);
  say(`done; loadavg ${loadAfter.join(' ')}, CPUs ${busyAfter}% busy`);

  addOverDirect(workloads, runs);
  const agg = report.aggregate(workloads, peers, runs);
  const notes = buildNotes(o, runs, workloads, busyBefore, busyAfter, machine, leftOut, quickExtras.map((id) => PEERS[id].label));
  /** @type {Record<string, string>} */
  const peerLabels = {};
  for (const p of peers) peerLabels[p] = PEERS[p].label;
  const ratios = report.ratioColumns(peers.map((id) => PEERS[id]));
  const stamp = startedAt.toISOString().replace(/\.\d+Z$/, 'Z');
  const meta = {
    startedAt: stamp,
    durationSeconds: Math.round((Date.now() - T0) / 1000),
    quick: o.quick,
    options: { ...o, out: undefined, variants: undefined, ...opts, connectionsMax: peerCtx.connectionsMax },
    machine,
    baseline,
    loadBefore,
    loadAfter,
    cpuBusyPctBefore: busyBefore,
    cpuBusyPctAfter: busyAfter,
    otherCpuPctMedian: (report.stat(runs.map((r) => r.otherCpuPct || 0)) || { median: 0 }).median,
    otherCpuPctMax: (report.stat(runs.map((r) => r.otherCpuPct || 0)) || { max: 0 }).max,
    namespace: ns.name,
    pgUser: world.pgUser || null,
  };
  const nsproxyPeers = peers.filter((id) => PEERS[id].variant).map((id) => describeVariant(/** @type {import('./lib/variants').Variant} */ (PEERS[id].variant), machine.nsproxyCommit, baseline));
  const md = report.markdown({ workloads, peers, peerLabels, agg, ratios, nsproxyPeers, meta, notes });
  const json = {
    meta,
    peers: peers.map((p) => ({ id: p, label: PEERS[p].label, how: PEERS[p].how, variant: PEERS[p].variant || null })),
    leftOut,
    workloads: workloads.map((w) => ({ id: w.id, title: w.title, metrics: w.metrics, peers: peersOf(w) })),
    summary: agg,
    ratios: ratios.map((c) => ({
      ...c,
      byMetric: Object.fromEntries(workloads.flatMap((w) => w.metrics.map((m) => [m.id, report.ratio(m, agg[m.id], c.a, c.b)]))),
    })),
    runs,
    notes,
    markdown: md,
  };
  fs.mkdirSync(o.out, { recursive: true });
  const file = path.join(o.out, `${stamp.replace(/:/g, '-')}${o.quick ? '-quick' : ''}.json`);
  fs.writeFileSync(file, JSON.stringify(json, null, 2) + '\n');
  // a --quick run does not replace the latest real numbers
  const latest = o.quick ? 'latest-quick' : 'latest';
  fs.writeFileSync(path.join(o.out, `${latest}.json`), JSON.stringify(json, null, 2) + '\n');
  const hasRatio = ratios.length > 0;
  if (hasRatio) fs.writeFileSync(path.join(o.out, `${latest}.svg`), report.svg({ workloads, agg, ratios, meta }));
  const rel = (/** @type {string} */ f) => {
    const r = path.relative(process.cwd(), path.join(o.out, f));
    return r.startsWith("..") ? path.join(o.out, f) : r;
  };
  say(`wrote ${rel(path.basename(file))}, ${rel(`${latest}.json`)}${hasRatio ? ', ' + rel(`${latest}.svg`) : ''}`);
  if (!o.jsonOnly) process.stdout.write(md + '\n');
  const failed = runs.filter((r) => !r.ok).length;
  const brokenPeers = leftOut.filter((l) => !l.tolerated).length;
  if (failed || brokenPeers) {
    say(`${failed} of ${runs.length} runs failed${brokenPeers ? `, ${brokenPeers} nsproxy peer${brokenPeers > 1 ? 's' : ''} did not start` : ''} (see the notes)`);
    process.exitCode = 3;
  }
}

/**
 * Fill in the metrics that are a peer's value minus direct's in the same repetition (e.g. the
 * round-trip time a proxy adds): no value where direct did not run.
 * @param {import('./lib/workloads').Workload[]} workloads
 * @param {import('./lib/report').RunRecord[]} runs
 */
function addOverDirect(workloads, runs) {
  for (const w of workloads) {
    for (const m of w.metrics) {
      const from = m.overDirect;
      if (!from) continue;
      for (const r of runs) {
        if (r.workload !== w.id || r.peer === 'direct' || !r.ok || !r.values) continue;
        const d = runs.find((x) => x.workload === w.id && x.peer === 'direct' && x.rep === r.rep && x.ok);
        const a = r.values[from];
        const b = d && d.values ? d.values[from] : null;
        r.values[m.id] = typeof a === 'number' && typeof b === 'number' ? a - b : null;
      }
    }
  }
}

/**
 * @typedef {object} LeftOut an nsproxy peer that did not start in the pre-flight
 * @property {string} peer
 * @property {string} label
 * @property {string[]} options
 * @property {string} error
 * @property {string} output its last output lines
 * @property {number | null} exitCode
 * @property {boolean} unknownOption nsproxy rejected an option as unknown (exit 2)
 * @property {boolean} tolerated a default-table variant this build is too old for: not a failure
 */

/**
 * Start and stop each nsproxy peer once (to the given target port).
 * @param {import('./lib/peers').Peer[]} nsPeers
 * @param {import('./lib/peers').PeerCtx} peerCtx
 * @param {number} port
 * @returns {Promise<LeftOut[]>} the peers that did not start
 */
async function preflight(nsPeers, peerCtx, port) {
  /** @type {LeftOut[]} */
  const out = [];
  for (const peer of nsPeers) {
    const v = /** @type {import('./lib/variants').Variant} */ (peer.variant);
    try {
      const ep = await peer.start(peerCtx, port);
      if (ep.proc) await procs.stop(ep.proc);
    } catch (err) {
      const e = /** @type {{message?: string, exitCode?: number | null, output?: string}} */ (err);
      const unknownOption = isUnknownOption(e);
      out.push({
        peer: peer.id,
        label: peer.label,
        options: v.options,
        error: String(e.message || err),
        output: e.output || '',
        exitCode: e.exitCode ?? null,
        unknownOption,
        tolerated: unknownOption && v.fromDefaultTable,
      });
    }
  }
  return out;
}

/** @param {string} s */
const oneLine = (s) => s.split('\n').map((l) => l.trim()).filter(Boolean).join(' / ');

/**
 * One line for the report: which build an nsproxy peer runs, with which options.
 * @param {import('./lib/variants').Variant} v
 * @param {string | null} commit this tree's
 * @param {{dir: string, commit: string | null} | null} baseline
 */
function describeVariant(v, commit, baseline) {
  const opts = v.options.length ? `\`${v.options.join(' ')}\`` : 'no extra option';
  if (v.build === 'baseline') return `${v.label} = ${baseline ? `${baseline.dir} at ${baseline.commit || '(not a git checkout)'}` : v.dir}, ${opts}`;
  return `${v.label} = this build (${commit || '?'}), ${opts}`;
}

/**
 * One workload through one peer: a fresh proxy, the workload, the proxy stopped.
 * @param {import('./lib/peers').Peer} peer
 * @param {import('./lib/workloads').Workload} w
 * @param {number} rep
 * @param {import('./lib/peers').PeerCtx} peerCtx
 * @param {import('./lib/workloads').RunCtx} runCtx
 * @returns {Promise<import('./lib/report').RunRecord>}
 */
async function runOnce(peer, w, rep, peerCtx, runCtx) {
  /** @type {import('./lib/report').RunRecord} */
  const rec = { rep, workload: w.id, peer: peer.id, ok: false };
  /** @type {import('./lib/peers').Endpoint | null} */
  let ep = null;
  try {
    if (!w.startsPeer) ep = await peer.start(peerCtx, runPort(w));
    const r = await w.run(runCtx, /** @type {import('./lib/peers').Endpoint} */ (ep), peer);
    rec.values = r.values;
    rec.extra = r.extra;
    rec.ok = true;
  } catch (err) {
    rec.error = String((err && /** @type {Error} */ (err).message) || err);
  }
  if (ep && ep.proc) {
    if (ep.proc.exitInfo) {
      const e = ep.proc.exitInfo;
      rec.proxyExit = e.signal ? `killed by ${e.signal}` : `exit code ${e.code}`;
      rec.proxyOutput = (ep.proc.err.tail(5) + '\n' + ep.proc.out.tail(5)).trim();
    }
    await procs.stop(ep.proc);
  }
  return rec;
}

/**
 * One progress line per run.
 * @param {import('./lib/workloads').Workload} w
 * @param {import('./lib/report').RunRecord} rec
 */
function summarize(w, rec) {
  const v = rec.values || {};
  return w.metrics
    .filter((m) => v[m.id] !== null && v[m.id] !== undefined)
    .map((m) => `${report.fmt(/** @type {number} */ (v[m.id]))} ${m.unit}`)
    .join(', ');
}

/**
 * What a reader must know to trust the table.
 * @param {ReturnType<typeof parseArgs>} o
 * @param {import('./lib/report').RunRecord[]} runs
 * @param {import('./lib/workloads').Workload[]} workloads
 * @param {number} busyBefore % of all CPUs busy just before the run
 * @param {number} busyAfter and just after it
 * @param {any} machine
 * @param {LeftOut[]} leftOut nsproxy peers that did not start
 * @param {string[]} quickExtras labels of the nsproxy peers that ran --quick's subset
 */
function buildNotes(o, runs, workloads, busyBefore, busyAfter, machine, leftOut, quickExtras) {
  const notes = [];
  if (o.quick) notes.push('--quick: 1 repetition, tiny durations and 200 idle connections; this proves the harness runs, the numbers mean little.');
  if (quickExtras.length) notes.push(`--quick: ${quickExtras.join(', ')} ran only ${QUICK_EXTRA_WORKLOADS.join(', ')} (a full run gives every nsproxy peer every workload).`);
  for (const l of leftOut) {
    const opts = l.options.length ? `\`${l.options.join(' ')}\`` : 'no extra option';
    if (l.tolerated) {
      notes.push(`${l.label} was left out: this build of nsproxy does not know its options (${opts}): "${(l.output.split('\n').find((x) => /unknown/i.test(x)) || '').trim()}" (exit 2). The default variant table has it for builds that do.`);
    } else {
      notes.push(`${l.label} was left out: FAILED: it did not start (${opts}): ${oneLine(l.error)}`);
    }
  }
  if (o.skipPgbench) notes.push('pgbench was skipped (--skip-pgbench).');
  const others = runs.map((r) => r.otherCpuPct || 0);
  const st = report.stat(others);
  const retried = runs.filter((r) => (r.attempts || 1) > 1).length;
  const stillBusy = o.retryBusy ? runs.filter((r) => (r.otherCpuPct || 0) > o.retryBusy).length : 0;
  if (st && (st.max > 10 || busyBefore > 20)) {
    notes.push(
      `other processes used the CPUs during the run: ${st.median}% of all CPUs in the median run, ${st.max}% at most (${busyBefore}% just before the run, ${busyAfter}% just after). ` +
        (o.retryBusy ? `${retried} run${retried === 1 ? ' was' : 's were'} repeated for that (above ${o.retryBusy}%), ${stillBusy} still above it after two repeats. ` : '') +
        'Expect noise; every run\'s figure is in the JSON (otherCpuPct).',
    );
  }
  notes.push(
    `all on ${machine.nproc} CPUs: client, server and proxy share them, so proxy CPU shows up as lost throughput; ` +
      `nsproxy and socket-proxyd get --connections-max ${Math.max(4096, o.idleConns + 64)} (socket-proxyd's default is 256, nsproxy's 4096).`,
  );
  if (o.workloads.includes('pingpong')) {
    notes.push(
      'unpinned ping-pong depends on where the scheduler puts client, server and proxy (a wake-up on the other CPU costs tens of µs on a VM), which can differ from run to run' +
        (o.workloads.includes('pingpong1cpu') ? '; compare proxies on the "on 1 CPU" rows (all pinned to CPU 0).' : '.'),
    );
  }
  if (o.peers.includes('socat')) {
    notes.push(
      'socat 1.7.4 (Debian 12) has neither ACCEPT-FD nor netns=, so it cannot take its listening socket from systemd-socket-activate: it listens itself (TCP-LISTEN,fork) and each connection execs nsenter + socat STDIO TCP:… in the namespace (one relay process per connection, fork+exec cost included).',
    );
  }
  // the idle test, per peer, from the last repetition: what happened
  if (o.workloads.includes('idle')) {
    for (const p of o.peers) {
      const rs = runs.filter((r) => r.workload === 'idle' && r.peer === p);
      const last = rs[rs.length - 1];
      if (!last) continue;
      if (!last.ok) {
        notes.push(`idle × ${p}: failed: ${last.error}`);
        continue;
      }
      const x = /** @type {any} */ (last.extra);
      if (x.opened < x.asked || (x.stillOpenAtEnd && x.stillOpenAtEnd.alive < x.opened) || x.proxyAlive === false) {
        const errs = Object.entries(x.errors || {})
          .filter(([, n]) => n)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ');
        notes.push(
          `idle × ${p}: ${x.opened} of ${x.asked} connections opened${errs ? ` (failures: ${errs})` : ''}${x.skipped ? `, ${x.skipped} not tried after repeated failures` : ''}; ` +
            `${x.stillOpenAtEnd ? x.stillOpenAtEnd.alive : '?'} still open at the end${x.proxyAlive === false ? '; the proxy had exited' : ''}` +
            (x.proxyAfter ? `; proxy fds ${x.proxyBefore.fds} → ${x.proxyAfter.fds}` : '') +
            '.',
        );
      }
    }
  }
  for (const r of runs) {
    if (!r.ok && !(r.workload === 'idle' && r === runs.filter((q) => q.workload === 'idle' && q.peer === r.peer).pop())) {
      notes.push(`rep ${r.rep} ${r.workload} × ${r.peer}: FAILED: ${r.error}`);
    }
    if (r.proxyExit) notes.push(`rep ${r.rep} ${r.workload} × ${r.peer}: the proxy exited during the run (${r.proxyExit})${r.proxyOutput ? `: ${r.proxyOutput.split('\n').pop()}` : ''}.`);
    const x = /** @type {any} */ (r.extra);
    if (r.ok && x && typeof x.errors === 'number' && x.errors > 0) notes.push(`rep ${r.rep} ${r.workload} × ${r.peer}: ${x.errors} failed connections (first: ${x.firstError}).`);
  }
  void workloads;
  return notes;
}

main().catch((err) => {
  process.stderr.write(`bench: ${err && err.message ? err.message : err}\n`);
  procs.cleanupAll();
  process.exit(1);
});
