#!/usr/bin/env node
// @ts-check
// bench/quick-check.js — proves the benchmark harness works: runs `bench/run.js --quick` into a
// temp dir and exits non-zero unless every peer ran every workload and produced a number for
// every metric. Never a timing assertion: the numbers of a smoke run on a shared machine mean
// nothing. Needs root, like the harness. Exit 0 ok, 1 harness failed or incomplete results.
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
      timeout: 180000,
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
    for (const p of j.peers) {
      for (const w of j.workloads) {
        if (w.peers && !w.peers.includes(p.id)) continue;  // e.g. no cold start for direct
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
            const v = r.values[m.id];
            if (typeof v !== 'number' || !Number.isFinite(v)) problems.push(`${w.id} × ${p.id}: no number for ${m.id} (${v})`);
          }
        }
      }
    }
    const expectedWorkloads = ['iperf1', 'iperf4', 'pingpong', 'pingpong1cpu', 'connrate1', 'connrate16', 'pgbench', 'idle', 'coldstart', 'idlerss'];
    const ran = j.workloads.map((/** @type {any} */ w) => w.id);
    for (const w of expectedWorkloads) if (!ran.includes(w) && !process.argv.slice(2).length) problems.push(`workload ${w} was not run`);
    if (!j.markdown || !j.markdown.includes('| metric |')) problems.push('no markdown table in the results');
    if (!fs.existsSync(path.join(out, 'latest-quick.svg'))) problems.push('no SVG chart written');
    if (res.status !== 0) problems.push(`the harness exited with ${res.status}${res.signal ? ' ' + res.signal : ''}`);
    if (problems.length) {
      process.stderr.write(`bench quick-check: FAILED (${secs}s):\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
      return 1;
    }
    process.stderr.write(`bench quick-check: ok: ${j.peers.length} peers × ${j.workloads.length} workloads, every metric has a number (${secs}s)\n`);
    return 0;
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

process.exitCode = main();
