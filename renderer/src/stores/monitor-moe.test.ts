// The monitor on a mixture-of-experts run: MoE step metrics become series (and the load-balance
// chart shows), the latest eval's per-layer expert usage feeds the heatmap; a dense run has neither.
import { describe, expect, it } from 'vitest';
import type { EvalMetrics, RunEvent, StepMetrics } from '../../../core/events';
import { createMonitorStore } from './monitor-store';
import { CHARTS } from '../monitor/chart-data';
import { moeRows } from '../monitor/ExpertUsageHeatmap';

const T0 = 1_700_000_000_000;
const baseStep: StepMetrics = {
  stage: 0, step: 0, stage_step: 0, loss: 5, task_loss: 5, attn_kl_loss: 0, logit_kl_loss: 0, hidden_mse_loss: 0, lr: 1e-4, grad_norm: 1, tokens: 512, density: 1, seq_len: 128,
};
const baseEval: EvalMetrics = {
  stage: 0, step: 1, loss: 4, ppl: 54, ppl_teacher: 54, ppl_ratio: 1, attn_kl: 0, attn_recall: 1, logit_kl: 0, out_cos: 1, density: 1, sparsity: 0, attn_flops_saved: 0,
  per_layer: { attn_kl: [null, null], attn_recall: [null, null], density: [null, null] },
};
const load = (events: RunEvent[]) => {
  const store = createMonitorStore();
  store.getState().load({ id: 'r', name: 'moe', status: 'running', startedAt: T0, stages: 1, final: {}, pipeline: { version: 1 } as never, events, runDir: '/tmp/r' });
  return store.getState().data;
};
const step = (i: number, moe: boolean): RunEvent => ({ runId: 'r', time: T0 + i, type: 'step', metrics: { ...baseStep, step: i, ...(moe ? { aux_loss: 2.1, load_balance_loss: 0.001 * (10 - i), expert_usage_min: 0.5, expert_usage_max: 1.5, routing_entropy: 1.3 } : {}) } });
const loadBalanceChart = CHARTS.find((c) => c.id === 'load_balance_loss')!;

describe('monitor store, mixture of experts', () => {
  it('keeps MoE series and the latest expert usage; the load-balance chart and heatmap show', () => {
    const data = load([step(0, true), step(1, true), {
      runId: 'r', time: T0 + 2, type: 'eval',
      metrics: { ...baseEval, per_layer: { ...baseEval.per_layer, expert_usage: [null, [0.5, 0.25, 0.25, 0]] }, aux_loss: 2.2 },
    }]);
    expect(data.series.get('load_balance_loss')!.length).toBe(2);
    expect(data.series.get('expert_usage_max')!.value.get(1)).toBe(1.5);
    expect(data.expertUsage).toEqual({ step: 1, layers: [null, [0.5, 0.25, 0.25, 0]] });
    expect(moeRows(data.expertUsage!)).toEqual([{ layer: 1, shares: [0.5, 0.25, 0.25, 0] }]);
    expect(loadBalanceChart.shown!(data)).toBe(true);
  });

  it('a dense run has no MoE series, no usage and no load-balance chart', () => {
    const data = load([step(0, false), { runId: 'r', time: T0 + 1, type: 'eval', metrics: baseEval }]);
    expect(data.series.has('aux_loss')).toBe(false);
    expect(data.expertUsage).toBeUndefined();
    expect(loadBalanceChart.shown!(data)).toBe(false);
  });
});

