// Block-mask preview for the Replace inspector: a pure TS mirror of the static mask rules of
// native/src/block_mask.h (the renderer cannot load native code).
//
// Design choices:
// - Same rules and order of reasons as the engine: dense below `dense_below`; else diagonal,
//   global key blocks, global rows, window, then random extras drawn among the causal blocks
//   not kept yet, then top-k extras.
// - Random blocks use splitmix64 seeded per (seed, layer, mask head, query block) and a partial
//   Fisher-Yates draw over the ascending free blocks, exactly as native/src/block_mask.cpp does
//   (mask-preview.native.test.ts holds the two to the same positions; change both together).
// - Top-k blocks are picked from run-time scores, so the preview cannot place them: the row's
//   remaining causal blocks are drawn as "top-k candidates" and k of them count toward density.
import type { MaskSpec } from '../../core/schema';
import type { MaskKeep } from '../../core/attention-bound';

export const enum Source { Skipped = 0, Dense = 1, Diagonal = 2, Global = 3, GlobalRow = 4, Window = 5, Random = 6, TopK = 7, TopKCandidate = 8 }

export const SOURCE_NAMES: Record<number, string> = {
  0: 'skipped', 1: 'dense', 2: 'diagonal', 3: 'global', 4: 'global row', 5: 'window', 6: 'random', 7: 'top-k', 8: 'top-k candidate',
};

export interface MaskPreview {
  seqLen: number;
  nBlocks: number;
  /** (nBlocks, nBlocks) row-major Source codes; row = query block, column = key block. */
  source: Uint8Array;
  /** Kept causal block pairs / all causal block pairs, counting k top-k blocks per row. */
  density: number;
  /** Top-k blocks per row that will be chosen at run time (not placed in `source`). */
  topkPerRow: number[];
  dense: boolean;
}

const MASK64 = (1n << 64n) - 1n;

/** splitmix64 step on a BigInt state; returns [next state, output]. */
export function splitmix64(state: bigint): [bigint, bigint] {
  const next = (state + 0x9E3779B97F4A7C15n) & MASK64;
  let z = next;
  z = ((z ^ (z >> 30n)) * 0xBF58476D1CE4E5B9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94D049BB133111EBn) & MASK64;
  return [next, z ^ (z >> 31n)];
}

/** Seed of the random draw of one mask row (mirrors the engine's per-row seeding). */
export function rowSeed(seed: number, layer: number, maskHead: number, queryBlock: number): bigint {
  let state = BigInt.asUintN(64, BigInt(seed));
  let out: bigint;
  for (const part of [layer, maskHead, queryBlock]) {
    [state, out] = splitmix64(state ^ BigInt.asUintN(64, BigInt(part)));
    state = out;
  }
  return state;
}

export function previewMask(spec: MaskSpec, seqLen: number, layer = 0, maskHead = 0): MaskPreview {
  const n = Math.max(1, Math.ceil(seqLen / spec.block_size));
  const source = new Uint8Array(n * n);
  const topkPerRow = new Array<number>(n).fill(0);
  const dense = seqLen < spec.dense_below;
  let kept = 0;
  for (let q = 0; q < n; q++) {
    const row = q * n;
    if (dense) {
      for (let k = 0; k <= q; k++) source[row + k] = Source.Dense;
      kept += q + 1;
      continue;
    }
    for (let k = 0; k <= q; k++) {
      let reason = Source.Skipped;
      if (k === q) reason = Source.Diagonal;
      else if (k < spec.global_blocks) reason = Source.Global;
      else if (q < spec.global_rows) reason = Source.GlobalRow;
      else if (k >= q - spec.window_blocks) reason = Source.Window;
      source[row + k] = reason;
    }
    const free: number[] = [];
    for (let k = 0; k <= q; k++) if (source[row + k] === Source.Skipped) free.push(k);
    // Partial Fisher-Yates over the free blocks: `random_blocks` distinct draws.
    const draws = Math.min(spec.random_blocks, free.length);
    let state = rowSeed(spec.random_seed, layer, maskHead, q);
    for (let i = 0; i < draws; i++) {
      let out: bigint;
      [state, out] = splitmix64(state);
      const j = i + Number(out % BigInt(free.length - i));
      [free[i], free[j]] = [free[j], free[i]];
      source[row + free[i]] = Source.Random;
    }
    const remaining = free.length - draws;
    const topk = spec.selector === 'none' ? 0 : Math.min(spec.topk_blocks, remaining);
    topkPerRow[q] = topk;
    if (topk > 0) for (let i = draws; i < free.length; i++) source[row + free[i]] = Source.TopKCandidate;
    let rowKept = topk;
    for (let k = 0; k <= q; k++) {
      const s = source[row + k];
      if (s !== Source.Skipped && s !== Source.TopKCandidate) rowKept++;
    }
    kept += rowKept;
  }
  const causal = (n * (n + 1)) / 2;
  return { seqLen, nBlocks: n, source, density: kept / causal, topkPerRow, dense };
}

/**
 * What a mask keeps at `seqLen` for every one of its `maskHeads` mask heads, as the attention-KL
 * bound reads it (core/attention-bound.ts): static blocks (dense, diagonal, global, window,
 * random) per head, and the top-k blocks each row adds at run time. Null for a mask seeded from
 * the teacher (seed_from_teacher): this preview does not place seeded pairs, and the engine draws
 * random blocks among the blocks they leave free, so its static blocks are not known here.
 */
export function maskKeep(spec: MaskSpec, seqLen: number, layer: number, maskHeads: number): MaskKeep | null {
  if (spec.seed_from_teacher && seqLen >= spec.dense_below) return null;
  const kept: Uint8Array[] = [];
  let preview: MaskPreview | null = null;
  for (let m = 0; m < maskHeads; m++) {
    preview = previewMask(spec, seqLen, layer, m);
    kept.push(preview.source.map((s) => (s !== Source.Skipped && s !== Source.TopKCandidate && s !== Source.TopK ? 1 : 0)));
  }
  if (!preview) throw new Error('maskKeep: needs at least one mask head');
  return { kept, dynamicPerRow: preview.topkPerRow, density: preview.density };
}
