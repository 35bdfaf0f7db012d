#!/usr/bin/env node
// @ts-check
// bench/quick-check.js — proves the benchmark harness works: runs `bench/run.js --quick` into a
// temp dir and exits non-zero unless every peer ran every workload it applies to and produced a
// number for every metric (whole-machine CPU included), every nsproxy variant has its ratio
// column, and no nsproxy variant was left out except one of the default table that this build
// does not know yet (nsproxy exited 2, "Unknown argument": e.g. --engine before it exists).
// Never a timing assertion: the numbers of a smoke run on a shared machine mean nothing.
// Needs root, like the harness. Arguments go on to run.js (e.g. --baseline DIR).
// Exit 0 ok, 1 harness failed or incomplete results.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

function main() {
  if (process.getuid && process.getuid() !== 0) {
    process.stderr.write('bench quick-check: needs root (the harness creates a network namespace)\n');
    return 1;
  }
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'nsproxy-bench-quick-'));
  try {
    const started = Date.now();
    const res = spawnSync(process.execPath, [path.join(__dirname, 'run.js'), '--quick', '--json-only', '--out', out, ...process.argv.slice(2)], {
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 240000,
    });
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    const file = path.join(out, 'latest-quick.json');
    if (!fs.existsSync(file)) {
      process.stderr.write(`bench quick-check: FAILED: the harness wrote no results (exit ${res.status}${res.signal ? ' ' + res.signal : ''}${res.error ? ', ' + res.error.message : ''}, ${secs}s)\n`);
      return 1;
    }
    /** @type {any} */
    const j = JSON.parse(fs.readFileSync(file, 'utf8'));
    const problems = [];
    const args = process.argv.slice(2);
    for (const p of j.peers) {
      for (const w of j.workloads) {
        if (!w.peers.includes(p.id)) continue; // e.g. no cold start for direct
        const runs = j.runs.filter((/** @type {any} */ r) => r.peer === p.id && r.workload === w.id);
        if (!runs.length) {
          problems.push(`${w.id} × ${p.id}: did not run`);
          continue;
        }
        for (const r of runs) {
          if (!r.ok) {
            problems.push(`${w.id} × ${p.id}: ${r.error}`);
            continue;
          }
          if (r.proxyExit) problems.push(`${w.id} × ${p.id}: the proxy exited during the run (${r.proxyExit})`);
          for (const m of w.metrics) {
            if (p.id === 'direct' && m.proxyOnly) continue;
            if (m.overDirect && !j.peers.some((/** @type {any} */ q) => q.id === 'direct')) continue; // needs direct's number
            const v = r.values[m.id];
            if (typeof v !== 'number' || !Number.isFinite(v)) problems.push(`${w.id} × ${p.id}: no number for ${m.id} (${v})`);
          }
        }
      }
    }
    const expectedWorkloads = ['iperf1', 'iperf4', 'pingpong', 'pingpong1cpu', 'connrate1', 'connrate16', 'pgbench', 'idle', 'coldstart', 'idlerss'];
    const ran = j.workloads.map((/** @type {any} */ w) => w.id);
    const narrowed = args.some((a) => /^--(workloads|skip-pgbench|peers)\b/.test(a));
    if (!narrowed) for (const w of expectedWorkloads) if (!ran.includes(w)) problems.push(`workload ${w} was not run`);
    problems.push(...checkVariants(j, args, narrowed));
    if (!j.markdown || !j.markdown.includes('| metric |')) problems.push('no markdown table in the results');
    if (!fs.existsSync(path.join(out, 'latest-quick.svg'))) problems.push('no SVG chart written');
    if (res.status !== 0) problems.push(`the harness exited with ${res.status}${res.signal ? ' ' + res.signal : ''}`);
    if (problems.length) {
      process.stderr.write(`bench quick-check: FAILED (${secs}s):\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
      return 1;
    }
    const leftOut = j.leftOut.map((/** @type {any} */ l) => `; ${l.label} left out: this build does not know ${l.options.join(' ')}`).join('');
    process.stderr.write(`bench quick-check: ok: ${j.peers.length} peers (${j.peers.map((/** @type {any} */ p) => p.label).join(', ')}) × ${j.workloads.length} workloads, every metric has a number${leftOut} (${secs}s)\n`);
    return 0;
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

/**
 * The nsproxy variants: each default one ran or was left out only for an option this build
 * does not know; each that ran made the new rows' workloads and has its ratio column.
 * @param {any} j the results
 * @param {string[]} args
 * @param {boolean} narrowed --peers or --workloads given
 */
function checkVariants(j, args, narrowed) {
  const problems = [];
  const ran = j.peers.map((/** @type {any} */ p) => p.id);
  for (const l of j.leftOut) {
    if (!l.tolerated) problems.push(`${l.label} did not start: ${l.error}`);
  }
  if (!args.some((a) => a.startsWith('--variants')) && !narrowed) {
    for (const id of ['nsproxy', 'nsproxy-sockmap', 'nsproxy-splice']) {
      if (!ran.includes(id) && !j.leftOut.some((/** @type {any} */ l) => l.peer === id)) problems.push(`default variant ${id} neither ran nor was reported left out`);
    }
  }
  if (args.some((a) => a.startsWith('--baseline')) && !ran.includes('nsproxy-baseline')) problems.push('--baseline given but nsproxy-baseline did not run');
  const variants = j.peers.filter((/** @type {any} */ p) => p.variant);
  const proxyd = ran.includes('socket-proxyd');
  for (const p of variants) {
    // the workloads every nsproxy peer runs even in --quick (one of each kind of row)
    for (const w of ['iperf1', 'pingpong', 'connrate16', 'pgbench']) {
      const wl = j.workloads.find((/** @type {any} */ x) => x.id === w);
      if (wl && !wl.peers.includes(p.id)) problems.push(`${w} × ${p.id}: not run`);
    }
    if (proxyd) {
      const col = j.ratios.find((/** @type {any} */ c) => c.a === p.id && c.b === 'socket-proxyd');
      if (!col) problems.push(`no "${p.label} ÷ socket-proxyd" column`);
      else if (!Object.values(col.byMetric).some((r) => r && typeof (/** @type {any} */ (r).ratio) === 'number')) problems.push(`"${col.title}" has no ratio`);
      if (col && !j.markdown.includes(`| ${col.title} |`)) problems.push(`the markdown has no "${col.title}" column`);
    }
  }
  if (ran.includes('nsproxy-baseline') && variants.length > 1 && !j.ratios.some((/** @type {any} */ c) => c.b === 'nsproxy-baseline')) problems.push('no ratio column against the baseline');
  return problems;
}

process.exitCode = main();
