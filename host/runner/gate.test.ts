import { describe, expect, it } from 'vitest';
import { judgeGate, gateMetricValue } from './gate';
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
