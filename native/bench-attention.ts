// `sparse-studio bench attention`: block-sparse attention (forward + backward) against the dense
// kernel, measured in the same run. For each sequence length and target density it prints
//   {"bench":"attention","seq":..,"density":..,"ms_fwd":..,"ms_bwd":..,"ratio_to_dense":..,
//    "backward_over_forward":..,"dense_ms_fwd":..,"dense_ms_bwd":..,"dense_backward_over_forward":..}
// (--json, one line per measurement) or a table. density is the mask's actual density;
// ratio_to_dense = (ms_fwd + ms_bwd) / (dense ms_fwd + dense ms_bwd); backward_over_forward =
// ms_bwd / ms_fwd (FlashAttention-2's backward does 2.5x its forward's matmul work), and the
// dense_* fields give the dense kernel's times of the same run.
//
// Masks for a target density: one global block, a sliding window and random blocks. With those,
// query block i keeps min(i + 1, c) blocks for c = 2 + window + random, so the density depends
// on c alone; the c closest to the target is split about evenly between window and random.
// Times are the best of --reps interleaved rounds (dense, then every density, per round), so a
// noisy neighbour inflates neither side alone.
import type { MaskSpec } from '../core/schema';
import { SPARSE_ADDON_MISSING, sparseAddon } from './mask';

export interface AttentionBenchOptions {
  seqs: number[];
  densities: number[];
  heads: number;
  kvHeads: number;
  dim: number;
  batch: number;
  blockSize: number;
  reps: number;
  json: boolean;
}

export const DEFAULT_OPTIONS: AttentionBenchOptions = {
  seqs: [4096, 8192], densities: [1, 0.5, 0.25, 0.125, 0.0625], heads: 8, kvHeads: 8, dim: 64, batch: 1,
  blockSize: 64, reps: 3, json: false,
};

const USAGE = 'usage: sparse-studio bench attention [--json] [--seq N,N] [--density D,D] [--heads N] [--kv-heads N] [--dim N] [--batch N] [--block-size N] [--reps N]';

/** Parses the flags; throws a one-line message on bad usage. */
export function parseBenchArgs(args: string[]): AttentionBenchOptions {
  const o: AttentionBenchOptions = { ...DEFAULT_OPTIONS, seqs: [...DEFAULT_OPTIONS.seqs], densities: [...DEFAULT_OPTIONS.densities] };
  const ints = (flag: string, v: string | undefined): number[] => {
    const list = (v ?? '').split(',').map((x) => Number(x));
    if (!v || list.some((x) => !Number.isInteger(x) || x < 1)) throw new Error(`${flag}: expected positive integers, got ${v ?? 'nothing'}`);
    return list;
  };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = () => args[++i];
    switch (flag) {
      case '--json': o.json = true; break;
      case '--seq': o.seqs = ints(flag, value()); break;
      case '--density': {
        const v = value();
        const list = (v ?? '').split(',').map((x) => Number(x));
        if (!v || list.some((x) => !(x > 0 && x <= 1))) throw new Error(`--density: expected numbers in (0, 1], got ${v ?? 'nothing'}`);
        o.densities = list;
        break;
      }
      case '--heads': [o.heads] = ints(flag, value()); break;
      case '--kv-heads': [o.kvHeads] = ints(flag, value()); break;
      case '--dim': [o.dim] = ints(flag, value()); break;
      case '--batch': [o.batch] = ints(flag, value()); break;
      case '--block-size': [o.blockSize] = ints(flag, value()); break;
      case '--reps': [o.reps] = ints(flag, value()); break;
      default: throw new Error(`unknown argument: ${flag}`);
    }
  }
  if (o.heads % o.kvHeads !== 0) throw new Error(`--heads: must be a multiple of --kv-heads (${o.kvHeads}), got ${o.heads}`);
  const bs = o.blockSize;
  if (bs < 16 || bs > 256 || (bs & (bs - 1)) !== 0) throw new Error(`--block-size: must be a power of two in [16, 256], got ${bs}`);
  return o;
}

/** Density of a mask whose query block i keeps min(i + 1, c) of n blocks. */
export function densityForKept(c: number, n: number): number {
  let kept = 0;
  for (let i = 0; i < n; i++) kept += Math.min(i + 1, c);
  return kept / ((n * (n + 1)) / 2);
}

/** Global + window + random mask spec whose density is closest to `target`. */
export function maskForDensity(target: number, seq: number, blockSize: number): MaskSpec {
  const n = Math.ceil(seq / blockSize);
  let best = 1;
  for (let c = 1; c <= n; c++) if (Math.abs(densityForKept(c, n) - target) < Math.abs(densityForKept(best, n) - target)) best = c;
  const spec: MaskSpec = {
    block_size: blockSize, global_blocks: 0, global_rows: 0, window_blocks: 0, random_blocks: 0, random_seed: 1,
    topk_blocks: 0, selector: 'none', dense_below: 0, share_gqa_group: true,
  };
  if (best >= n) return { ...spec, window_blocks: n };  // every causal block
  if (best >= 2) {
    const rest = best - 2;  // beyond the diagonal and the global block
    spec.global_blocks = 1;
    spec.window_blocks = Math.floor(rest / 2);
    spec.random_blocks = rest - spec.window_blocks;
  }
  return spec;
}

export interface AttentionBenchRow {
  bench: 'attention'; seq: number; density: number; ms_fwd: number; ms_bwd: number; ratio_to_dense: number;
  backward_over_forward: number; dense_ms_fwd: number; dense_ms_bwd: number; dense_backward_over_forward: number;
}

const round = (x: number, digits: number) => Number(x.toFixed(digits));

/** Runs the sweep; calls `emit` after each measurement. */
export async function benchAttention(o: AttentionBenchOptions, emit: (row: AttentionBenchRow) => void): Promise<AttentionBenchRow[]> {
  const a = sparseAddon();
  const rows: AttentionBenchRow[] = [];
  for (const seq of o.seqs) {
    const dims = { seq, heads: o.heads, kvHeads: o.kvHeads, dim: o.dim, batch: o.batch, reps: 1 };
    // Interleaved rounds: each round times the dense kernel and every density once; each
    // configuration keeps its fastest round, so load from other processes hits all of them alike.
    const specs = o.densities.map((d) => maskForDensity(d, seq, o.blockSize));
    const dense = { ms_fwd: Infinity, ms_bwd: Infinity };
    const sparse = specs.map(() => ({ msFwd: Infinity, msBwd: Infinity, density: 1 }));
    for (let round = 0; round < o.reps; round++) {
      const d = await a.benchAttention({ ...dims, spec: null });
      dense.ms_fwd = Math.min(dense.ms_fwd, d.msFwd);
      dense.ms_bwd = Math.min(dense.ms_bwd, d.msBwd);
      for (let i = 0; i < specs.length; i++) {
        const m = await a.benchAttention({ ...dims, spec: specs[i] });
        sparse[i] = { msFwd: Math.min(sparse[i].msFwd, m.msFwd), msBwd: Math.min(sparse[i].msBwd, m.msBwd), density: m.density };
      }
    }
    for (const s of sparse) {
      const row: AttentionBenchRow = {
        bench: 'attention', seq, density: round(s.density, 4), ms_fwd: round(s.msFwd, 2), ms_bwd: round(s.msBwd, 2),
        ratio_to_dense: round((s.msFwd + s.msBwd) / (dense.ms_fwd + dense.ms_bwd), 4),
        backward_over_forward: round(s.msBwd / s.msFwd, 3),
        dense_ms_fwd: round(dense.ms_fwd, 2), dense_ms_bwd: round(dense.ms_bwd, 2),
        dense_backward_over_forward: round(dense.ms_bwd / dense.ms_fwd, 3),
      };
      rows.push(row);
      emit(row);
    }
  }
  return rows;
}

/** CLI entry: exit 0 on success, 1 when the engine fails, 2 on bad usage or a missing addon. */
export async function runAttentionBench(args: string[]): Promise<number> {
  let o: AttentionBenchOptions;
  try {
    o = parseBenchArgs(args);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  try {
    if (!o.json) {
      process.stdout.write(`block-sparse attention vs dense: B=${o.batch} H=${o.heads} Hkv=${o.kvHeads} D=${o.dim} block ${o.blockSize}, best of ${o.reps}\n`);
      process.stdout.write(`${'seq'.padStart(6)} ${'density'.padStart(8)} ${'ms_fwd'.padStart(10)} ${'ms_bwd'.padStart(10)} ${'bwd/fwd'.padStart(8)} ${'ratio'.padStart(7)} ${'target'.padStart(7)}\n`);
    }
    let lastSeq = -1;
    await benchAttention(o, (row) => {
      if (o.json) {
        process.stdout.write(`${JSON.stringify(row)}\n`);
        return;
      }
      if (row.seq !== lastSeq) {
        process.stdout.write(`${String(row.seq).padStart(6)} ${'dense'.padStart(8)} ${row.dense_ms_fwd.toFixed(1).padStart(10)} ${row.dense_ms_bwd.toFixed(1).padStart(10)} ${row.dense_backward_over_forward.toFixed(2).padStart(8)}\n`);
        lastSeq = row.seq;
      }
      const target = 1.15 * row.density + 0.05;
      process.stdout.write(`${String(row.seq).padStart(6)} ${row.density.toFixed(4).padStart(8)} ${row.ms_fwd.toFixed(1).padStart(10)} ${row.ms_bwd.toFixed(1).padStart(10)} ${row.backward_over_forward.toFixed(2).padStart(8)} ${row.ratio_to_dense.toFixed(3).padStart(7)} ${(row.ratio_to_dense <= target ? '<=' : '> ') + target.toFixed(3)}\n`);
    });
    return 0;
  } catch (e) {
    const message = (e as Error).message;
    process.stderr.write(`bench attention: ${message}\n`);
    return message === SPARSE_ADDON_MISSING ? 2 : 1;
  }
}
