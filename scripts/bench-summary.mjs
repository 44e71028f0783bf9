// One row per target of the performance issue, from the benches' JSON lines (host/commands/bench.ts,
// native/bench-attention.ts, scripts/bench-ui.mjs). A row whose bench did not run or had no
// reference says so (value null, `missing`), never a made-up number.

/** Targets (docs/metrics.md "Benchmarks"): op and bound of each row's value. */
export const TARGETS = {
  gemm: { op: '>=', bound: 0.9 },
  attention_dense: { op: '<=', bound: 2.6 },
  attention_sparse: { op: '<=', bound: 2.6 },
  train: { op: '>=', bound: 0.7 },
  ui: { op: '<', bound: 50 },
};

const meets = (key, value) => {
  const t = TARGETS[key];
  if (value === null || value === undefined || !Number.isFinite(value)) return null;
  return t.op === '>=' ? value >= t.bound : t.op === '<=' ? value <= t.bound : value < t.bound;
};

function row(key, what, value, detail, missing) {
  return { key, what, value: value ?? null, target: `${TARGETS[key].op} ${TARGETS[key].bound}`, meets: meets(key, value), detail, ...(value == null ? { missing } : {}) };
}

/** records: { gemm: lines[], attention: lines[], train: lines[], ui: lines[] } (absent = not run). */
export function summarize(records) {
  const rows = [];
  const gemm = (records.gemm ?? []).find((l) => l.bench === 'gemm_geomean');
  rows.push(row('gemm', 'GEMM, ours / OpenBLAS (geometric mean)', gemm?.ratio,
    gemm ? `${gemm.shapes} shapes, reference ${gemm.reference ?? 'none'}` : '', records.gemm ? 'OpenBLAS not installed (apt-get install libopenblas0-pthread)' : 'not run'));
  const att = (records.attention ?? []).filter((l) => l.bench === 'attention');
  const dense = att.length ? Math.max(...att.map((l) => l.dense_backward_over_forward)) : null;
  const sparse = att.filter((l) => l.density < 1);
  const worst = sparse.length ? sparse.reduce((a, b) => (b.backward_over_forward > a.backward_over_forward ? b : a)) : null;
  const seq = att.length ? Math.max(...att.map((l) => l.seq)) : null;
  rows.push(row('attention_dense', 'attention backward / forward, dense', dense, seq ? `T=${seq}` : '', 'not run'));
  rows.push(row('attention_sparse', 'attention backward / forward, block-sparse (worst density)', worst?.backward_over_forward,
    worst ? `T=${worst.seq}, density ${worst.density}` : '', 'not run'));
  const train = (records.train ?? []).find((l) => l.bench === 'train');
  rows.push(row('train', "training FLOP rate / our GEMM's rate", train?.gemm_share,
    train ? `${train.tokens_per_s} tokens/s, ${train.gflops} of ${train.gemm_gflops} GFLOP/s` : '', 'not run'));
  const ui = (records.ui ?? []).find((l) => l.bench === 'ui-monitor-redraw');
  rows.push(row('ui', 'monitor redraw, median ms', ui?.redrawMedianMs,
    ui ? `${ui.seriesDrawn} series x ${ui.steps} points; ${ui.streamStepsDrawn}/${ui.streamStepsSent} streamed steps drawn` : '', 'not run'));
  return rows;
}

export function formatSummary(rows) {
  const fmt = (v) => (v === null ? '-' : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(3));
  const width = Math.max(...rows.map((r) => r.what.length));
  return rows.map((r) => `${r.what.padEnd(width)}  ${fmt(r.value).padStart(7)}  target ${r.target.padEnd(7)}  ${r.meets === null ? 'n/a ' : r.meets ? 'met ' : 'MISS'}  ${r.value === null ? r.missing : r.detail}`).join('\n');
}
