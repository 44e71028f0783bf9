import { describe, expect, it } from 'vitest';
import { engine, engineAvailable } from '../../native/index';
import { buildMask } from '../../native/mask';
import { tinyConfig } from '../../native/checkpoint/testing/tiny';
import type { MaskSpec } from '../../core/schema';
import { seedPairs, seededShare } from './seed-mask';

const spec: MaskSpec = {
  block_size: 16, global_blocks: 0, global_rows: 0, window_blocks: 0, random_blocks: 0, random_seed: 0,
  topk_blocks: 0, selector: 'none', dense_below: 0, share_gqa_group: true,
};

describe('seedPairs', () => {
  it('keeps causal off-diagonal pairs above the threshold for any head of the group', () => {
    // 2 heads, 1 mask head (shared), 3 blocks.
    const mass = new Float64Array(2 * 9);
    mass[(0 * 3 + 2) * 3 + 0] = 0.3; // head 0: (2, 0)
    mass[(1 * 3 + 1) * 3 + 0] = 0.2; // head 1: (1, 0)
    mass[(1 * 3 + 2) * 3 + 1] = 0.05; // below
    mass[(0 * 3 + 2) * 3 + 2] = 0.9; // diagonal: never seeded
    const s = seedPairs(mass, 2, 1, 3, 0.1);
    expect(s.blocks).toBe(3);
    expect(Array.from(s.pairs)).toEqual([0, 0, 0, 1, 0, 0, 1, 0, 0]);
    expect(seededShare(s, 1)).toBeCloseTo(2 / 3, 12);
    const perHead = seedPairs(mass, 2, 2, 3, 0.1);
    expect(Array.from(perHead.pairs)).toEqual([0, 0, 0, 0, 0, 0, 1, 0, 0, /**/ 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    expect(() => seedPairs(mass, 2, 3, 3, 0.1)).toThrow('do not divide');
    expect(() => seedPairs(mass, 2, 1, 4, 0.1)).toThrow('expected 32');
  });
});

describe.skipIf(!engineAvailable())('seeded masks in the engine', () => {
  it('keeps the seeded pairs of the teacher profile, marked seeded', async () => {
    const pairs = new Uint8Array(2 * 4 * 4);
    pairs[(1 * 4 + 3) * 4 + 1] = 1;
    const built = buildMask({ ...spec, seeded: { blocks: 4, pairs } } as MaskSpec, { seq: 64, heads: 4, kvHeads: 2, layer: 0 });
    const plain = buildMask(spec, { seq: 64, heads: 4, kvHeads: 2, layer: 0 });
    expect(built.density).toBeGreaterThan(plain.density);
    expect(built.source[(1 * 4 + 3) * 4 + 1]).toBe(8);
    // The pairs a run records in seed_from_teacher build the same mask (exports go this way).
    const recorded = buildMask({ ...spec, seed_from_teacher: { threshold: 0.1, blocks: 4, pairs: [(1 * 4 + 3) * 4 + 1] } }, { seq: 64, heads: 4, kvHeads: 2, layer: 0 });
    expect(Array.from(recorded.source)).toEqual(Array.from(built.source));
    expect(() => buildMask({ ...spec, seed_from_teacher: { threshold: 0.1, blocks: 4, pairs: [32] } }, { seq: 64, heads: 4, kvHeads: 2 })).toThrow('outside [0, 32)');

    const model = engine.createModel(tinyConfig('llama', true, { max_position_embeddings: 64 }), { seed: 5 });
    try {
      const T = 64, V = model.config.vocab_size;
      const tokens = Int32Array.from({ length: 2 * (T + 1) }, (_, i) => (i * 11 + 1) % V);
      const profile = await model.attentionProfile!({ tokens, batch: 2, seq: T }, { batch: 2, block: 16, shareGqa: true, densities: [] });
      const seed = seedPairs(profile.layers[0].mass, 4, profile.mask_heads, profile.n_blocks, 0.2);
      expect(seededShare(seed, 2)).toBeGreaterThan(0);
      model.setAttention(0, { ...spec, seeded: seed });
      const r = await model.evaluate({ tokens, batch: 2, seq: T });
      // Diagonal (8 pairs of 20) plus the seeded ones.
      const seeded = seed.pairs.reduce((a, b) => a + b, 0);
      expect(r.density[0]).toBeCloseTo((8 + seeded) / 20, 12);
      expect(() => model.setAttention(0, { ...spec, seeded: { blocks: 4, pairs: new Uint8Array(3) } })).toThrow('mask.seeded');
    } finally {
      model.dispose();
    }
  });
});
