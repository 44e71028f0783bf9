// Block masks from TypeScript: builds the engine's mask for a MaskSpec (native/src/block_mask.h)
// and returns every representation the studio uses: the InfLLM-style bitmap, the per-query-block
// key lists and their transpose, FlexAttention BlockMask arrays, and a per-block "source" map
// (why each block is kept) for the editor's heatmap.
//
// Design choices:
// - One builder, the engine's: the editor, the exporter and the trainer see the same mask.
// - Top-k blocks depend on run-time scores. Pass `scores` (e.g. from pooledBlockScores) to place
//   them; without scores the top-k slots are filled from seeded stand-in scores so the preview
//   shows the right density, and the result says so (`topkPreview: true`).
// - Arguments are checked here with one-line messages naming the field; the addon re-checks the
//   spec and throws `mask.<field>: ...` for a bad one.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import type { MaskSpec } from '../core/schema';
import type { EngineMaskSpec } from './engine-api';

/** Why a block pair is kept; the codes of native/src/block_mask.h BlockSource. */
export enum BlockSource { Skipped = 0, Dense = 1, Diagonal = 2, Global = 3, GlobalRow = 4, Window = 5, Random = 6, TopK = 7, Seeded = 8 }
export const BLOCK_SOURCE_NAMES: Record<BlockSource, string> = {
  [BlockSource.Skipped]: 'skipped', [BlockSource.Dense]: 'dense', [BlockSource.Diagonal]: 'diagonal',
  [BlockSource.Global]: 'global', [BlockSource.GlobalRow]: 'global row', [BlockSource.Window]: 'window',
  [BlockSource.Random]: 'random', [BlockSource.TopK]: 'top-k', [BlockSource.Seeded]: 'seeded',
};

/**
 * FlexAttention BlockMask arrays (torch.nn.attention.flex_attention.BlockMask.from_kv_blocks):
 * every kept block is a partial block, to be used with a causal mask_mod (q_idx >= kv_idx), which
 * also handles the diagonal and the tail block. Shapes: kv_num_blocks (1, heads, qBlocks),
 * kv_indices (1, heads, qBlocks, kvBlocks), q_num_blocks (1, heads, kvBlocks), q_indices
 * (1, heads, kvBlocks, qBlocks). Index rows list kept blocks ascending, then the rest ascending.
 */
export interface FlexArrays {
  heads: number; qBlocks: number; kvBlocks: number; blockSize: number; seqLen: number;
  kvNumBlocks: Int32Array; kvIndices: Int32Array; qNumBlocks: Int32Array; qIndices: Int32Array;
}

export interface BuiltMask {
  seq: number;
  blockSize: number;
  nBlocks: number;
  /** kvHeads when the GQA group shares its mask, else heads. Query head h uses mask head h / (heads / nMaskHeads). */
  nMaskHeads: number;
  /** Built dense by the short/long switch (seq < dense_below). */
  dense: boolean;
  /** Kept causal block pairs / all causal block pairs. */
  density: number;
  /** Share of causal token-pair dot products skipped. */
  flopsSaved: number;
  /** InfLLM-style bitmap: `words` uint64 per (mask head, query block) row; bit j%64 of word j/64 = key block j. */
  bitmap: { words: number; bits: BigUint64Array };
  /** CSR lists: row r = head * nBlocks + query block -> key blocks kvIdx[kvPtr[r]..kvPtr[r+1]] (ascending);
   *  column c = head * nBlocks + key block -> query blocks qIdx[qPtr[c]..qPtr[c+1]]. */
  lists: { kvPtr: Int32Array; kvIdx: Int32Array; qPtr: Int32Array; qIdx: Int32Array };
  flex: FlexArrays;
  /** (nMaskHeads, nBlocks, nBlocks) BlockSource codes, row = query block. */
  source: Uint8Array;
  /** True when top-k blocks were placed from stand-in scores (no scores given). */
  topkPreview: boolean;
}

export interface BuildMaskOptions {
  seq: number;
  heads: number;
  kvHeads: number;
  /** 0-based layer: seeds the random blocks together with spec.random_seed. */
  layer?: number;
  /** (nMaskHeads, nBlocks, nBlocks) selector scores for the top-k blocks (causal entries read). */
  scores?: Float32Array;
}

interface RawMask {
  seq: number; blockSize: number; nBlocks: number; nMaskHeads: number; words: number; dense: boolean;
  density: number; flopsSaved: number; bits: BigUint64Array; kvPtr: Int32Array; kvIdx: Int32Array;
  qPtr: Int32Array; qIdx: Int32Array; source: Uint8Array;
  flex: { heads: number; kvNumBlocks: Int32Array; kvIndices: Int32Array; qNumBlocks: Int32Array; qIndices: Int32Array };
}

export interface SparseAddon {
  maskBuild(spec: MaskSpec, seq: number, heads: number, kvHeads: number, layer: number, scores?: Float32Array): RawMask;
  maskFromBits(bits: BigUint64Array, seq: number, blockSize: number, nMaskHeads: number): RawMask;
  pooledBlockScores(q: Float32Array, k: Float32Array, heads: number, kvHeads: number, seq: number, dim: number,
    blockSize: number, shared: boolean): Float32Array;
  infllmv2Select(q: Float32Array, k: Float32Array, heads: number, kvHeads: number, seq: number, dim: number, spec: MaskSpec): TokenSelection;
  selectorAttention?(spec: MaskSpec, layer: number, q: Float32Array, k: Float32Array, v: Float32Array, heads: number, kvHeads: number,
    seq: number, dim: number, indexer?: IndexerInput): SelectorAttention;
  benchAttention(options: { spec: MaskSpec | null; seq: number; heads: number; kvHeads: number; dim: number; batch: number; reps: number }):
    Promise<{ msFwd: number; msBwd: number; density: number }>;
}

export const SPARSE_ADDON_MISSING = 'engine addon not built: run npm install (node-gyp)';
const ADDON_PATH = new URL('./build/Release/sparse_engine.node', import.meta.url).pathname;
let cached: SparseAddon | null | undefined;

/** The addon's block-sparse functions; throws a one-line error when the addon is not built. */
export function sparseAddon(): SparseAddon {
  if (cached === undefined) {
    cached = null;
    if (existsSync(ADDON_PATH)) {
      try {
        const a = createRequire(import.meta.url)(ADDON_PATH) as Partial<SparseAddon>;
        if (typeof a.maskBuild === 'function' && typeof a.benchAttention === 'function') cached = a as SparseAddon;
      } catch {
        cached = null; // a stale or foreign binary counts as not built
      }
    }
  }
  if (!cached) throw new Error(SPARSE_ADDON_MISSING);
  return cached;
}

function positiveInt(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new Error(`${field}: must be an integer >= 1, got ${String(value)}`);
  return value;
}

function fromRaw(raw: RawMask, topkPreview: boolean): BuiltMask {
  return {
    seq: raw.seq, blockSize: raw.blockSize, nBlocks: raw.nBlocks, nMaskHeads: raw.nMaskHeads, dense: raw.dense,
    density: raw.density, flopsSaved: raw.flopsSaved,
    bitmap: { words: raw.words, bits: raw.bits },
    lists: { kvPtr: raw.kvPtr, kvIdx: raw.kvIdx, qPtr: raw.qPtr, qIdx: raw.qIdx },
    flex: {
      heads: raw.flex.heads, qBlocks: raw.nBlocks, kvBlocks: raw.nBlocks, blockSize: raw.blockSize, seqLen: raw.seq,
      kvNumBlocks: raw.flex.kvNumBlocks, kvIndices: raw.flex.kvIndices, qNumBlocks: raw.flex.qNumBlocks, qIndices: raw.flex.qIndices,
    },
    source: raw.source,
    topkPreview,
  };
}

/** Seeded stand-in selector scores (splitmix64 of seed and layer), for previews without data. */
export function previewScores(nMaskHeads: number, nBlocks: number, seed: number, layer: number): Float32Array {
  const out = new Float32Array(nMaskHeads * nBlocks * nBlocks);
  let state = (BigInt.asUintN(64, BigInt(seed)) ^ (BigInt(layer) << 32n)) & 0xFFFFFFFFFFFFFFFFn;
  for (let i = 0; i < out.length; i++) {
    state = (state + 0x9E3779B97F4A7C15n) & 0xFFFFFFFFFFFFFFFFn;
    let z = state;
    z = ((z ^ (z >> 30n)) * 0xBF58476D1CE4E5B9n) & 0xFFFFFFFFFFFFFFFFn;
    z = ((z ^ (z >> 27n)) * 0x94D049BB133111EBn) & 0xFFFFFFFFFFFFFFFFn;
    out[i] = Number((z ^ (z >> 31n)) >> 40n);
  }
  return out;
}

/**
 * The engine's seeded pairs from the pairs a run recorded in mask.seed_from_teacher (flat indices
 * m * blocks^2 + i * blocks + j over `maskHeads` mask heads); the mask unchanged when it has none
 * or already carries `seeded`.
 */
export function withRecordedSeed(mask: EngineMaskSpec, maskHeads: number): EngineMaskSpec {
  const seed = mask.seed_from_teacher;
  if (mask.seeded || !seed || seed.blocks === undefined || seed.pairs === undefined) return mask;
  const size = maskHeads * seed.blocks * seed.blocks;
  const pairs = new Uint8Array(size);
  for (const p of seed.pairs) {
    if (!Number.isInteger(p) || p < 0 || p >= size) throw new Error(`mask.seed_from_teacher.pairs: ${p} is outside [0, ${size})`);
    pairs[p] = 1;
  }
  return { ...mask, seeded: { blocks: seed.blocks, pairs } };
}

/** Builds the mask of one layer for `seq` tokens with `heads` query and `kvHeads` KV heads. */
export function buildMask(spec: MaskSpec, options: BuildMaskOptions): BuiltMask {
  const seq = positiveInt(options.seq, 'seq');
  const heads = positiveInt(options.heads, 'heads');
  const kvHeads = positiveInt(options.kvHeads, 'kvHeads');
  if (heads % kvHeads !== 0) throw new Error(`heads: must be a multiple of kvHeads (${kvHeads}), got ${heads}`);
  const layer = options.layer ?? 0;
  if (!Number.isInteger(layer) || layer < 0) throw new Error(`layer: must be an integer >= 0, got ${String(layer)}`);
  if (typeof spec !== 'object' || spec === null) throw new Error('mask: must be an object');
  const a = sparseAddon();
  const needsScores = spec.topk_blocks > 0 && spec.selector !== 'none' && seq >= spec.dense_below;
  let scores = options.scores;
  let preview = false;
  if (needsScores && !scores && Number.isInteger(spec.block_size) && spec.block_size > 0) {
    const nBlocks = Math.ceil(seq / spec.block_size);
    scores = previewScores(spec.share_gqa_group ? kvHeads : heads, nBlocks, spec.random_seed, layer);
    preview = true;
  }
  const engineSpec = withRecordedSeed(spec, spec.share_gqa_group ? kvHeads : heads);
  return fromRaw(a.maskBuild(engineSpec, seq, heads, kvHeads, layer, scores), preview);
}

/** A mask from an InfLLM-style bitmap (nMaskHeads, nBlocks, words); the diagonal is added. */
export function maskFromBitmap(bits: BigUint64Array, seq: number, blockSize: number, nMaskHeads: number): BuiltMask {
  positiveInt(seq, 'seq');
  positiveInt(blockSize, 'blockSize');
  positiveInt(nMaskHeads, 'nMaskHeads');
  return fromRaw(sparseAddon().maskFromBits(bits, seq, blockSize, nMaskHeads), false);
}

/** Pooled-key block scores of one sequence: q (heads, seq, dim), k (kvHeads, seq, dim). */
export function pooledScores(q: Float32Array, k: Float32Array, dims: { heads: number; kvHeads: number; seq: number; dim: number },
  blockSize: number, sharedByGroup: boolean): Float32Array {
  return sparseAddon().pooledBlockScores(q, k, dims.heads, dims.kvHeads, dims.seq, dims.dim, blockSize, sharedByGroup);
}

/** InfLLM-V2 per-token block selection of one sequence (native/src/block_selector.h (c)). */
export interface TokenSelection {
  kMax: number;
  /** The sequence is shorter than dense_below: every causal block. */
  dense: boolean;
  /** Selected causal token pairs / all causal token pairs. */
  density: number;
  /** (kvHeads, seq, kMax) key blocks, ascending, padded with -1. */
  blocks: Int32Array;
  /** (kvHeads, seq) selected blocks per row. */
  count: Int32Array;
}

/** InfLLM-V2 block selection (spec.selector 'infllm_v2'): q (heads, seq, dim), k (kvHeads, seq, dim). */
export function infllmv2Selection(q: Float32Array, k: Float32Array, dims: { heads: number; kvHeads: number; seq: number; dim: number }, spec: MaskSpec): TokenSelection {
  return sparseAddon().infllmv2Select(q, k, dims.heads, dims.kvHeads, dims.seq, dims.dim, spec);
}

/** The normed layer input and the weights of a layer's trainable indexer (nn.Linear layouts). */
export interface IndexerInput { x: Float32Array; wq: Float32Array; wk: Float32Array; wh: Float32Array; channels: number }

/** One sequence through a layer's selection and sparse attention, as the model's forward runs it. */
export interface SelectorAttention {
  /** (heads, seq, dim) attention output and (heads, seq) log-sum-exp. */
  out: Float32Array;
  lse: Float32Array;
  /** The density the engine's evaluation reports for this selection (docs/metrics.md). */
  density: number;
  /** Block-level selectors: the mask's bitmap (mask heads, blocks, words). */
  bits?: BigUint64Array;
  words?: number;
  /** infllm_v2 (seq >= dense_below): the per-token selection, as TokenSelection. */
  kMax?: number;
  blocks?: Int32Array;
  count?: Int32Array;
}

/** q (heads, seq, dim), k and v (kvHeads, seq, dim) of one sequence; the indexer selector also needs `indexer`. */
export function selectorAttention(spec: MaskSpec, layer: number, q: Float32Array, k: Float32Array, v: Float32Array,
  dims: { heads: number; kvHeads: number; seq: number; dim: number }, indexer?: IndexerInput): SelectorAttention {
  const a = sparseAddon();
  if (!a.selectorAttention) throw new Error(`${SPARSE_ADDON_MISSING} (this build has no selectorAttention)`);
  return a.selectorAttention(spec, layer, q, k, v, dims.heads, dims.kvHeads, dims.seq, dims.dim, indexer);
}

/** FlexAttention arrays as plain JSON (shape + flat data), for export files. */
export function flexToJson(flex: FlexArrays): Record<string, unknown> {
  const arr = (shape: number[], data: Int32Array) => ({ shape, dtype: 'int32', data: Array.from(data) });
  return {
    format: 'torch.nn.attention.flex_attention.BlockMask.from_kv_blocks',
    mask_mod: 'causal',
    block_size: flex.blockSize,
    seq_len: flex.seqLen,
    kv_num_blocks: arr([1, flex.heads, flex.qBlocks], flex.kvNumBlocks),
    kv_indices: arr([1, flex.heads, flex.qBlocks, flex.kvBlocks], flex.kvIndices),
    q_num_blocks: arr([1, flex.heads, flex.kvBlocks], flex.qNumBlocks),
    q_indices: arr([1, flex.heads, flex.kvBlocks, flex.qBlocks], flex.qIndices),
  };
}

/** Kept (query block, key block) pairs of mask head `head`, for the heatmap: (nBlocks, nBlocks) 0/1. */
export function keptMatrix(mask: BuiltMask, head = 0): Uint8Array {
  const n = mask.nBlocks;
  if (!Number.isInteger(head) || head < 0 || head >= mask.nMaskHeads) throw new Error(`head: must be in [0, ${mask.nMaskHeads - 1}], got ${head}`);
  return Uint8Array.from(mask.source.subarray(head * n * n, (head + 1) * n * n), (s) => (s === BlockSource.Skipped ? 0 : 1));
}
