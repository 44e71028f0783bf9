// A Replace node's bound over its layers: each layer's value is core's maskKlBound on the blocks
// the editor's preview keeps, the mean is over the node's layers, and a profile that does not fit
// the mask (block, sharing, layers, seeded pairs) gives a reason instead of a number.
import { describe, expect, it } from 'vitest';
import { maskKlBound } from '../../../core/attention-bound';
import type { ProfileReport } from '../../../core/attention-profile';
import type { MaskSpec } from '../../../core/schema';
import { maskKeep } from '../mask-preview';
import { replaceBound } from './replace-bound';

const n = 4, H = 4;
/** Rows of query block i spread mass over the causal key blocks in proportion to 1 + (i + j + h) % 3. */
function report(): ProfileReport {
  const layers = [0, 1, 2].map((layer) => ({
    layer,
    mass: Array.from({ length: H }, (_, h) => Array.from({ length: n }, (_, i) => {
      const w = Array.from({ length: n }, (_, j) => (j <= i ? 1 + ((i + j + h + layer) % 3) : 0));
      const z = w.reduce((a, b) => a + b, 0);
      return w.map((x) => x / z);
    })),
    curve: [{ density: 0.4, floor: 0.9, recall: 0.5 }, { density: 0.7, floor: 0.3, recall: 0.8 }, { density: 1, floor: 0, recall: 1 }],
    budget: { density: 1, floor: 0, recall: 1 },
  }));
  return { model: 'm', data: 'd', seq: 64, block: 16, n_blocks: n, sequences: 1, batches: 1, batch_size: 1, share_gqa: true, mask_heads: 2, heads: H, target_kl: 0.1, layers, mean_budget_density: 1 };
}

const mask: MaskSpec = { block_size: 16, global_blocks: 1, global_rows: 0, window_blocks: 0, random_blocks: 1, random_seed: 3, topk_blocks: 0, selector: 'none', dense_below: 0, share_gqa_group: true };

describe('replaceBound', () => {
  it('is the mean over the node\'s layers of core\'s bound on the preview\'s kept blocks', () => {
    const r = report();
    const b = replaceBound(r, mask, [2, 3]);
    if (typeof b === 'string') throw new Error(b);
    expect(b.kind).toBe('static');
    expect(b.layers.map((l) => l.layer)).toEqual([2, 3]);
    for (const { layer, bound } of b.layers) expect(bound).toEqual(maskKlBound(r.layers[layer - 1], maskKeep(mask, 64, layer - 1, 2)!, 64, 16));
    expect(b.mean).toBeCloseTo((b.layers[0].bound.value + b.layers[1].bound.value) / 2, 15);
    expect(b.mean).toBeGreaterThan(0);
    const wider = replaceBound(r, { ...mask, window_blocks: 2 }, [2, 3]);
    expect(typeof wider !== 'string' && wider.mean).toBeLessThanOrEqual(b.mean);
  });

  it('reads the oracle floor for a mask with top-k blocks', () => {
    const b = replaceBound(report(), { ...mask, random_blocks: 0, topk_blocks: 1, selector: 'pooled' }, [1, 1]);
    if (typeof b === 'string') throw new Error(b);
    expect(b.kind).toBe('oracle');
    expect(b.layers[0].bound.density).toBeCloseTo(9 / 10, 12); // rows 0-3 keep 1, 2, 3, 3 of 10 causal pairs
    expect(b.mean).toBe(0); // the first curve point at least as dense as 90% is density 1
  });

  it('names what does not fit', () => {
    expect(replaceBound(report(), { ...mask, block_size: 32 }, [1, 1])).toBe('the profile uses block 16, the mask 32');
    expect(replaceBound(report(), { ...mask, share_gqa_group: false }, [1, 1])).toMatch(/share blocks differently/);
    expect(replaceBound(report(), mask, [3, 4])).toBe("layers 3-4 are outside the model's 3");
    expect(replaceBound(report(), { ...mask, seed_from_teacher: { threshold: 0.1 } }, [1, 1])).toMatch(/seeded pairs are chosen at the stage start/);
  });
});
