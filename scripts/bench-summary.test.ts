import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs module without type declarations
import { formatSummary, summarize } from './bench-summary.mjs';

const attention = (seq: number, density: number, bwdOverFwd: number, dense: number) =>
  ({ bench: 'attention', seq, density, backward_over_forward: bwdOverFwd, dense_backward_over_forward: dense });

describe('bench summary', () => {
  it('takes each target from its bench: GEMM geomean, the worst block-sparse density, the GEMM share, the redraw median', () => {
    const rows = summarize({
      gemm: [{ bench: 'gemm', ratio: 0.5 }, { bench: 'gemm_geomean', ratio: 0.93, shapes: 20, reference: 'openblas' }],
      attention: [attention(8192, 1, 2.1, 1.99), attention(8192, 0.25, 2.7, 1.99), attention(8192, 0.0625, 2.0, 1.99)],
      train: [{ bench: 'train', tokens_per_s: 200, gflops: 150, gemm_gflops: 230, gemm_share: 0.652 }],
      ui: [{ bench: 'ui-monitor-redraw', redrawMedianMs: 47.6, seriesDrawn: 9, steps: 100000, streamStepsDrawn: 200, streamStepsSent: 200 }],
    });
    expect(rows.map((r: { key: string; value: number; meets: boolean }) => [r.key, r.value, r.meets])).toEqual([
      ['gemm', 0.93, true], ['attention_dense', 1.99, true], ['attention_sparse', 2.7, false], ['train', 0.652, false], ['ui', 47.6, true],
    ]);
    expect(formatSummary(rows)).toContain('MISS');
  });

  it('says what is missing instead of a number', () => {
    const rows = summarize({ gemm: [{ bench: 'gemm', ratio: null }, { bench: 'gemm_geomean', ratio: null, shapes: 0, reference: null }] });
    expect(rows[0]).toMatchObject({ value: null, meets: null });
    expect(rows[0].missing).toContain('OpenBLAS');
    expect(rows[1]).toMatchObject({ value: null, missing: 'not run' });
  });
});
