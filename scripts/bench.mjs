#!/usr/bin/env node
// `npm run bench [-- gemm attention train ui] [-- --json]`: every benchmark in one run, so the
// ratios compare numbers measured on the same machine at the same time, then one summary table
// of how close each kernel runs to its reference (targets: docs/metrics.md "Benchmarks"):
// GEMM vs OpenBLAS (geometric mean over the shapes), attention backward / forward (dense and
// block-sparse), training's FLOP rate as a share of our GEMM's, and the monitor's redraw time.
// Each bench's own table is printed as it runs; with --json only the summary object is printed.
// Nothing here asserts a time.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { summarize, formatSummary } from './bench-summary.mjs';

const root = new URL('..', import.meta.url).pathname;
const cli = join(root, 'bin/sparse-studio.mjs');
const args = process.argv.slice(2);
const json = args.includes('--json');
const names = args.filter((a) => a !== '--json');
const benches = names.length ? names : ['gemm', 'attention', 'train', 'ui'];

/** The bench's JSON lines (its stdout with --json); null when it failed. */
function runJson(command, commandArgs) {
  const r = spawnSync(process.execPath, [...command, ...commandArgs], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  const lines = (r.stdout ?? '').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  return r.status === 0 ? lines : null;
}

const BENCH_ARGS = {
  gemm: [],
  // The sizes: T = 8192, dense and three densities.
  attention: ['--seq', '8192', '--density', '1,0.25,0.0625', '--reps', '3'],
  train: [],
};

const records = {};
let failed = 0;
for (const name of benches) {
  if (!json) console.log(`\n# bench ${name}`);
  let lines;
  if (name === 'ui') {
    const ui = join(root, 'scripts/bench-ui.mjs');
    lines = existsSync(ui) ? runJson([ui], []) : null;
  } else if (name in BENCH_ARGS) {
    lines = runJson([cli, 'bench', name], ['--json', ...BENCH_ARGS[name]]);
  } else {
    console.error(`bench: unknown benchmark '${name}' (gemm, attention, train or ui)`);
    process.exit(2);
  }
  if (lines === null) failed++;
  else if (!json) for (const l of lines) console.log(JSON.stringify(l));
  records[name] = lines ?? [];
}

const summary = summarize(records);
if (json) console.log(JSON.stringify({ bench: 'summary', rows: summary }));
else console.log(`\n# summary\n${formatSummary(summary)}`);
process.exit(failed ? 1 : 0);
