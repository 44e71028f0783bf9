// InfLLM-V2 block selection as published (MiniCPM 4.1's sparse_config): the engine's per-token
// selection against an independent float64 reference written from the published algorithm, on
// random q/k, GQA groups of 2 and 4, lengths with tail blocks, and the dense_len switch.
import { describe, expect, it } from 'vitest';
import type { MaskSpec } from '../core/schema';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { infllmV2MaskOf, validateModelConfig } from './checkpoint/config';
import { tinyConfig } from './checkpoint/testing/tiny';
import { engineAvailable } from './index';
import { infllmv2Selection } from './mask';
import { referenceSelection } from './checkpoint/testing/infllmv2-reference';
import { rng } from './checkpoint/testing/tiny';

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

describe('sparse_config (MiniCPM 4.1 config.json) as an infllm_v2 mask', () => {
  const MINICPM = { kernel_size: 32, kernel_stride: 16, init_blocks: 1, block_size: 64, window_size: 2048, topk: 64, use_nope: false, dense_len: 8192 };
  const of = (sparse_config: unknown) => infllmV2MaskOf(validateModelConfig({ ...tinyConfig('minicpm', true), sparse_config }, 'x/config.json'), 'x/config.json');

  it('is the MiniCPM template\'s mask', () => {
    const template = JSON.parse(readFileSync(join(import.meta.dirname, '../templates/minicpm41-infllmv2.json'), 'utf8'));
    const replace = template.nodes.find((n: { kind: string }) => n.kind === 'replace');
    expect(of(MINICPM)).toEqual(replace.params.mask);
    expect(infllmV2MaskOf(validateModelConfig(tinyConfig('minicpm', true)))).toBeNull();
  });

  it.each([
    [{ kernel_size: 16 }, 'sparse_config.kernel_size'],
    [{ kernel_stride: 8 }, 'sparse_config.kernel_stride'],
    [{ block_size: 48 }, 'sparse_config.block_size'],
    [{ window_size: 2000 }, 'sparse_config.window_size'],
    [{ topk: 16 }, 'sparse_config.topk'],
  ])('refuses %j naming %s', (patch, field) => {
    expect(() => of({ ...MINICPM, ...patch })).toThrow(new RegExp(`^x/config\\.json: ${field.replace('.', '\\.')}: [^\\n]+$`));
  });
});
