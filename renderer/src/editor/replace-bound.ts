// The attention-KL bound of a Replace node's mask over the layers it replaces, from a teacher
// profile (core/attention-bound.ts has the math; renderer/src/mask-preview.ts maskKeep says
// which blocks the mask keeps, as the engine builds them).
import { maskKlBound, type KlBound } from '../../../core/attention-bound';
import type { ProfileReport } from '../../../core/attention-profile';
import type { LayerRange, MaskSpec } from '../../../core/schema';
import { maskKeep } from '../mask-preview';

export interface ReplaceBound {
  /** 1-based layer and its bound. */
  layers: { layer: number; bound: KlBound }[];
  /** Mean over the layers: attn_kl is the mean over replaced layers, so this bounds the node's share of it. */
  mean: number;
  /** 'oracle' when any layer's value is the oracle floor (the mask has top-k blocks). */
  kind: KlBound['kind'];
}

/** The bound, or a one-line reason there is none. `mask.random_seed` must be the effective seed. */
export function replaceBound(report: ProfileReport, mask: MaskSpec, layers: LayerRange): ReplaceBound | string {
  if (mask.block_size !== report.block) return `the profile uses block ${report.block}, the mask ${mask.block_size}`;
  if (mask.share_gqa_group !== report.share_gqa) return 'the profile and the mask share blocks differently (share_gqa_group)';
  const [first, last] = layers;
  if (!(first >= 1 && last >= first && last <= report.layers.length)) return `layers ${first}-${last} are outside the model's ${report.layers.length}`;
  const out: ReplaceBound['layers'] = [];
  for (let layer = first; layer <= last; layer++) {
    const keep = maskKeep(mask, report.seq, layer - 1, report.mask_heads);
    if (!keep) return 'seeded pairs are chosen at the stage start, so no bound is known before the run';
    out.push({ layer, bound: maskKlBound(report.layers[layer - 1], keep, report.seq, report.block) });
  }
  return {
    layers: out,
    mean: out.reduce((s, l) => s + l.bound.value, 0) / out.length,
    kind: out.some((l) => l.bound.kind === 'oracle') ? 'oracle' : 'static',
  };
}
