// @ts-check
// report.js — medians and spread per metric and peer, the markdown table, the ratio chart (SVG).
'use strict';

/**
 * @typedef {object} Stat
 * @property {number[]} values
 * @property {number} median
 * @property {number} min
 * @property {number} max
 */

/** @param {number[]} xs @returns {Stat | null} */
function stat(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { values: xs, median, min: s[0], max: s[s.length - 1] };
}

/**
 * @typedef {object} RunRecord
 * @property {number} rep
 * @property {string} workload
 * @property {string} peer
 * @property {boolean} ok
 * @property {Record<string, number|null>} [values]
 * @property {Record<string, unknown>} [extra]
 * @property {string} [error]
 * @property {string} [proxyExit] set when the proxy exited during the run
 * @property {string} [proxyOutput] its last output lines then
 * @property {number} [otherCpuPct] % of all CPUs that other processes used during the run
 * @property {number} [attempts] 1, or more when it was run again because others were busy
 */

/**
 * @param {import('./workloads').Workload[]} workloads
 * @param {string[]} peers
 * @param {RunRecord[]} runs
 * @returns {Record<string, Record<string, Stat | null>>} metric id -> peer -> stat
 */
function aggregate(workloads, peers, runs) {
  /** @type {Record<string, Record<string, Stat | null>>} */
  const out = {};
  for (const w of workloads) {
    for (const m of w.metrics) {
      out[m.id] = {};
      for (const p of peers) {
        const xs = runs
          .filter((r) => r.workload === w.id && r.peer === p && r.ok && r.values)
          .map((r) => /** @type {Record<string, number|null>} */ (r.values)[m.id])
          .filter((v) => typeof v === 'number' && Number.isFinite(v));
        out[m.id][p] = stat(/** @type {number[]} */ (xs));
      }
    }
  }
  return out;
}

/** Three significant digits, no exponent. @param {number} x */
function fmt(x) {
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US').replace(/,/g, ' ');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  if (a === 0) return '0';
  return x.toPrecision(2);
}

/** @param {Stat | null} s */
function cell(s) {
  if (!s) return '—';
  if (s.values.length < 2 || fmt(s.min) === fmt(s.max)) return fmt(s.median);
  return `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
}

/**
 * @typedef {object} RatioColumn a ratio of medians the report shows, per metric
 * @property {string} a numerator peer (an nsproxy variant)
 * @property {string} b denominator peer (socket-proxyd, or the baseline)
 * @property {string} title the column's heading
 * @property {string} short the variant's name, for the chart
 */

/**
 * The ratio columns: every nsproxy variant (the baseline included) ÷ socket-proxyd, and, when
 * a baseline ran, the first variant ÷ the baseline (after ÷ before).
 * @param {Array<{id: string, label: string, variant?: {name: string}}>} peers in the report's order
 * @returns {RatioColumn[]}
 */
function ratioColumns(peers) {
  const ns = peers.filter((p) => p.variant);
  /** @type {RatioColumn[]} */
  const cols = [];
  if (peers.some((p) => p.id === 'socket-proxyd')) {
    for (const p of ns) cols.push({ a: p.id, b: 'socket-proxyd', title: `${p.label} ÷ socket-proxyd`, short: /** @type {{name: string}} */ (p.variant).name });
  }
  const base = ns.find((p) => p.id === 'nsproxy-baseline');
  const first = ns.find((p) => p !== base);
  if (base && first) cols.push({ a: first.id, b: base.id, title: `${first.label} ÷ ${base.label}`, short: `${/** @type {{name: string}} */ (first.variant).name} ÷ baseline` });
  return cols;
}

/**
 * a ÷ b on medians (by default nsproxy ÷ socket-proxyd), and whether that is better for a.
 * @param {import('./workloads').Metric} m
 * @param {Record<string, Stat | null>} byPeer
 * @param {string} [aId]
 * @param {string} [bId]
 */
function ratio(m, byPeer, aId = 'nsproxy', bId = 'socket-proxyd') {
  if (m.noRatio) return null;
  const a = byPeer[aId];
  const b = byPeer[bId];
  // a difference (added over direct) can be negative: no ratio then
  if (!a || !b || b.median <= 0 || a.median < 0) return null;
  const r = a.median / b.median;
  const better = m.better === 'higher' ? r > 1 : r < 1;
  return { ratio: r, better, same: Math.abs(r - 1) < 0.03 };
}

/**
 * @param {object} p
 * @param {import('./workloads').Workload[]} p.workloads
 * @param {string[]} p.peers
 * @param {Record<string, string>} p.peerLabels
 * @param {Record<string, Record<string, Stat | null>>} p.agg
 * @param {RatioColumn[]} p.ratios
 * @param {string[]} [p.nsproxyPeers] one line per nsproxy peer: which build, which options
 * @param {any} p.meta
 * @param {string[]} p.notes
 */
function markdown({ workloads, peers, peerLabels, agg, ratios, nsproxyPeers = [], meta, notes }) {
  const lines = [];
  lines.push(`### nsproxy benchmark, ${meta.startedAt}${meta.quick ? ' (--quick: smoke run, numbers are not meaningful)' : ''}`);
  lines.push('');
  lines.push(
    `${meta.machine.nproc} CPUs (${meta.machine.cpuModel || 'unknown CPU'}), Linux ${meta.machine.kernel}, Node ${meta.machine.node}, nsproxy ${meta.machine.nsproxyCommit || '?'} ` +
      `(--threads ${meta.options.threads}); CPUs ${meta.cpuBusyPctBefore}% busy before the run, other processes ${meta.otherCpuPctMedian}% (median run) ` +
      `to ${meta.otherCpuPctMax}% (max) during it (loadavg ${meta.loadBefore.join(' ')} → ${meta.loadAfter.join(' ')}); ` +
      `${meta.options.reps} repetition${meta.options.reps > 1 ? 's' : ''}: median (min–max).`,
  );
  if (nsproxyPeers.length) {
    lines.push('');
    lines.push(`nsproxy peers: ${nsproxyPeers.join('; ')}.`);
  }
  lines.push('');
  const head = ['metric', ...peers.map((p) => peerLabels[p] || p), ...ratios.map((c) => c.title)];
  lines.push(`| ${head.join(' | ')} |`);
  lines.push(`|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
  for (const w of workloads) {
    for (const m of w.metrics) {
      const row = [`${m.label} (${m.unit}, ${m.better === 'higher' ? '↑' : '↓'})`];
      for (const p of peers) row.push(p === 'direct' && m.proxyOnly ? '' : cell(agg[m.id][p]));
      for (const c of ratios) {
        const r = ratio(m, agg[m.id], c.a, c.b);
        row.push(r ? `${r.ratio.toFixed(2)}${r.same ? '' : r.better ? ' better' : ' worse'}` : '—');
      }
      lines.push(`| ${row.join(' | ')} |`);
    }
  }
  lines.push('');
  lines.push(
    '↑ higher is better, ↓ lower is better. Proxy CPU is utime+stime of the proxy\'s whole process tree (/proc/PID/stat), memory is its PSS (/proc/PID/smaps_rollup). ' +
      'Whole-machine CPU is every CPU\'s busy time in /proc/stat (user, nice, system, irq, softirq, steal) during the client\'s run: client, server, proxy and kernel work (softirq, kernel workers) together, so it counts what per-process CPU cannot see; direct\'s value is the floor. ' +
      '"Added over direct" is a peer\'s value minus direct\'s in the same repetition. ' +
      'A ratio "better"/"worse" is for the variant on the left; within 3 % it is left plain.',
  );
  if (notes.length) {
    lines.push('');
    lines.push('Notes:');
    for (const n of notes) lines.push(`- ${n}`);
  }
  return lines.join('\n');
}

/** @param {string} s */
const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * Horizontal bars of each ratio column per metric on a log scale, a line at 1.0; green where
 * the variant is better, red where worse. The columns ÷ socket-proxyd (one bar per nsproxy
 * variant, named beside it), or, in a run without socket-proxyd, the ÷ baseline column.
 * @param {object} p
 * @param {import('./workloads').Workload[]} p.workloads
 * @param {Record<string, Record<string, Stat | null>>} p.agg
 * @param {RatioColumn[]} p.ratios
 * @param {any} p.meta
 */
function svg({ workloads, agg, ratios, meta }) {
  const vsProxyd = ratios.filter((c) => c.b === 'socket-proxyd');
  const cols = vsProxyd.length ? vsProxyd : ratios;
  const named = cols.length > 1; // one bar per variant: say which
  /** @type {Array<{label: string, bars: Array<{name: string, r: number, better: boolean, same: boolean} | {name: string, r: null}>}>} */
  const groups = [];
  for (const w of workloads) {
    for (const m of w.metrics) {
      if (m.chart === false) continue;
      const bars = cols.map((c) => {
        const r = ratio(m, agg[m.id], c.a, c.b);
        return r ? { name: c.short, r: r.ratio, better: r.better, same: r.same } : { name: c.short, r: null };
      });
      if (bars.some((b) => b.r !== null)) groups.push({ label: `${m.label} (${m.unit}, ${m.better === 'higher' ? '↑' : '↓'})`, bars });
    }
  }
  // room for the longest metric label (about 6.6 px a character at 12 px), and the variants' names
  const labelW = Math.max(330, Math.ceil(Math.max(0, ...groups.map((g) => g.label.length)) * 6.6) + 16);
  const W = labelW + 550 + (named ? 110 : 0);
  const left = labelW + (named ? 110 : 0);
  const right = 40;
  const top = 64;
  const barH = named ? 18 : 26;
  const gap = named ? 8 : 0;
  const groupH = cols.length * barH + gap;
  const plotH = groups.length * groupH;
  const H = top + plotH + 56;
  const LIM = 3; // log2: from 1/8 to 8
  const plotW = W - left - right;
  const x = (/** @type {number} */ r) => left + ((Math.max(-LIM, Math.min(LIM, Math.log2(r))) + LIM) / (2 * LIM)) * plotW;
  const what = cols.length === 1 ? cols[0].title.replace('socket-proxyd', 'systemd-socket-proxyd') : `nsproxy (${cols.map((c) => c.short).join(', ')}) ÷ ${cols[0].b === 'socket-proxyd' ? 'systemd-socket-proxyd' : cols[0].b}`;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(`${what}, per metric (median of ${meta.options.reps})`)}</text>`);
  out.push(
    `<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${esc(`${meta.startedAt}, ${meta.machine.nproc} CPUs, Linux ${meta.machine.kernel}${meta.quick ? ', --quick smoke run' : ''}; green: nsproxy better, red: worse; log scale`)}</text>`,
  );
  for (const g of [1 / 8, 1 / 4, 1 / 2, 2, 4, 8]) {
    const gx = x(g).toFixed(1);
    out.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${top + plotH}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${gx}" y="${top + plotH + 16}" text-anchor="middle" fill="#777">${g < 1 ? `1/${1 / g}` : g}</text>`);
  }
  groups.forEach((group, gi) => {
    const gy = top + gi * groupH;
    if (named && gi > 0) out.push(`<line x1="8" y1="${gy - gap / 2}" x2="${W - 8}" y2="${gy - gap / 2}" stroke="#f0f0f0"/>`);
    const labelX = left - 8 - (named ? 110 : 0);
    out.push(`<text x="${labelX}" y="${(gy + (cols.length * barH) / 2 + 4).toFixed(1)}" text-anchor="end">${esc(group.label)}</text>`);
    group.bars.forEach((bar, bi) => {
      const y = gy + bi * barH;
      if (named) out.push(`<text x="${left - 8}" y="${y + barH / 2 + 4}" text-anchor="end" fill="#444" font-size="11">${esc(bar.name)}</text>`);
      const x1 = x(1);
      if (bar.r === null) {
        out.push(`<text x="${x1 + 4}" y="${y + barH / 2 + 4}" fill="#999" font-size="11">no value</text>`);
        return;
      }
      const b = /** @type {{r: number, better: boolean, same: boolean}} */ (bar);
      const x2 = x(b.r);
      const color = b.same ? '#999' : b.better ? '#2e9d48' : '#c8412f';
      out.push(`<rect x="${Math.min(x1, x2).toFixed(1)}" y="${y + (named ? 3 : 5)}" width="${Math.max(1, Math.abs(x2 - x1)).toFixed(1)}" height="${barH - (named ? 6 : 10)}" fill="${color}"/>`);
      // the value outside the bar's end, or inside it (white) when the bar is long
      const inside = Math.abs(x2 - x1) > 70;
      const toRight = (b.r >= 1) !== inside;
      const tx = inside ? (b.r >= 1 ? x2 - 5 : x2 + 5) : b.r >= 1 ? x2 + 4 : x2 - 4;
      out.push(
        `<text x="${tx.toFixed(1)}" y="${y + barH / 2 + 4}" text-anchor="${toRight ? 'start' : 'end'}" fill="${inside ? '#fff' : '#222'}">${b.r.toFixed(2)}×${Math.abs(Math.log2(b.r)) > LIM ? ' (clipped)' : ''}</text>`,
      );
    });
  });
  const x1 = x(1).toFixed(1);
  out.push(`<line x1="${x1}" y1="${top - 10}" x2="${x1}" y2="${top + plotH + 4}" stroke="#000" stroke-width="1.5"/>`);
  out.push(`<text x="${x1}" y="${top + plotH + 16}" text-anchor="middle" font-weight="bold">1.0</text>`);
  out.push(`<text x="${W / 2}" y="${H - 12}" text-anchor="middle" fill="#555">${esc(`ratio of medians, ${named ? 'each variant\'s' : 'the nsproxy'} value ÷ ${cols[0].b === 'socket-proxyd' ? 'socket-proxyd\'s' : 'the baseline\'s'} (bars clipped at 1/8 and 8)`)}</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

module.exports = { stat, aggregate, fmt, markdown, svg, ratio, ratioColumns };
