// @ts-check
// env.js — the bench's world: tool checks, the temp dir, the compiled C helper, the target
// network namespace and the servers inside it (echo, iperf3, PostgreSQL 15).
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const procs = require('./procs');

const REPO = path.resolve(__dirname, '..', '..');

/** Ports inside the namespace. */
const PORTS = { echo: 7007, iperf: 5201, pg: 5432 };
/**
 * The echo server also listens on ECHO_FRESH.count ports from ECHO_FRESH.first, and each
 * connection-rate run takes the next one. A run of thousands of short connections leaves as many
 * TIME_WAIT sockets in the namespace for 60 s (the side that closes first keeps them: the client
 * direct, the proxy's upstream socket otherwise), and the next run's connect()s to the same port
 * then search past them for a free source port: whoever ran right after a fast peer paid for it.
 * 64 ports at about 3 s a run come round again after more than 60 s.
 */
const ECHO_FRESH = { first: 7100, count: 64 };

/** @param {string} cmd */
function which(cmd) {
  if (cmd.includes('/')) return fs.existsSync(cmd) ? cmd : null;
  for (const dir of (process.env.PATH || '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

/** The newest /usr/lib/postgresql/N/bin with a server and pgbench, or $PG_BIN. */
function findPgBin() {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  let best = null;
  try {
    for (const v of fs.readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a))) {
      const bin = `/usr/lib/postgresql/${v}/bin`;
      if (fs.existsSync(`${bin}/postgres`) && fs.existsSync(`${bin}/pgbench`) && fs.existsSync(`${bin}/initdb`)) {
        best = bin;
        break;
      }
    }
  } catch {
    /* none */
  }
  return best;
}

/**
 * Check everything the selected peers and workloads need; throw one message naming every
 * missing piece and its Debian package.
 * @param {{peers: string[], workloads: string[], builds: Set<string>, baselineDir: string | null}} sel
 *   builds: the nsproxy builds the selected peers run ('current', 'baseline')
 */
function checkTools(sel) {
  if (process.getuid && process.getuid() !== 0) {
    throw new Error('the benchmark must run as root: it creates a network namespace (ip netns add) and enters it');
  }
  /** @type {Array<[string, string]>} [command, apt package] */
  const need = [
    ['ip', 'iproute2'],
    ['nsenter', 'util-linux'],
    ['setpriv', 'util-linux'],
    ['taskset', 'util-linux'],
    ['cc', 'gcc'],
    ['systemd-socket-activate', 'systemd'],
  ];
  if (sel.workloads.some((w) => w.startsWith('iperf'))) need.push(['iperf3', 'iperf3']);
  if (sel.peers.includes('socket-proxyd')) need.push(['/lib/systemd/systemd-socket-proxyd', 'systemd']);
  if (sel.peers.includes('socat')) need.push(['socat', 'socat']);
  const missing = need.filter(([cmd]) => !which(cmd)).map(([cmd, pkg]) => `${cmd} (apt-get install ${pkg})`);
  if (sel.workloads.includes('pgbench') && !findPgBin()) {
    missing.push('PostgreSQL server + pgbench in /usr/lib/postgresql/*/bin (apt-get install postgresql-15, or set PG_BIN)');
  }
  if (sel.builds.has('current')) {
    if (!fs.existsSync(path.join(REPO, 'dist', 'main.js'))) missing.push('dist/main.js (run npm run build)');
    if (!fs.existsSync(path.join(REPO, 'build', 'Release', 'nsproxy.node'))) missing.push('build/Release/nsproxy.node (run npm install, or npx node-gyp rebuild)');
  }
  if (sel.builds.has('baseline') && sel.baselineDir) {
    const d = sel.baselineDir;
    const absent = ['dist/main.js', 'build/Release/nsproxy.node', 'package.json', 'node_modules'].filter((f) => !fs.existsSync(path.join(d, f)));
    if (!fs.existsSync(d)) missing.push(`--baseline: no directory ${d}`);
    else if (absent.length) missing.push(`--baseline: ${absent.join(', ')} in ${d} (build that checkout: cd ${d} && npm ci)`);
  }
  if (missing.length) throw new Error(`missing: ${missing.join('; ')}`);
}

/** A private temp dir, removed at the end. Traversable by the postgres user. */
function makeTempDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsproxy-bench-'));
  fs.chmodSync(dir, 0o755);
  procs.onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Compile bench/native/tcpbench.c into the temp dir.
 * @param {string} tmp
 */
function compileHelper(tmp) {
  const out = path.join(tmp, 'tcpbench');
  try {
    execFileSync('cc', ['-O2', '-Wall', '-pthread', '-o', out, path.join(__dirname, '..', 'native', 'tcpbench.c')], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new Error(`compiling bench/native/tcpbench.c failed (needs gcc): ${String(/** @type {any} */ (err).stderr || err)}`);
  }
  return out;
}

/**
 * Copy a built nsproxy (dist/, build/Release/nsproxy.node, package.json; node_modules linked)
 * into the temp dir, so that the whole run measures one build even if the tree is rebuilt
 * meanwhile. Returns the copy's main.js.
 * @param {string} tmp
 * @param {string} [src] the checkout (default: this one)
 * @param {string} [name] the copy's directory in tmp
 */
function snapshotNsproxy(tmp, src = REPO, name = 'nsproxy') {
  const dst = path.join(tmp, name);
  fs.mkdirSync(path.join(dst, 'build', 'Release'), { recursive: true });
  // timestamps kept: dist/main.js uses the bundle only if it is not older than dist/cli.js
  fs.cpSync(path.join(src, 'dist'), path.join(dst, 'dist'), { recursive: true, preserveTimestamps: true });
  fs.copyFileSync(path.join(src, 'build', 'Release', 'nsproxy.node'), path.join(dst, 'build', 'Release', 'nsproxy.node'));
  fs.copyFileSync(path.join(src, 'package.json'), path.join(dst, 'package.json'));
  fs.symlinkSync(path.join(src, 'node_modules'), path.join(dst, 'node_modules'));
  const main = path.join(dst, 'dist', 'main.js');
  if (!fs.existsSync(main)) throw new Error('dist/main.js vanished while copying it (is a build running?); run npm run build and try again');
  return main;
}

/**
 * `ip netns add nsproxy-bench-<pid>`, loopback up; deleted at the end.
 */
function makeNetns() {
  const name = `nsproxy-bench-${process.pid}`;
  execFileSync('ip', ['netns', 'add', name], { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.onCleanup(() => execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' }));
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return { name, path: `/run/netns/${name}` };
}

/**
 * @typedef {object} World
 * @property {string} tmp
 * @property {string} tcpbench
 * @property {{name: string, path: string}} ns
 * @property {import('./procs').Proc[]} servers
 * @property {string | null} pgBin
 * @property {string} pgUser
 */

/**
 * Start the servers inside the namespace. Each one is awaited listening.
 * @param {World} w
 * @param {{iperf: boolean, echo: boolean, pg: boolean}} which
 * @param {(msg: string) => void} say
 */
async function startServers(w, which, say) {
  const nsenter = (/** @type {string[]} */ argv) => ['--net=' + w.ns.path, ...argv];
  if (which.echo) {
    const echo = procs.start('echo server', 'nsenter', nsenter([w.tcpbench, 'echo-server', '127.0.0.1', String(PORTS.echo)]));
    const fresh = procs.start('echo server (fresh ports)', 'nsenter', nsenter([w.tcpbench, 'echo-server', '127.0.0.1', String(ECHO_FRESH.first), String(ECHO_FRESH.count)]));
    w.servers.push(fresh);
    await fresh.out.waitFor((l) => l === 'listening', 5000, 'the echo server (fresh ports)');
    w.servers.push(echo);
    await echo.out.waitFor((l) => l === 'listening', 5000, 'the echo server');
  }
  if (which.iperf) {
    const iperf = procs.start('iperf3 server', 'nsenter', nsenter(['iperf3', '-s', '-B', '127.0.0.1', '-p', String(PORTS.iperf)]));
    w.servers.push(iperf);
    await procs.waitListening(PORTS.iperf, iperf.pid, 5000, 'iperf3 -s', iperf);
  }
  if (which.pg) {
    await startPostgres(w, say);
  }
}

/**
 * PostgreSQL as an ordinary user inside the namespace: temp data dir, trust auth, fsync off,
 * listening on 127.0.0.1 only; then pgbench -i -s 1.
 * @param {World} w
 * @param {(msg: string) => void} say
 */
async function startPostgres(w, say) {
  const bin = /** @type {string} */ (w.pgBin);
  let uid;
  let gid;
  try {
    uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    w.pgUser = 'postgres';
  } catch {
    uid = 65534;
    gid = 65534;
    w.pgUser = 'nobody';
  }
  const data = path.join(w.tmp, 'pgdata');
  const sock = path.join(w.tmp, 'pgsock');
  for (const d of [data, sock]) {
    fs.mkdirSync(d, { mode: 0o700 });
    fs.chownSync(d, uid, gid);
  }
  const asUser = ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--'];
  say(`PostgreSQL: initdb as ${w.pgUser} in ${data}`);
  const init = await procs.run('nsenter', ['--net=' + w.ns.path, ...asUser, `${bin}/initdb`, '-D', data, '-U', 'bench', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C'], {
    timeoutMs: 120000,
  });
  if (init.code !== 0) throw new Error(`initdb failed (${init.code}):\n${init.stderr}${init.stdout}`);
  const pg = procs.start('postgres', 'nsenter', [
    '--net=' + w.ns.path,
    ...asUser,
    `${bin}/postgres`,
    '-D', data,
    '-c', 'listen_addresses=127.0.0.1',
    '-c', `port=${PORTS.pg}`,
    '-c', `unix_socket_directories=${sock}`,
    '-c', 'fsync=off',
    '-c', 'synchronous_commit=off',
    '-c', 'full_page_writes=off',
    '-c', 'max_connections=100',
    '-c', 'shared_buffers=128MB',
    '-c', 'log_min_messages=fatal',
  ]);
  w.servers.push(pg);
  // postgres wants SIGINT (fast shutdown); the generic stop would send SIGTERM (smart: waits)
  /** @type {any} */ (pg).stopSignal = 'SIGINT';
  await procs.waitListening(PORTS.pg, pg.pid, 30000, 'postgres', pg);
  say('PostgreSQL: pgbench -i -s 1');
  const ini = await procs.run('nsenter', ['--net=' + w.ns.path, `${bin}/pgbench`, '-i', '-s', '1', '-q', '-h', '127.0.0.1', '-p', String(PORTS.pg), '-U', 'bench', 'postgres'], {
    timeoutMs: 120000,
  });
  if (ini.code !== 0) throw new Error(`pgbench -i failed (${ini.code}):\n${ini.stderr}${ini.stdout}`);
}

/** @param {World} w */
async function stopServers(w) {
  for (const s of w.servers.reverse()) {
    await procs.stop(s, { signal: /** @type {any} */ (s).stopSignal || 'SIGTERM', treeSignal: false, graceMs: 5000 });
  }
  w.servers = [];
}

/**
 * The short commit of a checkout, with +dirty when src/ or native/ has uncommitted changes.
 * @param {string} dir
 * @returns {string | null} null: not a git checkout
 */
function gitCommit(dir) {
  try {
    let commit = execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', dir, 'status', '--porcelain', '--untracked-files=no', '--', 'src', 'native'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (dirty) commit += '+dirty';
    return commit;
  } catch {
    return null;
  }
}

/**
 * When a build output was made (its mtime).
 * @param {string} dir
 * @param {string} f
 */
function buildTime(dir, f) {
  try {
    return fs.statSync(path.join(dir, f)).mtime.toISOString();
  } catch {
    return null;
  }
}

/**
 * What the baseline is, for the JSON and the report.
 * @param {string} dir
 */
function baselineFacts(dir) {
  return { dir, commit: gitCommit(dir), built: { dist: buildTime(dir, 'dist/main.js'), addon: buildTime(dir, 'build/Release/nsproxy.node') } };
}

/** Versions and machine facts for the JSON. */
function machineFacts() {
  /** @param {string} cmd @param {string[]} args @param {RegExp} [re] */
  const ver = (cmd, args, re) => {
    try {
      const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      const m = re ? re.exec(out) : null;
      return m ? m[1] : out.split('\n')[0].trim();
    } catch {
      return null;
    }
  };
  let cpuModel = null;
  try {
    cpuModel = (/model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8')) || [])[1] || null;
  } catch {
    /* none */
  }
  const commit = gitCommit(REPO);
  const pgBin = findPgBin();
  /** @param {string} f */
  const mtime = (f) => buildTime(REPO, f);
  return {
    hostname: os.hostname(),
    kernel: os.release(),
    nproc: os.availableParallelism ? os.availableParallelism() : os.cpus().length,
    cpuModel,
    memTotalMiB: Math.round(os.totalmem() / 1048576),
    node: process.version,
    nsproxyCommit: commit,
    nsproxyBuilt: { dist: mtime('dist/main.js'), addon: mtime('build/Release/nsproxy.node') },
    versions: {
      socat: ver('socat', ['-V'], /socat version (\S+)/),
      iperf3: ver('iperf3', ['--version'], /iperf (\S+)/),
      systemd: ver('systemd-socket-activate', ['--version'], /systemd (\d+)/),
      postgres: pgBin ? ver(`${pgBin}/postgres`, ['--version'], /(\d+\.\d+)/) : null,
    },
    nofile: ver('sh', ['-c', 'echo $(ulimit -Sn)/$(ulimit -Hn)']),
  };
}

module.exports = { REPO, PORTS, ECHO_FRESH, which, findPgBin, checkTools, makeTempDir, compileHelper, snapshotNsproxy, makeNetns, startServers, stopServers, machineFacts, baselineFacts };
