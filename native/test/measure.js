#!/usr/bin/env node
// measure.js — a small interleaved measurement for the sockmap lane (not the product benchmark:
// that is bench/run.js). Root only. Clients in the host namespace, servers (tcpbench echo server,
// iperf3) in a namespace of their own; peers: direct (client inside the namespace), the probe's
// sockmap proxy, its splice proxy and its paused-sockmap proxy (recv/send with the program still
// attached). Per round and peer: 1-byte ping-pong (tcpbench) and a 5 s iperf3 stream, each with
// whole-machine CPU from /proc/stat. Prints one JSON line per measurement and a summary of medians.
//
//   node native/test/measure.js [--rounds 3] [--pingpong 20000] [--seconds 5]
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const ROUNDS = opt('rounds', 3);
const PINGS = opt('pingpong', 20000);
const SECONDS = opt('seconds', 5);
const here = __dirname;
const repo = path.resolve(here, '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsproxy-sockmap-measure-'));
const ns = `nsproxy-sm-measure-${process.pid}`;
const children = [];

function cleanup() {
  for (const c of children) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    /* gone */
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

/** Busy and total jiffies of the whole machine. */
function cpu() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = f[3] + f[4];
  return { busy: total - idle, total };
}

function start(cmd, argv) {
  const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  return child;
}

function firstLine(child) {
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(buf.slice(0, nl));
    });
    child.on('exit', (code) => reject(new Error(`${child.spawnargs.join(' ')} exited (${code})`)));
  });
}

function run(cmd, argv) {
  return execFileSync(cmd, argv, { encoding: 'utf8', timeout: 120000 });
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
}

async function main() {
  execFileSync(path.join(here, 'build-probe.sh'), [path.join(tmp, 'probe')], { stdio: 'inherit' });
  execFileSync('cc', ['-O2', '-pthread', '-o', path.join(tmp, 'tcpbench'), path.join(repo, 'bench', 'native', 'tcpbench.c')]);
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  const ECHO = 7001;
  const IPERF = 7002;
  const echo = start('ip', ['netns', 'exec', ns, path.join(tmp, 'tcpbench'), 'echo-server', '127.0.0.1', String(ECHO)]);
  await firstLine(echo);
  start('ip', ['netns', 'exec', ns, 'iperf3', '-s', '-B', '127.0.0.1', '-p', String(IPERF)]);
  await new Promise((r) => setTimeout(r, 500));

  const proxies = {};
  for (const engine of ['sockmap', 'splice', 'paused']) {
    for (const [what, port] of [['echo', ECHO], ['iperf', IPERF]]) {
      const p = start(path.join(tmp, 'probe'), ['proxy', '--engine', engine, '--target-netns', `/run/netns/${ns}`, '--to-port', String(port)]);
      proxies[`${engine}-${what}`] = JSON.parse(await firstLine(p)).listening;
    }
  }
  const peers = ['direct', 'sockmap', 'splice', 'paused'];
  const client = (peer, bin, argv) => (peer === 'direct' ? run('ip', ['netns', 'exec', ns, bin, ...argv]) : run(bin, argv));
  const portOf = (peer, what) => (peer === 'direct' ? (what === 'echo' ? ECHO : IPERF) : proxies[`${peer}-${what}`]);
  const results = {};
  for (let round = 1; round <= ROUNDS; round++) {
    for (const peer of peers) {
      let c0 = cpu();
      const pp = JSON.parse(client(peer, path.join(tmp, 'tcpbench'), ['pingpong', '127.0.0.1', String(portOf(peer, 'echo')), String(PINGS), '1000']).trim().split('\n').pop());
      let c1 = cpu();
      const ppBusyUs = (c1.busy - c0.busy) * 1e4; // /proc/stat counts USER_HZ (100) ticks: 10 000 µs each
      c0 = cpu();
      const ip = JSON.parse(client(peer, 'iperf3', ['-c', '127.0.0.1', '-p', String(portOf(peer, 'iperf')), '-t', String(SECONDS), '-J']));
      c1 = cpu();
      const bytes = ip.end.sum_received.bytes;
      const r = {
        round,
        peer,
        pingpong_mean_us: pp.mean_us,
        pingpong_p99_us: pp.p99_us,
        pingpong_cpu_us_per_round_trip: ppBusyUs / (pp.count + 1000),
        iperf_gbit: ip.end.sum_received.bits_per_second / 1e9,
        cpu_s_per_gb: (c1.busy - c0.busy) / 100 / (bytes / 1e9),
      };
      console.log(JSON.stringify(r));
      (results[peer] ??= []).push(r);
    }
  }
  const summary = {};
  for (const peer of peers) {
    const rs = results[peer];
    summary[peer] = Object.fromEntries(
      ['pingpong_mean_us', 'pingpong_p99_us', 'pingpong_cpu_us_per_round_trip', 'iperf_gbit', 'cpu_s_per_gb'].map((k) => [k, +median(rs.map((r) => r[k])).toFixed(2)]),
    );
  }
  console.log(JSON.stringify({ summary, rounds: ROUNDS, pingpong: PINGS, seconds: SECONDS, cpus: os.cpus().length }));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e.stack || String(e));
    process.exit(1);
  },
);
