// InfLLM-V2 block selection as published (MiniCPM 4.1's sparse_config): the engine's per-token
// selection against an independent float64 reference written from the published algorithm, on
// random q/k, GQA groups of 2 and 4, lengths with tail blocks, and the dense_len switch.
import { describe, expect, it } from 'vitest';
import type { MaskSpec } from '../core/schema';
import { engineAvailable } from './index';
import { infllmv2Selection } from './mask';
import { rng } from './checkpoint/testing/tiny';

/**
 * Reference: compressed keys are means of `kernel` keys every `stride` tokens (visible to a token
 * once the whole window lies at or before it); each query token scores them with a softmax, summed
 * over its GQA group; a block scores the max over the compressed windows overlapping its tokens;
 * the init blocks and the local blocks ending at the token's block are always in; the top
 * k = init + local + extra blocks by score are selected (ties to the lower block).
 */
function referenceSelection(q: Float32Array, k: Float32Array, H: number, Hkv: number, T: number, D: number,
  p: { block: number; kernel: number; stride: number; init: number; local: number; extra: number; denseLen: number }): number[][][] {
  const nb = Math.ceil(T / p.block), G = H / Hkv;
  const out: number[][][] = [];
  const nc = T >= p.kernel ? Math.floor((T - p.kernel) / p.stride) + 1 : 0;
  for (let g = 0; g < Hkv; g++) {
    const rows: number[][] = [];
    const kc: number[][] = [];
    for (let j = 0; j < nc; j++) {
      const m = new Array<number>(D).fill(0);
      for (let i = j * p.stride; i < j * p.stride + p.kernel; i++) for (let d = 0; d < D; d++) m[d] += k[(g * T + i) * D + d] / p.kernel;
      kc.push(m);
    }
    for (let t = 0; t < T; t++) {
      const qb = Math.floor(t / p.block);
      if (T < p.denseLen) { rows.push(Array.from({ length: qb + 1 }, (_, b) => b)); continue; }
      const visible = kc.map((_, j) => j).filter((j) => j * p.stride + p.kernel - 1 <= t);
      const score = new Array<number>(nc).fill(0);
      for (let h = g * G; h < (g + 1) * G; h++) {
        const logits = visible.map((j) => { let s = 0; for (let d = 0; d < D; d++) s += q[(h * T + t) * D + d] * kc[j][d]; return s / Math.sqrt(D); });
        const mx = Math.max(...logits);
        const e = logits.map((x) => Math.exp(x - mx));
        const sum = e.reduce((a, b) => a + b, 0);
        visible.forEach((j, i) => { score[j] += e[i] / sum; });
      }
      const cands: { b: number; s: number }[] = [];
      for (let b = 0; b <= qb; b++) {
        let s: number;
        if (b < p.init || b > qb - p.local) s = Infinity;
        else {
          s = 0;
          for (let j = 0; j < nc; j++) {
            const overlaps = j * p.stride < (b + 1) * p.block && j * p.stride + p.kernel > b * p.block;
            if (overlaps) s = Math.max(s, score[j]);
          }
        }
        cands.push({ b, s });
      }
      cands.sort((x, y) => (x.s !== y.s ? y.s - x.s : x.b - y.b));
      rows.push(cands.slice(0, p.init + p.local + p.extra).map((c) => c.b).sort((x, y) => x - y));
    }
    out.push(rows);
  }
  return out;
}

function randn(n: number, seed: number): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next()));
}

const spec = (block: number, init: number, window: number, topk: number, denseBelow: number): MaskSpec => ({
  block_size: block, global_blocks: init, global_rows: 0, window_blocks: window, random_blocks: 0, random_seed: 0,
  topk_blocks: topk, selector: 'infllm_v2', dense_below: denseBelow, share_gqa_group: true,
});

describe.skipIf(!engineAvailable())('infllm_v2 block selection (published algorithm)', () => {
  const cases: [string, number, number, number, number, MaskSpec][] = [
    // name, H, Hkv, T, D, spec
    ['GQA 2, 16-token blocks, tail of 7', 4, 2, 16 * 23 + 7, 8, spec(16, 1, 3, 4, 64)],
    ['GQA 4, 16-token blocks, two init blocks, tail of 1', 8, 2, 16 * 30 + 1, 4, spec(16, 2, 2, 5, 0)],
    ['GQA 2, 32-token blocks, no window beyond the own block', 2, 1, 32 * 12 + 19, 6, spec(32, 1, 0, 3, 100)],
    ['MiniCPM 4.1 sparse_config (64-token blocks, 1 init, 32 local, top-64), 8192 + 37 tokens', 4, 2, 8192 + 37, 4, spec(64, 1, 31, 31, 8192)],
  ];
  it.each(cases)('%s: exact block sets per (kv head, token)', (_, H, Hkv, T, D, s) => {
    const q = randn(H * T * D, T), k = randn(Hkv * T * D, T + 1);
    const got = infllmv2Selection(q, k, { heads: H, kvHeads: Hkv, seq: T, dim: D }, s);
    const block = s.block_size;
    const want = referenceSelection(q, k, H, Hkv, T, D, { block, kernel: block / 2, stride: block / 4, init: s.global_blocks, local: s.window_blocks + 1, extra: s.topk_blocks, denseLen: s.dense_below });
    expect(got.dense).toBe(false);
    let mismatches = 0;
    let sparseRows = 0;
    for (let g = 0; g < Hkv; g++) {
      for (let t = 0; t < T; t++) {
        const n = got.count[g * T + t];
        const row = Array.from(got.blocks.subarray((g * T + t) * got.kMax, (g * T + t) * got.kMax + n));
        if (JSON.stringify(row) !== JSON.stringify(want[g][t])) mismatches++;
        if (n < Math.floor(t / block) + 1) sparseRows++;
      }
    }
    expect(mismatches).toBe(0);
    expect(sparseRows).toBeGreaterThan(0); // the selection really drops blocks
    expect(got.density).toBeLessThan(1);
  });

  it('runs dense below dense_below (dense_len) and sparse from it', () => {
    const H = 4, Hkv = 2, D = 4, s = spec(16, 1, 1, 2, 200);
    for (const [T, dense] of [[199, true], [200, false]] as const) {
      const got = infllmv2Selection(randn(H * T * D, 3), randn(Hkv * T * D, 4), { heads: H, kvHeads: Hkv, seq: T, dim: D }, s);
      expect(got.dense).toBe(dense);
      expect(got.density === 1).toBe(dense);
      const t = T - 1, row = Array.from(got.blocks.subarray(t * got.kMax, t * got.kMax + got.count[t]));
      expect(row.length).toBe(dense ? Math.floor(t / 16) + 1 : 1 + 2 + 2);
    }
  });

  it('refuses a per-head (unshared) infllm_v2 mask in one line', () => {
    expect(() => infllmv2Selection(randn(64, 1), randn(32, 2), { heads: 2, kvHeads: 1, seq: 16, dim: 2 }, { ...spec(16, 1, 1, 1, 0), share_gqa_group: false }))
      .toThrow(/^mask\.share_gqa_group: infllm_v2 selects per GQA group/);
  });
});
