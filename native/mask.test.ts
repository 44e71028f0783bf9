import { describe, expect, it } from 'vitest';
import type { MaskSpec } from '../core/schema';
import { previewMask } from '../renderer/src/mask-preview';
import { BlockSource, buildMask, flexToJson, keptMatrix, maskFromBitmap, pooledScores } from './mask';

// Needs the built addon: cd native && npx node-gyp rebuild -j 2
const base: MaskSpec = {
  block_size: 16, global_blocks: 1, global_rows: 0, window_blocks: 1, random_blocks: 2, random_seed: 42,
  topk_blocks: 0, selector: 'none', dense_below: 0, share_gqa_group: true,
};

function bit(bits: BigUint64Array, words: number, row: number, j: number): boolean {
  return ((bits[row * words + Math.floor(j / 64)] >> BigInt(j % 64)) & 1n) === 1n;
}

describe('buildMask', () => {
  it('agrees with the renderer preview (same rules, seeding and random draw)', () => {
    for (const spec of [base, { ...base, global_rows: 2, window_blocks: 3, random_blocks: 4, random_seed: 7 }, { ...base, block_size: 32, dense_below: 4096 }]) {
      const seq = 16 * 37 + 9;
      const m = buildMask(spec, { seq, heads: 4, kvHeads: 2, layer: 3 });
      for (let head = 0; head < m.nMaskHeads; head++) {
        const p = previewMask(spec, seq, 3, head);
        expect(p.nBlocks).toBe(m.nBlocks);
        const n = m.nBlocks;
        expect(Array.from(m.source.subarray(head * n * n, (head + 1) * n * n))).toEqual(Array.from(p.source));
      }
      expect(m.density).toBeCloseTo(previewMask(spec, seq, 3, 0).density * 0.5 + previewMask(spec, seq, 3, 1).density * 0.5, 12);
    }
  });

  it('returns bitmap, lists and FlexAttention arrays that describe one mask', () => {
    const m = buildMask({ ...base, share_gqa_group: false, block_size: 16 }, { seq: 16 * 70 + 1, heads: 2, kvHeads: 1 });
    const n = m.nBlocks;
    expect(n).toBe(71);
    expect(m.bitmap.words).toBe(2);
    expect(m.nMaskHeads).toBe(2);
    let kept = 0;
    for (let h = 0; h < m.nMaskHeads; h++) {
      for (let i = 0; i < n; i++) {
        const row = h * n + i;
        const listed = Array.from(m.lists.kvIdx.subarray(m.lists.kvPtr[row], m.lists.kvPtr[row + 1]));
        const fromBits: number[] = [];
        for (let j = 0; j < n; j++) if (bit(m.bitmap.bits, m.bitmap.words, row, j)) fromBits.push(j);
        expect(listed).toEqual(fromBits);
        expect(listed).toContain(i); // diagonal always kept
        expect(Math.max(...listed)).toBe(i); // causal
        kept += listed.length;
        // flex row: kept blocks first (ascending), then the others
        expect(m.flex.kvNumBlocks[h * n + i]).toBe(listed.length);
        expect(Array.from(m.flex.kvIndices.subarray((h * n + i) * n, (h * n + i) * n + listed.length))).toEqual(listed);
        for (const j of listed) {
          const col = Array.from(m.lists.qIdx.subarray(m.lists.qPtr[h * n + j], m.lists.qPtr[h * n + j + 1]));
          expect(col).toContain(i);
        }
      }
    }
    expect(m.density).toBeCloseTo(kept / (2 * (n * (n + 1)) / 2), 12);
    const back = maskFromBitmap(m.bitmap.bits, m.seq, m.blockSize, m.nMaskHeads);
    expect(Array.from(back.lists.kvIdx)).toEqual(Array.from(m.lists.kvIdx));
    expect(Array.from(back.lists.qIdx)).toEqual(Array.from(m.lists.qIdx));
    const json = flexToJson(m.flex) as { kv_indices: { shape: number[]; data: number[] }; mask_mod: string };
    expect(json.kv_indices.shape).toEqual([1, 2, 71, 71]);
    expect(json.kv_indices.data.length).toBe(2 * 71 * 71);
    expect(json.mask_mod).toBe('causal');
  });

  it('reports density and FLOPs saved of a diagonal-only mask', () => {
    const spec = { ...base, global_blocks: 0, window_blocks: 0, random_blocks: 0 };
    const m = buildMask(spec, { seq: 16 * 8, heads: 1, kvHeads: 1 });
    expect(m.density).toBeCloseTo(8 / 36, 12);
    // diagonal triangles 8 * 16*17/2 of 128*129/2 token pairs
    expect(m.flopsSaved).toBeCloseTo(1 - (8 * 136) / 8256, 12);
    expect(Array.from(keptMatrix(m)).filter((x) => x === 1).length).toBe(8);
  });

  it('places top-k blocks from scores, and from stand-in scores when none are given', () => {
    const spec: MaskSpec = { ...base, random_blocks: 0, window_blocks: 0, global_blocks: 0, topk_blocks: 1, selector: 'pooled' };
    const seq = 16 * 6, n = 6;
    const scores = new Float32Array(n * n);
    scores[5 * n + 2] = 10; // the last query block prefers key block 2
    const m = buildMask(spec, { seq, heads: 2, kvHeads: 1, scores });
    expect(m.topkPreview).toBe(false);
    expect(m.source[5 * n + 2]).toBe(BlockSource.TopK);
    const preview = buildMask(spec, { seq, heads: 2, kvHeads: 1 });
    expect(preview.topkPreview).toBe(true);
    expect(preview.density).toBeCloseTo(m.density, 12); // same count of blocks either way
  });

  it('scores blocks by pooled keys, causal entries only', () => {
    const heads = 2, kvHeads = 1, seq = 40, dim = 8;
    const q = Float32Array.from({ length: heads * seq * dim }, (_, i) => Math.sin(i));
    const k = Float32Array.from({ length: kvHeads * seq * dim }, (_, i) => Math.cos(i));
    const s = pooledScores(q, k, { heads, kvHeads, seq, dim }, 16, true);
    expect(s.length).toBe(9);
    expect(s[0 * 3 + 1]).toBe(-Infinity);
    expect(Number.isFinite(s[2 * 3 + 1])).toBe(true);
  });

  it('rejects bad input with a message naming the field', () => {
    expect(() => buildMask({ ...base, block_size: 48 }, { seq: 100, heads: 1, kvHeads: 1 })).toThrow(/^mask\.block_size: must be a power of two/);
    expect(() => buildMask({ ...base, window_blocks: -1 }, { seq: 100, heads: 1, kvHeads: 1 })).toThrow(/mask\.window_blocks/);
    expect(() => buildMask(base, { seq: 0, heads: 1, kvHeads: 1 })).toThrow(/^seq: must be an integer >= 1/);
    expect(() => buildMask(base, { seq: 64, heads: 3, kvHeads: 2 })).toThrow(/^heads: must be a multiple/);
    const spec: MaskSpec = { ...base, topk_blocks: 1, selector: 'pooled' };
    expect(() => buildMask(spec, { seq: 64, heads: 1, kvHeads: 1, scores: new Float32Array(3) })).toThrow(/^scores: expected 16 floats/);
    expect(() => maskFromBitmap(new BigUint64Array([2n, 0n]), 32, 16, 1)).toThrow(/not causal/);
  });
});
