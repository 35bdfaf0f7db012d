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
 * nsproxy ÷ socket-proxyd on medians, and whether that is better for nsproxy.
 * @param {import('./workloads').Metric} m
 * @param {Record<string, Stat | null>} byPeer
 */
function ratio(m, byPeer) {
  if (m.noRatio) return null;
  const a = byPeer.nsproxy;
  const b = byPeer['socket-proxyd'];
  if (!a || !b || b.median === 0) return null;
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
 * @param {any} p.meta
 * @param {string[]} p.notes
 */
function markdown({ workloads, peers, peerLabels, agg, meta, notes }) {
  const lines = [];
  const withRatio = peers.includes('nsproxy') && peers.includes('socket-proxyd');
  lines.push(`### nsproxy benchmark, ${meta.startedAt}${meta.quick ? ' (--quick: smoke run, numbers are not meaningful)' : ''}`);
  lines.push('');
  lines.push(
    `${meta.machine.nproc} CPUs (${meta.machine.cpuModel || 'unknown CPU'}), Linux ${meta.machine.kernel}, Node ${meta.machine.node}, nsproxy ${meta.machine.nsproxyCommit || '?'} ` +
      `(--threads ${meta.options.threads}); CPUs ${meta.cpuBusyPctBefore}% busy before the run, other processes ${meta.otherCpuPctMedian}% (median run) ` +
      `to ${meta.otherCpuPctMax}% (max) during it (loadavg ${meta.loadBefore.join(' ')} → ${meta.loadAfter.join(' ')}); ` +
      `${meta.options.reps} repetition${meta.options.reps > 1 ? 's' : ''}: median (min–max).`,
  );
  lines.push('');
  const head = ['metric', ...peers.map((p) => peerLabels[p] || p)];
  if (withRatio) head.push('nsproxy ÷ socket-proxyd');
  lines.push(`| ${head.join(' | ')} |`);
  lines.push(`|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
  for (const w of workloads) {
    for (const m of w.metrics) {
      const row = [`${m.label} (${m.unit}, ${m.better === 'higher' ? '↑' : '↓'})`];
      for (const p of peers) row.push(p === 'direct' && m.proxyOnly ? '' : cell(agg[m.id][p]));
      if (withRatio) {
        const r = ratio(m, agg[m.id]);
        row.push(r ? `${r.ratio.toFixed(2)}${r.same ? '' : r.better ? ' better' : ' worse'}` : '—');
      }
      lines.push(`| ${row.join(' | ')} |`);
    }
  }
  lines.push('');
  lines.push('↑ higher is better, ↓ lower is better. Proxy CPU is utime+stime of the proxy\'s whole process tree (/proc/PID/stat), memory is its PSS (/proc/PID/smaps_rollup).');
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
 * Horizontal bars of nsproxy ÷ socket-proxyd per metric on a log scale, a line at 1.0;
 * green where nsproxy is better, red where worse.
 * @param {object} p
 * @param {import('./workloads').Workload[]} p.workloads
 * @param {Record<string, Record<string, Stat | null>>} p.agg
 * @param {any} p.meta
 */
function svg({ workloads, agg, meta }) {
  /** @type {Array<{label: string, r: number, better: boolean, same: boolean}>} */
  const rows = [];
  for (const w of workloads) {
    for (const m of w.metrics) {
      if (m.chart === false) continue;
      const r = ratio(m, agg[m.id]);
      if (r) rows.push({ label: `${m.label} (${m.unit}, ${m.better === 'higher' ? '↑' : '↓'})`, r: r.ratio, better: r.better, same: r.same });
    }
  }
  const W = 880;
  const left = 330;
  const right = 40;
  const top = 64;
  const rowH = 26;
  const H = top + rows.length * rowH + 56;
  const LIM = 3; // log2: from 1/8 to 8
  const plotW = W - left - right;
  const x = (/** @type {number} */ r) => left + ((Math.max(-LIM, Math.min(LIM, Math.log2(r))) + LIM) / (2 * LIM)) * plotW;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">nsproxy ÷ systemd-socket-proxyd, per metric (median of ${meta.options.reps})</text>`);
  out.push(
    `<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${esc(`${meta.startedAt}, ${meta.machine.nproc} CPUs, Linux ${meta.machine.kernel}${meta.quick ? ', --quick smoke run' : ''}; green: nsproxy better, red: worse; log scale`)}</text>`,
  );
  for (const g of [1 / 8, 1 / 4, 1 / 2, 2, 4, 8]) {
    const gx = x(g).toFixed(1);
    out.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${top + rows.length * rowH}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${gx}" y="${top + rows.length * rowH + 16}" text-anchor="middle" fill="#777">${g < 1 ? `1/${1 / g}` : g}</text>`);
  }
  rows.forEach((row, i) => {
    const y = top + i * rowH;
    const x1 = x(1);
    const x2 = x(row.r);
    const color = row.same ? '#999' : row.better ? '#2e9d48' : '#c8412f';
    out.push(`<text x="${left - 8}" y="${y + rowH / 2 + 4}" text-anchor="end">${esc(row.label)}</text>`);
    out.push(`<rect x="${Math.min(x1, x2).toFixed(1)}" y="${y + 5}" width="${Math.max(1, Math.abs(x2 - x1)).toFixed(1)}" height="${rowH - 10}" fill="${color}"/>`);
    // the value outside the bar's end, or inside it (white) when the bar is long
    const inside = Math.abs(x2 - x1) > 70;
    const toRight = (row.r >= 1) !== inside;
    const tx = inside ? (row.r >= 1 ? x2 - 5 : x2 + 5) : row.r >= 1 ? x2 + 4 : x2 - 4;
    out.push(
      `<text x="${tx.toFixed(1)}" y="${y + rowH / 2 + 4}" text-anchor="${toRight ? 'start' : 'end'}" fill="${inside ? '#fff' : '#222'}">${row.r.toFixed(2)}×${Math.abs(Math.log2(row.r)) > LIM ? ' (clipped)' : ''}</text>`,
    );
  });
  const x1 = x(1).toFixed(1);
  out.push(`<line x1="${x1}" y1="${top - 10}" x2="${x1}" y2="${top + rows.length * rowH + 4}" stroke="#000" stroke-width="1.5"/>`);
  out.push(`<text x="${x1}" y="${top + rows.length * rowH + 16}" text-anchor="middle" font-weight="bold">1.0</text>`);
  out.push(`<text x="${W / 2}" y="${H - 12}" text-anchor="middle" fill="#555">ratio of medians, nsproxy value ÷ socket-proxyd value (bars clipped at 1/8 and 8)</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

module.exports = { stat, aggregate, fmt, markdown, svg, ratio };
