// Turns the engine's per-batch EvalResults into one EvalMetrics record (docs/metrics.md,
// Metrics). Batches are averaged with equal weight (all have the same shape); perplexities
// come from the mean losses; layer means run over replaced layers only (dense layers are null).
// A mixture-of-experts model adds its routing statistics (moe.ts).
import type { EvalMetrics, PerLayer } from '../../core/events';
import type { EvalResult } from '../../native/engine-api';
import { moeEvalFields } from './moe';

export function aggregateEval(results: EvalResult[], where: { stage: number; step: number }): EvalMetrics {
  if (results.length === 0) throw new Error('eval: no validation batches were evaluated');
  const mean = (pick: (r: EvalResult) => number) => results.reduce((s, r) => s + pick(r), 0) / results.length;
  const layers = results[0].attn_kl.length;
  const perLayer = (pick: (r: EvalResult) => (number | null)[]): PerLayer =>
    Array.from({ length: layers }, (_, l) => {
      const values = results.map((r) => pick(r)[l]);
      return values.some((v) => v === null || v === undefined) ? null : (values as number[]).reduce((s, v) => s + v, 0) / values.length;
    });
  const attnKl = perLayer((r) => r.attn_kl);
  const attnRecall = perLayer((r) => r.attn_recall);
  const density = perLayer((r) => r.density);
  // Engines before the token-level count report no flops_saved: read those layers as 1 - density.
  const flopsSavedLayer = perLayer((r) => r.flops_saved ?? r.density.map((d) => (d === null ? null : 1 - d)));
  const loss = mean((r) => r.loss);
  const lossTeacher = mean((r) => r.loss_teacher);
  const ppl = Math.exp(loss);
  const pplTeacher = Math.exp(lossTeacher);
  const replaced = density.filter((d): d is number => d !== null);
  const meanDensity = replaced.length ? replaced.reduce((s, d) => s + d, 0) / replaced.length : 1;
  // Whole-model shares skipped, dense layers skipping nothing (every layer has the same causal
  // token pairs, so the whole-model share is the mean over all layers): block pairs and tokens.
  const blockPairsSaved = layers > 0 ? replaced.reduce((s, d) => s + (1 - d), 0) / layers : 0;
  const flopsSaved = layers > 0 ? flopsSavedLayer.reduce<number>((s, f) => s + (f ?? 0), 0) / layers : 0;
  const moe = moeEvalFields(results, layers);
  return {
    stage: where.stage,
    step: where.step,
    loss,
    ppl,
    ppl_teacher: pplTeacher,
    ppl_ratio: pplTeacher / ppl,
    attn_kl: meanOrZero(attnKl),
    attn_recall: replaced.length ? meanOrZero(attnRecall) : 1,
    logit_kl: mean((r) => r.logit_kl),
    out_cos: mean((r) => r.out_cos),
    density: meanDensity,
    sparsity: 1 - meanDensity,
    attn_flops_saved: blockPairsSaved,
    flops_saved: flopsSaved,
    per_layer: { attn_kl: attnKl, attn_recall: attnRecall, density, flops_saved: flopsSavedLayer, ...moe?.perLayer },
    ...moe?.scalars,
  };
}

function meanOrZero(values: PerLayer): number {
  const xs = values.filter((v): v is number => v !== null);
  return xs.length ? xs.reduce((s, v) => s + v, 0) / xs.length : 0;
}
