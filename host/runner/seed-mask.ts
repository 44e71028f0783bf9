// Mask pairs seeded from the base model's attention: the block pairs to which the dense teacher
// gives more than a threshold of its attention, from its profile (EngineModel.attentionProfile,
// docs/metrics.md "Attention profile"). The engine keeps them after the static blocks
// (MaskSpec.seeded, BlockSource 'seeded').
import type { AttentionProfile, SeededPairs } from '../../native/engine-api';
import type { ModelChange } from '../../core/model-state';

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

/**
 * The Replace node's attention changes with seeded pairs recorded in each mask (so run state,
 * checkpoints and exports carry them), and one note per layer for the log.
 */
export function seedChanges(changes: ModelChange[], profile: AttentionProfile, heads: number, threshold: number): { changes: ModelChange[]; notes: string[] } {
  const notes: string[] = [];
  const seeded = changes.map((c) => {
    if (c.type !== 'attention' || !c.mask) return c;
    const s = seedPairs(profile.layers[c.layer].mass, heads, profile.mask_heads, profile.n_blocks, threshold);
    const pairs: number[] = [];
    s.pairs.forEach((v, i) => { if (v) pairs.push(i); });
    notes.push(`layer ${c.layer + 1} ${pairs.length} (${(100 * seededShare(s, profile.mask_heads)).toFixed(1)}%)`);
    return { ...c, mask: { ...c.mask, seed_from_teacher: { threshold, blocks: s.blocks, pairs } } };
  });
  return { changes: seeded, notes };
}
