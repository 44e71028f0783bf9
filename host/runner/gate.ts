// Gate checks and the on-failure decision. Metric values come from one evaluation over the
// gate's validation batches; loss_increase compares the student's validation loss with the
// one measured at the start of the stage ((loss - start) / start, so 0.05 = 5% worse);
// speedup is the measured dense / sparse prefill time (host/runner/prefill-speed.ts).
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

/** What a gate measures besides the evaluation: the stage-start loss and the measured prefill speed-up. */
export interface GateContext {
  stageStartLoss: number;
  /** Dense / sparse prefill time; absent when not measured (a speedup check then fails). */
  speedup?: number;
}

export function gateMetricValue(metric: GateMetric, metrics: EvalMetrics, context: GateContext): number {
  switch (metric) {
    case 'loss_increase':
      return context.stageStartLoss > 0 ? (metrics.loss - context.stageStartLoss) / context.stageStartLoss : 0;
    case 'speedup':
      return context.speedup ?? NaN;
    case 'flops_saved':
      return metrics.flops_saved ?? NaN;
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
 * Judges one gate attempt (1-based). The verdict passes only when every check passed: a
 * vacuous check is not a pass, so a gate over a model with no sparse layers does not pass its
 * attn_kl / attn_recall / out_cos checks. On failure:
 * - decay_lr_retry and refreeze retry while retries remain (max_retries), then the run stops;
 * - rollback_sparsity retries max_retries times with masks one more level denser each time,
 *   then once more with the stage's layers back on their previous masks (the executor tells
 *   these apart by the attempt number); if that attempt fails too the run goes on ('continue')
 *   with the stage marked failed;
 * - 'continue' and 'stop' never retry.
 */
export function judgeGate(
  params: GateParams, metrics: EvalMetrics, context: GateContext,
  where: { stage: number; node: string; attempt: number },
): GateVerdict {
  const checks = params.checks.map((c) => {
    const value = gateMetricValue(c.metric, metrics, context);
    const state = checkState(c, value, metrics);
    return { metric: c.metric, op: c.op, threshold: c.threshold, value, passed: state === 'passed', state };
  });
  const passed = checks.every((c) => c.state === 'passed');
  let action: GateVerdict['action'] = 'none';
  if (!passed) {
    const retries = where.attempt - 1;
    switch (params.on_fail) {
      case 'decay_lr_retry': case 'refreeze':
        action = retries >= params.max_retries ? 'stop' : params.on_fail;
        break;
      case 'rollback_sparsity':
        action = retries > params.max_retries ? 'continue' : 'rollback_sparsity';
        break;
      case 'stop': case 'continue':
        action = params.on_fail;
        break;
    }
  }
  return { stage: where.stage, node: where.node, passed, checks, action, attempt: where.attempt };
}

/**
 * What retry `attempt + 1` of rollback_sparsity runs after attempt `attempt` failed: the stage's
 * masks `levels` levels denser while retries remain, else the layers' previous masks.
 */
export function rollbackStep(attempt: number, maxRetries: number): { levels: number } | 'previous_masks' {
  return attempt <= maxRetries ? { levels: attempt } : 'previous_masks';
}

/** The checks that kept a gate from passing, for the run log: failed ones and vacuous ones. */
export function unpassedChecks(verdict: GateVerdict): string {
  return verdict.checks.filter((c) => gateCheckState(c) !== 'passed').map((c) => gateCheckState(c) === 'vacuous'
    ? `${c.metric} vacuous (no sparse layers)`
    : `${c.metric} ${fmtValue(c.value)} (needs ${c.op} ${c.threshold})`).join(', ');
}

function fmtValue(x: number): string {
  return Number.isFinite(x) ? Number(x.toPrecision(4)).toString() : String(x);
}

/** A check's outcome in command-line output: ok, FAIL, or vacuous. */
export function checkMark(check: GateCheckResult): string {
  const state = gateCheckState(check);
  return state === 'passed' ? 'ok' : state === 'failed' ? 'FAIL' : 'vacuous (no sparse layers)';
}
