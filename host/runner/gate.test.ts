import { describe, expect, it } from 'vitest';
import { checkMark, judgeGate, gateMetricValue, noSparseLayers, rollbackStep, unpassedChecks } from './gate';
import { planRetry } from './gate-retry';
import { NO_OVERRIDES } from '../../core/model-state';
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
    const v = judgeGate(gate({}), metrics, { stageStartLoss: 2 }, where);
    expect(v.passed).toBe(true);
    expect(v.action).toBe('none');
    expect(v.checks.map((c) => c.value)).toEqual([0.05, 0.97]);
  });
  it('rollback_sparsity retries max_retries times denser, once more on the previous masks, then goes on', () => {
    const failing = gate({ checks: [{ metric: 'ppl_ratio', op: '>=', threshold: 0.95 }], on_fail: 'rollback_sparsity', max_retries: 2 });
    const actions = [1, 2, 3, 4].map((attempt) => judgeGate(failing, metrics, { stageStartLoss: 2 }, { ...where, attempt }).action);
    expect(actions).toEqual(['rollback_sparsity', 'rollback_sparsity', 'rollback_sparsity', 'continue']);
    expect([1, 2, 3].map((attempt) => rollbackStep(attempt, 2))).toEqual([{ levels: 1 }, { levels: 2 }, 'previous_masks']);
    expect(rollbackStep(1, 0)).toBe('previous_masks');
  });
  it('reads flops_saved from the evaluation and speedup from the measurement; unmeasured fails', () => {
    expect(gateMetricValue('flops_saved', { ...metrics, flops_saved: 0.42 }, { stageStartLoss: 2 })).toBe(0.42);
    expect(gateMetricValue('speedup', metrics, { stageStartLoss: 2, speedup: 1.7 })).toBe(1.7);
    const checks = [{ metric: 'speedup' as const, op: '>' as const, threshold: 1 }, { metric: 'flops_saved' as const, op: '>=' as const, threshold: 0.4 }];
    const v = judgeGate(gate({ checks }), metrics, { stageStartLoss: 2 }, where);
    expect(v.checks.map((c) => c.state)).toEqual(['failed', 'failed']);
    const ok = judgeGate(gate({ checks }), { ...metrics, flops_saved: 0.5 }, { stageStartLoss: 2, speedup: 1.3 }, where);
    expect(ok.passed).toBe(true);
  });
  it('applies the configured policy while retries remain, then stops', () => {
    const failing = gate({ checks: [{ metric: 'ppl_ratio', op: '>=', threshold: 0.95 }], on_fail: 'decay_lr_retry' });
    expect(judgeGate(failing, metrics, { stageStartLoss: 2 }, { ...where, attempt: 1 }).action).toBe('decay_lr_retry');
    expect(judgeGate(failing, metrics, { stageStartLoss: 2 }, { ...where, attempt: 2 }).action).toBe('decay_lr_retry');
    expect(judgeGate(failing, metrics, { stageStartLoss: 2 }, { ...where, attempt: 3 }).action).toBe('stop');
  });
  it('continue and stop never retry', () => {
    const failing = { checks: [{ metric: 'density' as const, op: '<' as const, threshold: 0.5 }] };
    expect(judgeGate(gate({ ...failing, on_fail: 'continue' }), metrics, { stageStartLoss: 2 }, where).action).toBe('continue');
    expect(judgeGate(gate({ ...failing, on_fail: 'stop' }), metrics, { stageStartLoss: 2 }, where).action).toBe('stop');
  });
  it('measures loss_increase against the stage start and fails non-finite values', () => {
    expect(gateMetricValue('loss_increase', metrics, { stageStartLoss: 2 })).toBeCloseTo(0.05, 12);
    const v = judgeGate(gate({ checks: [{ metric: 'out_cos', op: '>', threshold: 0 }] }), { ...metrics, out_cos: NaN }, { stageStartLoss: 2 }, where);
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
    const v = judgeGate(gate({ checks }), dense, { stageStartLoss: 2 }, where);
    expect(v.checks.map((c) => c.state)).toEqual(['vacuous', 'vacuous', 'vacuous', 'passed']);
    expect(v.checks.map((c) => c.passed)).toEqual([false, false, false, true]);
    expect(v.checks.map(checkMark)).toEqual(['vacuous (no sparse layers)', 'vacuous (no sparse layers)', 'vacuous (no sparse layers)', 'ok']);
    // Nothing failed, but vacuous checks are not passes: the gate does not pass, and its policy applies.
    expect(v.passed).toBe(false);
    expect(v.action).toBe('stop');
    expect(unpassedChecks(v)).toBe('attn_kl vacuous (no sparse layers), attn_recall vacuous (no sparse layers), out_cos vacuous (no sparse layers)');
    const retrying = judgeGate(gate({ checks, on_fail: 'decay_lr_retry' }), dense, { stageStartLoss: 2 }, where);
    expect([retrying.passed, retrying.action]).toEqual([false, 'decay_lr_retry']);
  });

  it('still fails a real check next to vacuous ones, and judges every check once a layer is sparse', () => {
    const checks = [{ metric: 'attn_kl' as const, op: '<' as const, threshold: 0.1 }, { metric: 'density' as const, op: '<' as const, threshold: 0.5 }];
    const v = judgeGate(gate({ checks }), dense, { stageStartLoss: 2 }, where);
    expect(v.checks.map((c) => c.state)).toEqual(['vacuous', 'failed']);
    expect(v.passed).toBe(false);
    expect(v.action).toBe('stop');
    const s = judgeGate(gate({ checks }), sparse, { stageStartLoss: 2 }, where);
    expect(s.checks.map((c) => c.state)).toEqual(['passed', 'failed']);
  });

  it('knows sparse layers from the per-layer densities (unknown without them)', () => {
    expect(noSparseLayers(dense)).toBe(true);
    expect(noSparseLayers(sparse)).toBe(false);
    expect(noSparseLayers(metrics)).toBe(false);
    expect(checkMark({ metric: 'attn_kl', op: '<', threshold: 1, value: 2, passed: false })).toBe('FAIL');
  });
});

describe('planRetry', () => {
  const current = { lrMultiplier: 1, overrides: NO_OVERRIDES };
  it('rollback_sparsity: one more level denser per retry, then the previous masks, saying so', () => {
    const g = gate({ on_fail: 'rollback_sparsity', max_retries: 2 });
    const first = planRetry(g, 'rollback_sparsity', 1, current, []);
    expect(first.overrides).toEqual({ ...NO_OVERRIDES, denserLevels: 1 });
    expect(first.description).toBe("restoring the stage start with the stage's masks 1 level denser than its Replace nodes set, retraining, retry 1 of 2");
    const second = planRetry(g, 'rollback_sparsity', 2, first, []);
    expect(second.overrides).toEqual({ ...NO_OVERRIDES, denserLevels: 2 });
    const back = planRetry(g, 'rollback_sparsity', 3, second, []);
    expect(back.overrides).toEqual({ ...NO_OVERRIDES, denserLevels: 0, skipReplace: true });
    expect(back.description).toMatch(/^2 retries with denser masks did not pass either: the stage returns to its previous masks .* the stage is marked failed and the run goes on$/);
  });
  it('refreeze: the deepest unfrozen layer first, one more per retry', () => {
    const g = gate({ on_fail: 'refreeze', max_retries: 5 });
    const unfrozen = [3, 5, 4];
    const r1 = planRetry(g, 'refreeze', 1, current, unfrozen);
    expect(r1.overrides.refrozen).toEqual([5]);
    expect(r1.description).toBe('restoring the stage start with layer 6 frozen again (deepest first, 1 of the 3 layers the stage unfroze), retraining, retry 1 of 5');
    expect(planRetry(g, 'refreeze', 2, r1, unfrozen).overrides.refrozen).toEqual([5, 4]);
    expect(planRetry(g, 'refreeze', 4, r1, unfrozen).overrides.refrozen).toEqual([5, 4, 3]);
    expect(planRetry(g, 'refreeze', 1, current, []).overrides).toEqual(NO_OVERRIDES);
  });
  it('decay_lr_retry multiplies the LR once more per retry', () => {
    const r = planRetry(gate({ on_fail: 'decay_lr_retry', lr_factor: 0.5 }), 'decay_lr_retry', 2, { lrMultiplier: 0.5, overrides: NO_OVERRIDES }, []);
    expect(r.lrMultiplier).toBe(0.25);
    expect(r.description).toBe('restoring the stage start and retraining with LR x0.25, retry 2 of 2');
  });
});
