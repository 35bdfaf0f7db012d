// The benchmark harness works: `npm run bench -- --quick` sets up its namespace and servers,
// runs every peer (direct, the nsproxy variants, a baseline build, systemd-socket-proxyd, socat,
// a Node proxy) through the workloads and gets a number for each metric, whole-machine CPU
// included. It asserts that, never a timing. The baseline here is this very checkout: that
// proves the --baseline path (another tree's build, snapshotted and run as its own peer), not a
// before/after difference.
import t from 'tap';

import { REPO_ROOT } from './helpers/env';
import { runCommand } from './helpers/procs';

interface Variant {
  name: string;
  peerId: string;
  label: string;
  options: string[];
  build: string;
  fromDefaultTable: boolean;
}
interface RatioColumn {
  a: string;
  b: string;
  title: string;
}
// the harness is plain CommonJS JavaScript (JSDoc-typed): loaded as it runs
const variants = require('../bench/lib/variants') as {
  DEFAULT_VARIANTS: string;
  parseVariants(spec: string, fromDefaultTable?: boolean): Variant[];
  baselineVariant(dir: string): Variant;
  isUnknownOption(err: { exitCode?: number | null; output?: string }): boolean;
};
const report = require('../bench/lib/report') as {
  ratioColumns(peers: Array<{ id: string; label: string; variant?: Variant }>): RatioColumn[];
};

t.test('variant table: the default one engine per peer, names and options parsed', async (t) => {
  const def = variants.parseVariants(variants.DEFAULT_VARIANTS, true);
  t.same(
    def.map((v) => [v.peerId, v.label, v.options]),
    [
      ['nsproxy', 'nsproxy (auto)', []],
      ['nsproxy-sockmap', 'nsproxy (sockmap)', ['--engine', 'sockmap']],
      ['nsproxy-splice', 'nsproxy (splice)', ['--engine', 'splice']],
    ],
  );
  t.ok(def.every((v) => v.fromDefaultTable && v.build === 'current'));
  const mine = variants.parseVariants(' auto= ; threads2=--threads  2 ;');
  t.same(mine.map((v) => [v.peerId, v.options, v.fromDefaultTable]), [
    ['nsproxy', [], false],
    ['nsproxy-threads2', ['--threads', '2'], false],
  ]);
  t.throws(() => variants.parseVariants('threads2'), /NAME=OPTIONS/, 'an entry without =');
  t.throws(() => variants.parseVariants('a=;a=--threads 2'), /twice/, 'a name twice');
  t.throws(() => variants.parseVariants('baseline=--threads 2'), /--baseline/, "'baseline' is reserved");
  t.throws(() => variants.parseVariants('a b=--x'), /bad name/);
  t.throws(() => variants.parseVariants(' ; '), /no variant/);
  t.same(variants.baselineVariant('/tmp/x'), {
    name: 'baseline',
    peerId: 'nsproxy-baseline',
    label: 'nsproxy (baseline)',
    options: [],
    build: 'baseline',
    dir: '/tmp/x',
    fromDefaultTable: false,
  });
});

t.test('an option this build does not know is told apart from a variant that fails', async (t) => {
  t.ok(variants.isUnknownOption({ exitCode: 2, output: 'nsproxy: Unknown argument: engine; see nsproxy --help' }));
  t.ok(variants.isUnknownOption({ exitCode: 2, output: 'nsproxy: unknown option --engine; see nsproxy --help' }));
  t.notOk(variants.isUnknownOption({ exitCode: 2, output: 'nsproxy: --engine sockmap needs CAP_BPF; run as root' }), 'another usage error');
  t.notOk(variants.isUnknownOption({ exitCode: 1, output: 'Unknown argument' }), 'not a usage exit');
  t.notOk(variants.isUnknownOption({ exitCode: null, output: '' }), 'killed');
});

t.test('ratio columns: one per nsproxy variant against socket-proxyd, and after ÷ before', async (t) => {
  const vs = [...variants.parseVariants(variants.DEFAULT_VARIANTS, true), variants.baselineVariant('/b')];
  const peers = [
    { id: 'direct', label: 'direct' },
    ...vs.map((v) => ({ id: v.peerId, label: v.label, variant: v })),
    { id: 'socket-proxyd', label: 'socket-proxyd' },
  ];
  t.same(
    report.ratioColumns(peers).map((c) => [c.a, c.b, c.title]),
    [
      ['nsproxy', 'socket-proxyd', 'nsproxy (auto) ÷ socket-proxyd'],
      ['nsproxy-sockmap', 'socket-proxyd', 'nsproxy (sockmap) ÷ socket-proxyd'],
      ['nsproxy-splice', 'socket-proxyd', 'nsproxy (splice) ÷ socket-proxyd'],
      ['nsproxy-baseline', 'socket-proxyd', 'nsproxy (baseline) ÷ socket-proxyd'],
      ['nsproxy', 'nsproxy-baseline', 'nsproxy (auto) ÷ nsproxy (baseline)'],
    ],
  );
  t.same(report.ratioColumns(peers.filter((p) => p.id !== 'socket-proxyd')).map((c) => c.title), ['nsproxy (auto) ÷ nsproxy (baseline)'], 'no socket-proxyd: only after ÷ before');
  t.same(report.ratioColumns([{ id: 'direct', label: 'direct' }]), [], 'no nsproxy: no ratio');
});

// --quick takes 1–2 minutes on a busy 2-CPU machine, more with every nsproxy variant: room
// above the suite's 240 s per file (quick-check itself gives up after 240 s)
t.setTimeout(300_000);

t.test('bench --quick: every peer ran its workloads and produced numbers', async (t) => {
  const run = await runCommand(process.execPath, ['bench/quick-check.js', '--baseline', REPO_ROOT], { cwd: REPO_ROOT, timeoutMs: 260_000 });
  t.equal(run.timedOut, false, 'finished in time');
  t.equal(run.code, 0, 'quick-check passed', { stdout: run.stdout.slice(-3000), stderr: run.stderr.slice(-3000) });
  t.match(run.stdout + run.stderr, /nsproxy \(auto\)/, 'the report names nsproxy (auto)');
  t.match(run.stdout + run.stderr, /nsproxy-baseline/, 'the baseline ran as a peer');
});
