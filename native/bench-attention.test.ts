import { describe, expect, it, vi } from 'vitest';
import { densityForKept, maskForDensity, parseBenchArgs, runAttentionBench } from './bench-attention';
import { buildMask } from './mask';

// Needs the built addon: cd native && npx node-gyp rebuild -j 2
describe('bench attention', () => {
  it('picks masks whose built density is the closest reachable to the target', () => {
    for (const seq of [4096, 8192]) {
      const n = seq / 64;
      for (const target of [1, 0.5, 0.25, 0.125, 0.0625]) {
        const spec = maskForDensity(target, seq, 64);
        const m = buildMask(spec, { seq, heads: 8, kvHeads: 8 });
        let best = Infinity;
        for (let c = 1; c <= n; c++) best = Math.min(best, Math.abs(densityForKept(c, n) - target));
        expect(Math.abs(m.density - target)).toBeCloseTo(best, 12);
        expect(Math.abs(m.density - target)).toBeLessThan(0.02);
        if (target < 1) expect(spec.random_blocks - spec.window_blocks).toBeGreaterThanOrEqual(0); // random/window split about evenly
      }
    }
  });

  it('prints one JSON line per measurement with the contract fields', async () => {
    const lines: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => { lines.push(String(s)); return true; });
    let code: number;
    try {
      code = await runAttentionBench(['--json', '--seq', '256,200', '--heads', '2', '--kv-heads', '1', '--dim', '16', '--block-size', '16', '--reps', '1']);
    } finally {
      spy.mockRestore();
    }
    expect(code).toBe(0);
    const rows = lines.join('').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.length).toBe(10);
    for (const r of rows) {
      expect(Object.keys(r)).toEqual(['bench', 'seq', 'density', 'ms_fwd', 'ms_bwd', 'ratio_to_dense', 'backward_over_forward',
        'dense_ms_fwd', 'dense_ms_bwd', 'dense_backward_over_forward']);
      expect(r.bench).toBe('attention');
      expect(r.ms_fwd).toBeGreaterThan(0);
      expect(r.ratio_to_dense).toBeGreaterThan(0);
      expect(r.backward_over_forward).toBeGreaterThan(0);  // ms_bwd / ms_fwd before rounding
      expect(r.dense_backward_over_forward).toBeGreaterThan(0);
      expect(r.dense_ms_fwd).toBe(rows.find((x) => x.seq === r.seq).dense_ms_fwd);  // one dense reference per seq
    }
    expect(rows[0].density).toBe(1);
    expect(rows[4].density).toBeLessThan(0.2);
    expect(rows[5].seq).toBe(200);
  });

  it('rejects bad usage with exit 2 and a one-line message', async () => {
    expect(() => parseBenchArgs(['--seq', 'x'])).toThrow(/^--seq: expected positive integers/);
    expect(() => parseBenchArgs(['--density', '1.5'])).toThrow(/^--density/);
    expect(() => parseBenchArgs(['--heads', '6', '--kv-heads', '4'])).toThrow(/^--heads: must be a multiple/);
    expect(() => parseBenchArgs(['--block-size', '48'])).toThrow(/^--block-size/);
    const err: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => { err.push(String(s)); return true; });
    try {
      expect(await runAttentionBench(['--frobnicate'])).toBe(2);
    } finally {
      spy.mockRestore();
    }
    expect(err.join('')).toMatch(/^unknown argument: --frobnicate\nusage:/);
    expect(parseBenchArgs([])).toMatchObject({ seqs: [4096, 8192], densities: [1, 0.5, 0.25, 0.125, 0.0625], heads: 8, dim: 64, batch: 1 });
  });
});
