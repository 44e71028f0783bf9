// Holds the renderer's mask preview to the engine's builder: same kept blocks, same reasons,
// same random positions, same density. Needs the engine addon (npm install builds it).
import { describe, expect, it } from 'vitest';
import type { MaskSpec } from '../../core/schema';
import { previewMask, Source } from './mask-preview';

let native: typeof import('../../native/mask') | null = null;
try {
  native = await import('../../native/mask');
  native.sparseAddon();
} catch {
  native = null;
}

function specs(): MaskSpec[] {
  let seed = 7;
  const rand = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  const out: MaskSpec[] = [];
  for (let i = 0; i < 40; i++) {
    out.push({
      block_size: [16, 32, 64][rand(3)], global_blocks: rand(4), global_rows: rand(3), window_blocks: rand(4),
      random_blocks: rand(9), random_seed: rand(1_000_000), topk_blocks: rand(4), selector: (['none', 'pooled', 'indexer'] as const)[rand(3)],
      dense_below: [0, 0, 512][rand(3)], share_gqa_group: rand(2) === 0,
    });
  }
  return out;
}

describe.skipIf(!native)('mask preview vs the engine (native/src/block_mask.cpp)', () => {
  it('matches every block, reason and density over 40 random specs, layers and heads', () => {
    for (const spec of specs()) {
      for (const [seq, layer] of [[1024, 0], [700, 5]] as const) {
        const built = native!.buildMask(spec, { seq, heads: 4, kvHeads: 2, layer });
        const n = built.nBlocks;
        for (let head = 0; head < built.nMaskHeads; head++) {
          const mine = previewMask(spec, seq, layer, head);
          expect(mine.nBlocks).toBe(n);
          for (let i = 0; i < n * n; i++) {
            const engine = built.source[head * n * n + i];
            const ours = mine.source[i];
            // Top-k positions come from run-time scores: the preview marks candidates instead.
            if (engine === Source.TopK) expect(ours, `${JSON.stringify(spec)} ${i}`).toBe(Source.TopKCandidate);
            else if (ours === Source.TopKCandidate) expect(engine).toBe(Source.Skipped);
            else expect(ours, `${JSON.stringify(spec)} seq ${seq} layer ${layer} head ${head} pair ${i}`).toBe(engine);
          }
        }
        const ours = Array.from({ length: built.nMaskHeads }, (_, h) => previewMask(spec, seq, layer, h).density);
        expect(ours.reduce((a, b) => a + b, 0) / ours.length).toBeCloseTo(built.density, 10);
      }
    }
  });
});
