// Learning rate of a Train stage at a given step. The peak LR is the Train node's `lr` as
// written (the stage-to-stage decay lives in the pipeline, not here); `multiplier` carries the
// plateau rule's and the gate's decay_lr_retry reductions.
import type { ParamKind, TrainParams } from '../../core/schema';

type ScheduleParams = Pick<TrainParams, 'lr' | 'schedule' | 'warmup_steps' | 'steps'>;

/** LR for 0-based `stageStep` of a stage with `params.steps` steps. */
export function learningRateAt(params: ScheduleParams, stageStep: number, multiplier = 1): number {
  const peak = params.lr * multiplier;
  const steps = Math.max(1, params.steps);
  switch (params.schedule) {
    case 'constant':
      return peak;
    case 'cosine':
      return peak * cosineFactor(stageStep, steps);
    case 'warmup_cosine': {
      const warmup = Math.min(Math.max(0, params.warmup_steps), steps);
      // Linear warm-up that reaches the peak on the last warm-up step, then cosine over the rest.
      if (stageStep < warmup) return (peak * (stageStep + 1)) / warmup;
      return peak * cosineFactor(stageStep - warmup, steps - warmup);
    }
    default:
      throw new Error(`schedule: unknown LR schedule '${String((params as ScheduleParams).schedule)}'`);
  }
}

/**
 * The Train node's per-kind learning rates as multipliers of `lr` (the engine's lr_scale), so
 * the schedule and every multiplier apply to each kind alike; undefined when it sets none.
 */
export function lrScaleOf(params: Pick<TrainParams, 'lr' | 'lr_selector' | 'lr_attention'>): Partial<Record<ParamKind, number>> | undefined {
  const scale: Partial<Record<ParamKind, number>> = {};
  if (params.lr_selector !== undefined) scale.selector = params.lr_selector / params.lr;
  if (params.lr_attention !== undefined) for (const k of ['q', 'k', 'v', 'o'] as const) scale[k] = params.lr_attention / params.lr;
  return Object.keys(scale).length ? scale : undefined;
}

/** Half-cosine from 1 at step 0 towards 0 after `total` steps (never exactly 0 on a taken step). */
function cosineFactor(step: number, total: number): number {
  if (total <= 0) return 1;
  const progress = Math.min(step, total) / total;
  return 0.5 * (1 + Math.cos(Math.PI * progress));
}
