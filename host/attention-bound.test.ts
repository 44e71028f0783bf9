// The attention-KL bound at a mask (core/attention-bound.ts) against the engine: on a tiny random
// model, the bound from the teacher's profile never exceeds the attn_kl the engine measures for a
// student equal to the teacher restricted to that mask (one sparse layer at a time, same
// sequences), and the mask's kept teacher mass equals the engine's attn_recall. The kept blocks
// come from the engine's own mask builder and, separately, from the editor's preview (maskKeep).
import { describe, expect, it } from 'vitest';
import { engine, engineAvailable } from '../native/index';
import { buildMask, BlockSource } from '../native/mask';
import { tinyConfig } from '../native/checkpoint/testing/tiny';
import type { MaskSpec } from '../core/schema';
import { buildReport } from './attention-profile';
import { maskKlBound, staticKlBound } from '../core/attention-bound';
import { PROFILE_DENSITIES } from '../core/attention-profile';
import { maskKeep } from '../renderer/src/mask-preview';

const base: MaskSpec = {
  block_size: 16, global_blocks: 1, global_rows: 0, window_blocks: 0, random_blocks: 0, random_seed: 5,
  topk_blocks: 0, selector: 'none', dense_below: 0, share_gqa_group: true,
};

describe.skipIf(!engineAvailable())('attention-KL bound vs the engine', () => {
  it('is <= the teacher-restricted student\'s attn_kl, with its recall equal to attn_recall, for static masks', async () => {
    const model = engine.createModel(tinyConfig('llama', true, { max_position_embeddings: 256, num_hidden_layers: 2 }), { seed: 9, threads: 1 });
    try {
      const S = 3, T = 150, V = model.config.vocab_size, H = model.config.num_attention_heads, KV = model.config.num_key_value_heads;
      let x = 12345;
      const tokens = Int32Array.from({ length: S * (T + 1) }, () => { x = (x * 1103515245 + 12345) & 0x7fffffff; return x % V; });
      const batch = { tokens, batch: S, seq: T };
      const masks: MaskSpec[] = [
        base,
        { ...base, window_blocks: 1 },
        { ...base, global_blocks: 0, random_blocks: 2 },
        { ...base, global_rows: 2, window_blocks: 2, random_blocks: 1, share_gqa_group: false },
      ];
      let compared = 0;
      for (const mask of masks) {
        const p = await model.attentionProfile!(batch, { batch: S, block: mask.block_size, shareGqa: mask.share_gqa_group, densities: [...PROFILE_DENSITIES] });
        const report = buildReport(p, { model: 'tiny', data: 'tokens', seq: T, batches: 1, batchSize: S, shareGqa: mask.share_gqa_group, targetKl: 0.1, heads: H });
        for (let layer = 0; layer < 2; layer++) {
          const built = buildMask(mask, { seq: T, heads: H, kvHeads: KV, layer });
          const n = built.nBlocks;
          const kept = Array.from({ length: built.nMaskHeads }, (_, m) =>
            built.source.slice(m * n * n, (m + 1) * n * n).map((s) => (s !== BlockSource.Skipped && s !== BlockSource.TopK ? 1 : 0)));
          const fromEngineMask = staticKlBound(report.layers[layer].mass, kept, T, mask.block_size);
          const preview = maskKeep(mask, T, layer, built.nMaskHeads)!;
          const bound = maskKlBound(report.layers[layer], preview, T, mask.block_size);
          expect(bound.kind).toBe('static');
          expect(bound.value).toBeCloseTo(fromEngineMask.value, 12);
          expect(preview.density).toBeCloseTo(built.density, 12);

          model.setAttention(layer, mask);
          const ev = await model.evaluate(batch);
          model.setAttention(layer, null);
          const kl = ev.attn_kl[layer]!, recall = ev.attn_recall[layer]!;
          // Same rows, same kept blocks: the kept mass agrees to ~1e-9 (float32 scores in both).
          expect(Math.abs(bound.recall - recall)).toBeLessThan(1e-7);
          expect(bound.value).toBeLessThanOrEqual(kl + 1e-5);
          // Tighter than Jensen over all rows at once, and not vacuous.
          expect(bound.value).toBeGreaterThanOrEqual(-Math.log(recall) - 1e-5);
          expect(bound.value).toBeGreaterThan(0.01);
          compared++;
        }
      }
      expect(compared).toBe(8);
    } finally {
      model.dispose();
    }
  });
});
