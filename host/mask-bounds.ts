// `sparse-studio profile --pipeline FILE`: the attention-KL bound (core/attention-bound.ts) of
// each Replace node's mask from the profile just measured, with the engine's own mask builder
// (native/mask.ts) saying which blocks each mask keeps. The editor shows the same numbers
// beside a Replace node's mask (from its TS mirror of the builder).
import { maskKlBound, type KlBound } from '../core/attention-bound';
import type { ProfileReport } from '../core/attention-profile';
import { executionOrder } from '../core/order';
import type { LayerRange, Pipeline } from '../core/schema';
import { resolveSeeds } from '../core/seeds';
import { BlockSource, buildMask } from '../native/mask';

export interface MaskBoundReport {
  node: string;
  layers: LayerRange;
  /** Mean over the node's layers; null with `skipped` when the profile does not fit the mask. */
  bound: number | null;
  kind?: KlBound['kind'];
  per_layer?: { layer: number; bound: number; kind: KlBound['kind']; density: number }[];
  skipped?: string;
}

/** One entry per Replace node, in execution order. kvHeads: the model's num_key_value_heads. */
export function pipelineMaskBounds(report: ProfileReport, pipeline: Pipeline, kvHeads: number): MaskBoundReport[] {
  const p = resolveSeeds(pipeline);
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const out: MaskBoundReport[] = [];
  for (const id of executionOrder(p)) {
    const node = byId.get(id)!;
    if (node.kind !== 'replace') continue;
    const { mask, layers } = node.params;
    const skip = (why: string) => out.push({ node: id, layers, bound: null, skipped: why });
    const n = Math.ceil(report.seq / report.block);
    const seed = mask.seed_from_teacher;
    if (mask.block_size !== report.block) { skip(`its block is ${mask.block_size}, the profile's ${report.block}`); continue; }
    if (mask.share_gqa_group !== report.share_gqa) { skip('it shares blocks differently from the profile (share_gqa_group)'); continue; }
    if (layers[1] > report.layers.length) { skip(`layers ${layers[0]}-${layers[1]} are outside the model's ${report.layers.length}`); continue; }
    if (seed && report.seq >= mask.dense_below && (seed.blocks !== n || !seed.pairs)) { skip('its seeded pairs are chosen at the stage start'); continue; }
    const perLayer: NonNullable<MaskBoundReport['per_layer']> = [];
    for (let layer = layers[0]; layer <= layers[1]; layer++) {
      const built = buildMask(mask, { seq: report.seq, heads: report.heads, kvHeads, layer: layer - 1 });
      const kept = Array.from({ length: built.nMaskHeads }, (_, m) =>
        built.source.slice(m * n * n, (m + 1) * n * n).map((s) => (s !== BlockSource.Skipped && s !== BlockSource.TopK ? 1 : 0)));
      // Top-k blocks (placed from stand-in scores here) are what each row adds at run time.
      const dynamicPerRow = Array.from({ length: n }, (_, i) => built.source.subarray(i * n, (i + 1) * n).filter((s) => s === BlockSource.TopK).length);
      const b = maskKlBound(report.layers[layer - 1], { kept, dynamicPerRow, density: built.density }, report.seq, report.block);
      perLayer.push({ layer, bound: b.value, kind: b.kind, density: b.density });
    }
    out.push({
      node: id, layers, bound: perLayer.reduce((s, l) => s + l.bound, 0) / perLayer.length,
      kind: perLayer.some((l) => l.kind === 'oracle') ? 'oracle' : 'static', per_layer: perLayer,
    });
  }
  return out;
}

export function formatMaskBounds(bounds: MaskBoundReport[]): string[] {
  return bounds.map((b) => {
    const where = `${b.node} (layers ${b.layers[0]}-${b.layers[1]})`;
    if (b.bound === null) return `${where}: no bound: ${b.skipped}`;
    const layers = b.per_layer!.map((l) => `${l.layer}: ${l.bound.toFixed(4)}`).join(', ');
    return b.kind === 'static'
      ? `${where}: at this mask, attn_kl >= ${b.bound.toFixed(4)} (lower bound on the calibration data; ${layers})`
      : `${where}: at this mask, attn_kl ~ ${b.bound.toFixed(4)} (oracle floor at density ${(100 * b.per_layer![0].density).toFixed(1)}%: top-k blocks, not a strict bound; ${layers})`;
  });
}
