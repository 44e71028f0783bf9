import { describe, expect, it } from 'vitest';
import type { MaskSpec } from '../../core/schema';
import { previewMask, Source, splitmix64 } from './mask-preview';

const base: MaskSpec = {
  block_size: 64, global_blocks: 0, global_rows: 0, window_blocks: 0, random_blocks: 0, random_seed: 7,
  topk_blocks: 0, selector: 'none', dense_below: 0, share_gqa_group: true,
};

describe('previewMask', () => {
  it('keeps only the diagonal of a bare mask: density n / (n(n+1)/2)', () => {
    const m = previewMask(base, 512); // 8 blocks
    expect(m.nBlocks).toBe(8);
    expect(m.density).toBeCloseTo(8 / 36);
    for (let q = 0; q < 8; q++) expect(m.source[q * 8 + q]).toBe(Source.Diagonal);
  });

  it('counts global, window and random blocks and never exceeds the causal blocks', () => {
    const spec = { ...base, global_blocks: 2, window_blocks: 1, random_blocks: 3 };
    const m = previewMask(spec, 64 * 16);
    let kept = 0;
    for (let q = 0; q < 16; q++) {
      let row = 0;
      for (let k = 0; k < 16; k++) {
        const s = m.source[q * 16 + k];
        if (k > q) expect(s).toBe(Source.Skipped); // causal only
        if (s !== Source.Skipped) row++;
      }
      // diagonal + up to 2 global + 1 window + 3 random, capped by q+1 causal blocks
      const expected = Math.min(q + 1, 1 + Math.min(2, q) + (q >= 3 ? 1 : 0) + 3);
      expect(row).toBe(expected);
      kept += row;
    }
    expect(m.density).toBeCloseTo(kept / (16 * 17 / 2));
    expect(m.source[15 * 16 + 0]).toBe(Source.Global);
    expect(m.source[15 * 16 + 14]).toBe(Source.Window);
  });

  it('is dense below dense_below and sparse from it on', () => {
    const spec = { ...base, dense_below: 1024 };
    expect(previewMask(spec, 512).density).toBe(1);
    expect(previewMask(spec, 512).dense).toBe(true);
    expect(previewMask(spec, 1024).density).toBeLessThan(1);
  });

  it('counts k top-k blocks per row without placing them', () => {
    const spec: MaskSpec = { ...base, topk_blocks: 2, selector: 'pooled' };
    const m = previewMask(spec, 64 * 10);
    expect(m.topkPerRow).toEqual([0, 1, 2, 2, 2, 2, 2, 2, 2, 2]);
    const kept = 10 + m.topkPerRow.reduce((a, b) => a + b, 0);
    expect(m.density).toBeCloseTo(kept / 55);
    expect(m.source[9 * 10 + 0]).toBe(Source.TopKCandidate);
  });

  it('draws the same random blocks for the same seed and a prefix at shorter lengths', () => {
    const spec = { ...base, random_blocks: 2 };
    const long = previewMask(spec, 64 * 32);
    const short = previewMask(spec, 64 * 16);
    for (let q = 0; q < 16; q++) for (let k = 0; k < 16; k++) expect(short.source[q * 16 + k]).toBe(long.source[q * 32 + k]);
    const other = previewMask({ ...spec, random_seed: 8 }, 64 * 32);
    expect(Array.from(other.source)).not.toEqual(Array.from(long.source));
  });
});

describe('splitmix64', () => {
  it('matches the reference sequence for seed 0', () => {
    // Reference values of splitmix64 from state 0 (Vigna's splitmix64.c).
    let state = 0n; let out: bigint;
    [state, out] = splitmix64(state);
    expect(out).toBe(0xE220A8397B1DCDAFn);
    [state, out] = splitmix64(state);
    expect(out).toBe(0x6E789E6AA1B965F4n);
  });
});
