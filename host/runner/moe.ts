// Mixture-of-experts pieces of a run: the Train node's load-balancing choice as the engine's
// StepOptions.load_balance, and the routing statistics of step and eval results as metric fields
// (docs/metrics.md "Mixture of experts"). Dense models get none of these fields.
import type { PerLayer, StepMetrics } from '../../core/events';
import type { GateMetric, NodeOf } from '../../core/schema';
import type { EvalResult, LoadBalance, ModelConfig, MoeMetrics, StepResult } from '../../native/engine-api';

/** Gate metrics that only a mixture-of-experts model has. */
export const MOE_GATE_METRICS: readonly GateMetric[] = ['expert_usage_min', 'expert_usage_max', 'aux_loss'];

export function isMoeModel(config: ModelConfig): boolean {
  return (config.num_experts ?? 0) > 0;
}

/**
 * The engine's load_balance option for a Train node (null: none). A dense model refuses any
 * term other than 'none' with one line naming the node and field, before the stage starts.
 */
export function loadBalanceOf(train: NodeOf<'train'>, config: ModelConfig): LoadBalance | null {
  const kind = train.params.load_balance ?? 'none';
  if (kind === 'none') return null;
  if (!isMoeModel(config)) {
    throw new Error(`${train.id}.load_balance: '${kind}' needs a mixture-of-experts model, but this ${config.model_type} model is dense (set it to 'none')`);
  }
  const weight = train.params.load_balance_weight;
  return weight === undefined ? { kind } : { kind, weight };
}

/** Refuses gate checks of MoE metrics on a dense model (one line naming the check) at stage start. */
export function checkMoeGate(gate: NodeOf<'gate'>, config: ModelConfig): void {
  if (isMoeModel(config)) return;
  const i = gate.params.checks.findIndex((c) => MOE_GATE_METRICS.includes(c.metric));
  if (i >= 0) {
    throw new Error(`${gate.id}.checks[${i}].metric: ${gate.params.checks[i].metric} needs a mixture-of-experts model, but this ${config.model_type} model is dense`);
  }
}

/**
 * Lowest and highest expert load over every MoE layer, in units of the uniform share:
 * E * usage, so 1 = perfectly balanced, 0 = an expert no token reached, E = one expert takes all.
 */
export function usageBand(usage: Record<string, number[]>): { min: number; max: number } {
  let min = Infinity, max = -Infinity;
  for (const shares of Object.values(usage)) {
    for (const u of shares) {
      const load = u * shares.length;
      if (load < min) min = load;
      if (load > max) max = load;
    }
  }
  return { min, max };
}

function meanOf(values: number[]): number {
  return values.reduce((s, v) => s + v, 0) / values.length;
}

type MoeScalars = Pick<StepMetrics, 'aux_loss' | 'expert_usage_min' | 'expert_usage_max' | 'routing_entropy'>;

function scalars(r: MoeMetrics): MoeScalars {
  if (!r.expert_usage || !r.routing_entropy || r.aux_loss === undefined) return {};
  const band = usageBand(r.expert_usage);
  return {
    aux_loss: r.aux_loss, expert_usage_min: band.min, expert_usage_max: band.max,
    routing_entropy: meanOf(Object.values(r.routing_entropy)),
  };
}

/** The MoE fields of a step record (empty for a dense model). */
export function moeStepFields(r: StepResult): Partial<StepMetrics> {
  const s = scalars(r);
  return s.aux_loss === undefined ? {} : { ...s, load_balance_loss: r.load_balance_loss ?? 0 };
}

/**
 * The MoE fields of an eval record from its batches (null for a dense model). Batches weigh
 * equally, as in aggregateEval: every batch has the same shape, so the mean usage is the usage
 * over all evaluated tokens.
 */
export function moeEvalFields(results: EvalResult[], layers: number):
  { scalars: MoeScalars; perLayer: { expert_usage: (number[] | null)[]; routing_entropy: PerLayer } } | null {
  const first = results[0];
  if (!first?.expert_usage || !first.routing_entropy || first.aux_loss === undefined) return null;
  const usage: Record<string, number[]> = {};
  const entropy: Record<string, number> = {};
  for (const key of Object.keys(first.expert_usage)) {
    const experts = first.expert_usage[key].length;
    usage[key] = Array.from({ length: experts }, (_, e) => meanOf(results.map((r) => r.expert_usage![key][e])));
    entropy[key] = meanOf(results.map((r) => r.routing_entropy![key]));
  }
  return {
    scalars: scalars({ aux_loss: meanOf(results.map((r) => r.aux_loss!)), expert_usage: usage, routing_entropy: entropy }),
    perLayer: {
      expert_usage: Array.from({ length: layers }, (_, l) => usage[String(l)] ?? null),
      routing_entropy: Array.from({ length: layers }, (_, l) => entropy[String(l)] ?? null),
    },
  };
}
