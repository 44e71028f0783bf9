// Mask pairs seeded from the base model's attention: the block pairs to which the dense teacher
// gives more than a threshold of its attention, from its profile (EngineModel.attentionProfile,
// docs/metrics.md "Attention profile"). The engine keeps them after the static blocks
// (MaskSpec.seeded, BlockSource 'seeded').
import type { SeededPairs } from '../../native/engine-api';

/**
 * Pairs (mask head, query block i, key block j < i) whose pooled teacher mass exceeds
 * `threshold` for at least one query head the mask head serves (query head h uses mask head
 * h / (heads / maskHeads)). `mass` is one layer's (heads, nBlocks, nBlocks) map. The diagonal is
 * left out: every mask keeps it.
 */
export function seedPairs(mass: Float64Array, heads: number, maskHeads: number, nBlocks: number, threshold: number): SeededPairs {
  if (maskHeads < 1 || heads % maskHeads !== 0) throw new Error(`seedPairs: ${maskHeads} mask heads do not divide ${heads} heads`);
  if (mass.length !== heads * nBlocks * nBlocks) throw new Error(`seedPairs: mass has ${mass.length} values, expected ${heads * nBlocks * nBlocks}`);
  const n = nBlocks;
  const pairs = new Uint8Array(maskHeads * n * n);
  const group = heads / maskHeads;
  for (let h = 0; h < heads; h++) {
    const m = Math.floor(h / group);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < i; j++) if (mass[(h * n + i) * n + j] > threshold) pairs[(m * n + i) * n + j] = 1;
  }
  return { blocks: n, pairs };
}

/** Seeded pairs / causal off-diagonal pairs: the share of the choosable blocks the seed keeps. */
export function seededShare(seed: SeededPairs, maskHeads: number): number {
  const n = seed.blocks;
  const off = (maskHeads * n * (n - 1)) / 2;
  let kept = 0;
  for (const v of seed.pairs) kept += v;
  return off > 0 ? kept / off : 0;
}
