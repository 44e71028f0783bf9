// Mixture-of-experts run pieces: the Train node's load-balancing option, the metric fields of
// step and eval records, and the MoE gate metrics (a starved expert fails; a dense model never passes).
import { describe, expect, it } from 'vitest';
import type { EvalMetrics } from '../../core/events';
import type { GateParams, NodeOf, TrainParams } from '../../core/schema';
import { NODE_SPECS } from '../../core/nodes';
import type { EvalResult, ModelConfig, StepResult } from '../../native/engine-api';
import { aggregateEval } from './eval-metrics';
import { judgeGate } from './gate';
import { checkMoeGate, loadBalanceOf, moeStepFields, usageBand } from './moe';

const dense = { model_type: 'llama', num_hidden_layers: 2 } as ModelConfig;
const moe = { model_type: 'qwen3_moe', num_hidden_layers: 2, num_experts: 4, num_experts_per_tok: 2 } as ModelConfig;
const train = (over: Partial<TrainParams>): NodeOf<'train'> => ({ id: 's1-train', kind: 'train', params: { ...NODE_SPECS.train.defaults, ...over } });

describe('loadBalanceOf', () => {
  it('is null when absent or none, on any model (files before MoE support keep working)', () => {
    expect(loadBalanceOf(train({}), dense)).toBeNull();
    expect(loadBalanceOf(train({ load_balance: 'none', load_balance_weight: 3 }), moe)).toBeNull();
  });
  it('passes the kind, and the weight only when the file sets it (else the engine default applies)', () => {
    expect(loadBalanceOf(train({ load_balance: 'seed' }), moe)).toEqual({ kind: 'seed' });
    expect(loadBalanceOf(train({ load_balance: 'switch', load_balance_weight: 0.02 }), moe)).toEqual({ kind: 'switch', weight: 0.02 });
  });
  it('refuses a term on a dense model with one line naming the node and field', () => {
    expect(() => loadBalanceOf(train({ load_balance: 'seed' }), dense))
      .toThrow(/^s1-train\.load_balance: 'seed' needs a mixture-of-experts model, but this llama model is dense \(set it to 'none'\)$/);
  });
});

describe('MoE gate checks', () => {
  const gateNode = (checks: GateParams['checks']): NodeOf<'gate'> => ({ id: 'g', kind: 'gate', params: { ...NODE_SPECS.gate.defaults, checks } });
  it('refuse on a dense model at stage start, naming the check', () => {
    expect(() => checkMoeGate(gateNode([{ metric: 'out_cos', op: '>', threshold: 0.9 }, { metric: 'aux_loss', op: '<=', threshold: 3 }]), dense))
      .toThrow(/^g\.checks\[1\]\.metric: aux_loss needs a mixture-of-experts model, but this llama model is dense$/);
    expect(() => checkMoeGate(gateNode([{ metric: 'aux_loss', op: '<=', threshold: 3 }]), moe)).not.toThrow();
  });
});

describe('usageBand', () => {
  it('is E x share: 1 at uniform, 0 for an expert no token reached', () => {
    expect(usageBand({ 1: [0.25, 0.25, 0.25, 0.25] })).toEqual({ min: 1, max: 1 });
    expect(usageBand({ 1: [0.25, 0.25, 0.25, 0.25], 3: [0.5, 0.5, 0, 0] })).toEqual({ min: 0, max: 2 });
  });
});

const base: StepResult = { loss: 2, task_loss: 2, attn_kl_loss: 0, logit_kl_loss: 0, hidden_mse_loss: 0, grad_norm: 1, density: 1 };

describe('step records', () => {
  it('carry no MoE field for a dense model', () => {
    expect(moeStepFields(base)).toEqual({});
  });
  it('carry aux loss, the load-balance term, the usage band and the mean routing entropy', () => {
    const r: StepResult = { ...base, aux_loss: 2.1, load_balance_loss: 0.021, expert_usage: { 1: [0.4, 0.1, 0.25, 0.25] }, routing_entropy: { 1: 1.2 } };
    const f = moeStepFields(r);
    expect(f.aux_loss).toBe(2.1);
    expect(f.load_balance_loss).toBe(0.021);
    expect(f.expert_usage_min).toBeCloseTo(0.4, 12);
    expect(f.expert_usage_max).toBeCloseTo(1.6, 12);
    expect(f.routing_entropy).toBe(1.2);
  });
});

function evalBatch(usage: Record<string, number[]>, entropy: Record<string, number>, aux: number): EvalResult {
  return {
    loss: 2, loss_teacher: 2, attn_kl: [null, null], attn_recall: [null, null], density: [null, null], logit_kl: 0, out_cos: 1, hidden_mse: 0,
    aux_loss: aux, expert_usage: usage, routing_entropy: entropy,
  };
}

describe('eval records', () => {
  it('average usage, entropy and aux loss over equal batches and put usage per layer (null for dense-MLP layers)', () => {
    const m = aggregateEval([
      evalBatch({ 1: [0.5, 0.5, 0, 0] }, { 1: 1 }, 3),
      evalBatch({ 1: [0, 0.5, 0.25, 0.25] }, { 1: 2 }, 2),
    ], { stage: 0, step: 4 });
    expect(m.per_layer.expert_usage).toEqual([null, [0.25, 0.5, 0.125, 0.125]]);
    expect(m.per_layer.routing_entropy).toEqual([null, 1.5]);
    expect(m.aux_loss).toBe(2.5);
    expect(m.expert_usage_min).toBe(0.5);
    expect(m.expert_usage_max).toBe(2);
    expect(m.routing_entropy).toBe(1.5);
  });
  it('of a dense model have no MoE field', () => {
    const d = aggregateEval([{ ...evalBatch({}, {}, 0), aux_loss: undefined, expert_usage: undefined, routing_entropy: undefined }], { stage: 0, step: 0 });
    expect('aux_loss' in d || 'expert_usage' in d.per_layer || 'expert_usage_min' in d).toBe(false);
  });
});

describe('MoE gate metrics', () => {
  const band = (usage: number[]): EvalMetrics => aggregateEval([evalBatch({ 1: usage }, { 1: 1 }, 2)], { stage: 0, step: 1 });
  const params = (threshold: number): GateParams => ({
    checks: [{ metric: 'expert_usage_min', op: '>=', threshold }, { metric: 'expert_usage_max', op: '<=', threshold: 3 }, { metric: 'aux_loss', op: '<=', threshold: 2.5 }],
    on_fail: 'stop', max_retries: 0, lr_factor: 0.5, eval_batches: 1,
  });
  const where = { stage: 0, node: 'g', attempt: 1 };
  it('pass a balanced router', () => {
    const v = judgeGate(params(0.25), band([0.3, 0.2, 0.25, 0.25]), { stageStartLoss: 2 }, where);
    expect(v.checks.map((c) => c.state)).toEqual(['passed', 'passed', 'passed']);
  });
  it('fail when one expert is starved', () => {
    const v = judgeGate(params(0.25), band([0.4, 0.35, 0.25, 0]), { stageStartLoss: 2 }, where);
    expect(v.passed).toBe(false);
    expect(v.checks[0]).toMatchObject({ metric: 'expert_usage_min', value: 0, state: 'failed' });
  });
  it('never pass on a record without MoE metrics (a dense model)', () => {
    const m = aggregateEval([{ ...evalBatch({}, {}, 0), aux_loss: undefined, expert_usage: undefined, routing_entropy: undefined }], { stage: 0, step: 0 });
    const v = judgeGate(params(0), m, { stageStartLoss: 2 }, where);
    expect(v.checks.map((c) => c.state)).toEqual(['failed', 'failed', 'failed']);
  });
});
