// Gate checks and the on-failure decision. Metric values come from one evaluation over the
// gate's validation batches; loss_increase compares the student's validation loss with the
// one measured at the start of the stage ((loss - start) / start, so 0.05 = 5% worse).
import type { GateCheck, GateMetric, GateParams } from '../../core/schema';
import { gateCheckState, type EvalMetrics, type GateCheckResult, type GateCheckState, type GateVerdict } from '../../core/events';

/** Metrics that compare sparse attention with the teacher's: they say nothing while no layer is sparse. */
export const SPARSE_ONLY_METRICS: readonly GateMetric[] = ['attn_kl', 'attn_recall', 'out_cos'];

/**
 * True when the evaluation had no sparse (replaced) layer: every per-layer density is null.
 * Without per-layer values (an empty array) nothing is known, so false.
 */
export function noSparseLayers(metrics: EvalMetrics): boolean {
  const d = metrics.per_layer.density;
  return d.length > 0 && d.every((x) => x === null);
}

/** 'vacuous' for a sparse-only metric on a model without sparse layers, else pass or fail. */
export function checkState(check: GateCheck, value: number, metrics: EvalMetrics): GateCheckState {
  if (SPARSE_ONLY_METRICS.includes(check.metric) && noSparseLayers(metrics)) return 'vacuous';
  return checkPasses(check, value) ? 'passed' : 'failed';
}

export function gateMetricValue(metric: GateMetric, metrics: EvalMetrics, stageStartLoss: number): number {
  switch (metric) {
    case 'loss_increase':
      return stageStartLoss > 0 ? (metrics.loss - stageStartLoss) / stageStartLoss : 0;
    case 'attn_kl': case 'attn_recall': case 'out_cos': case 'logit_kl': case 'ppl_ratio': case 'density':
      return metrics[metric];
    // Mixture-of-experts metrics are absent on a dense model: NaN never passes a check (the runner
    // refuses such a gate before the stage; this keeps a stray record from passing silently).
    case 'expert_usage_min': case 'expert_usage_max': case 'aux_loss':
      return metrics[metric] ?? NaN;
    default:
      throw new Error(`gate: unknown metric '${String(metric)}'`);
  }
}

export function checkPasses(check: GateCheck, value: number): boolean {
  if (!Number.isFinite(value)) return false;
  switch (check.op) {
    case '<': return value < check.threshold;
    case '<=': return value <= check.threshold;
    case '>': return value > check.threshold;
    case '>=': return value >= check.threshold;
    default: throw new Error(`gate: unknown comparison '${String(check.op)}'`);
  }
}

/**
 * Judges one gate attempt (1-based). Vacuous checks neither pass nor fail: the verdict passes
 * when no check failed. On failure the configured policy applies while retries
 * remain; after max_retries failed retries the run stops. 'continue' and 'stop' never retry.
 */
export function judgeGate(
  params: GateParams, metrics: EvalMetrics, stageStartLoss: number,
  where: { stage: number; node: string; attempt: number },
): GateVerdict {
  const checks = params.checks.map((c) => {
    const value = gateMetricValue(c.metric, metrics, stageStartLoss);
    const state = checkState(c, value, metrics);
    return { metric: c.metric, op: c.op, threshold: c.threshold, value, passed: state === 'passed', state };
  });
  const passed = checks.every((c) => c.state !== 'failed');
  let action: GateVerdict['action'] = 'none';
  if (!passed) {
    const retries = where.attempt - 1;
    const retrying = params.on_fail === 'rollback_sparsity' || params.on_fail === 'decay_lr_retry' || params.on_fail === 'refreeze';
    action = retrying && retries >= params.max_retries ? 'stop' : params.on_fail;
  }
  return { stage: where.stage, node: where.node, passed, checks, action, attempt: where.attempt };
}

/** A check's outcome in command-line output: ok, FAIL, or vacuous. */
export function checkMark(check: GateCheckResult): string {
  const state = gateCheckState(check);
  return state === 'passed' ? 'ok' : state === 'failed' ? 'FAIL' : 'vacuous (no sparse layers)';
}
