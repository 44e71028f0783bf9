import { describe, expect, it } from 'vitest';
import { checkMark, judgeGate, gateMetricValue, noSparseLayers } from './gate';
import type { EvalMetrics } from '../../core/events';
import type { GateParams } from '../../core/schema';

const metrics: EvalMetrics = {
  stage: 0, step: 10, loss: 2.1, ppl: Math.exp(2.1), ppl_teacher: Math.exp(2), ppl_ratio: Math.exp(-0.1),
  attn_kl: 0.05, attn_recall: 0.9, logit_kl: 0.01, out_cos: 0.97, density: 0.6, sparsity: 0.4,
  attn_flops_saved: 0.1, per_layer: { attn_kl: [], attn_recall: [], density: [] },
};
const gate = (over: Partial<GateParams>): GateParams => ({
  checks: [{ metric: 'attn_kl', op: '<', threshold: 0.1 }, { metric: 'out_cos', op: '>', threshold: 0.95 }],
  on_fail: 'stop', max_retries: 2, lr_factor: 0.5, eval_batches: 2, ...over,
});
const where = { stage: 0, node: 'g1', attempt: 1 };

describe('judgeGate', () => {
  it('passes when every check holds', () => {
    const v = judgeGate(gate({}), metrics, 2, where);
    expect(v.passed).toBe(true);
    expect(v.action).toBe('none');
    expect(v.checks.map((c) => c.value)).toEqual([0.05, 0.97]);
  });
  it('applies the configured policy while retries remain, then stops', () => {
    const failing = gate({ checks: [{ metric: 'ppl_ratio', op: '>=', threshold: 0.95 }], on_fail: 'decay_lr_retry' });
    expect(judgeGate(failing, metrics, 2, { ...where, attempt: 1 }).action).toBe('decay_lr_retry');
    expect(judgeGate(failing, metrics, 2, { ...where, attempt: 2 }).action).toBe('decay_lr_retry');
    expect(judgeGate(failing, metrics, 2, { ...where, attempt: 3 }).action).toBe('stop');
  });
  it('continue and stop never retry', () => {
    const failing = { checks: [{ metric: 'density' as const, op: '<' as const, threshold: 0.5 }] };
    expect(judgeGate(gate({ ...failing, on_fail: 'continue' }), metrics, 2, where).action).toBe('continue');
    expect(judgeGate(gate({ ...failing, on_fail: 'stop' }), metrics, 2, where).action).toBe('stop');
  });
  it('measures loss_increase against the stage start and fails non-finite values', () => {
    expect(gateMetricValue('loss_increase', metrics, 2)).toBeCloseTo(0.05, 12);
    const v = judgeGate(gate({ checks: [{ metric: 'out_cos', op: '>', threshold: 0 }] }), { ...metrics, out_cos: NaN }, 2, where);
    expect(v.passed).toBe(false);
  });
});

describe('vacuous checks', () => {
  // A model with no sparse layer: the engine reports null per layer, attn_kl 0, recall 1, and
  // out_cos 1 while the student equals the teacher. Those checks would pass without showing anything.
  const dense: EvalMetrics = {
    ...metrics, attn_kl: 0, attn_recall: 1, out_cos: 1, density: 1, sparsity: 0, attn_flops_saved: 0,
    per_layer: { attn_kl: [null, null], attn_recall: [null, null], density: [null, null] },
  };
  const sparse: EvalMetrics = { ...metrics, per_layer: { attn_kl: [null, 0.05], attn_recall: [null, 0.9], density: [null, 0.6] } };

  it('marks attn_kl, attn_recall and out_cos vacuous without sparse layers, never as passed', () => {
    const checks = [
      { metric: 'attn_kl' as const, op: '<' as const, threshold: 0.1 },
      { metric: 'attn_recall' as const, op: '>' as const, threshold: 0.8 },
      { metric: 'out_cos' as const, op: '>' as const, threshold: 0.95 },
      { metric: 'ppl_ratio' as const, op: '>' as const, threshold: 0.5 },
    ];
    const v = judgeGate(gate({ checks }), dense, 2, where);
    expect(v.checks.map((c) => c.state)).toEqual(['vacuous', 'vacuous', 'vacuous', 'passed']);
    expect(v.checks.map((c) => c.passed)).toEqual([false, false, false, true]);
    expect(v.checks.map(checkMark)).toEqual(['vacuous (no sparse layers)', 'vacuous (no sparse layers)', 'vacuous (no sparse layers)', 'ok']);
    // Nothing failed, so the stage goes on; the vacuous checks are not counted as passes.
    expect(v.passed).toBe(true);
    expect(v.action).toBe('none');
  });

  it('still fails a real check next to vacuous ones, and judges every check once a layer is sparse', () => {
    const checks = [{ metric: 'attn_kl' as const, op: '<' as const, threshold: 0.1 }, { metric: 'density' as const, op: '<' as const, threshold: 0.5 }];
    const v = judgeGate(gate({ checks }), dense, 2, where);
    expect(v.checks.map((c) => c.state)).toEqual(['vacuous', 'failed']);
    expect(v.passed).toBe(false);
    expect(v.action).toBe('stop');
    const s = judgeGate(gate({ checks }), sparse, 2, where);
    expect(s.checks.map((c) => c.state)).toEqual(['passed', 'failed']);
  });

  it('knows sparse layers from the per-layer densities (unknown without them)', () => {
    expect(noSparseLayers(dense)).toBe(true);
    expect(noSparseLayers(sparse)).toBe(false);
    expect(noSparseLayers(metrics)).toBe(false);
    expect(checkMark({ metric: 'attn_kl', op: '<', threshold: 1, value: 2, passed: false })).toBe('FAIL');
  });
});
