// Applies the model-changing nodes of a stage (Freeze, Unfreeze, Replace) to the engine,
// with the same meaning core/order.ts gives them for the editor:
// - Freeze 'all' also freezes what lies outside the layers (embeddings, final norm).
// - Replace with a trainable indexer makes that layer's selector trainable (a new part trains).
// - Unfreeze with replaced_only touches only layers that are block-sparse at that point;
//   embeddings live outside layers and a selector exists only with an indexer.
// Retries of a failed gate may skip the stage's Replace nodes (rollback_sparsity: the layers
// keep the masks they had before the stage) or its Unfreeze nodes (refreeze).
import type { PipelineNode } from '../../core/schema';
import type { EngineModel } from '../../native/engine-api';
import { layerIndices, setMask, setTrainable, type ModelState } from './model-state';

export interface StageOverrides {
  skipReplace: boolean;
  skipUnfreeze: boolean;
}

export const NO_OVERRIDES: StageOverrides = { skipReplace: false, skipUnfreeze: false };

/** Applies one node; returns a log line describing what changed, or null for nodes it does not handle. */
export function applyStageOp(model: EngineModel, state: ModelState, node: PipelineNode, stage: number, overrides: StageOverrides): string | null {
  const numLayers = state.masks.length;
  switch (node.kind) {
    case 'freeze': {
      const { layers, kinds } = node.params;
      const selection = { layers: layers === 'all' ? ('all' as const) : layerIndices(layers, numLayers, `${node.id}.layers`), kinds: [...kinds] };
      setTrainable(model, state, { selection, trainable: false, stage });
      return `${node.id}: froze ${kinds.join(',')} of ${describeLayers(selection.layers)}`;
    }
    case 'replace': {
      const layers = layerIndices(node.params.layers, numLayers, `${node.id}.layers`);
      if (overrides.skipReplace) return `${node.id}: skipped (rollback_sparsity: ${describeLayers(layers)} keep their previous attention)`;
      for (const l of layers) setMask(model, state, l, node.params.mask);
      if (node.params.mask.selector === 'indexer') setTrainable(model, state, { selection: { layers, kinds: ['selector'] }, trainable: true, stage });
      return `${node.id}: block-sparse attention on ${describeLayers(layers)}`;
    }
    case 'unfreeze': {
      const { kinds, replaced_only } = node.params;
      const all = layerIndices(node.params.layers, numLayers, `${node.id}.layers`);
      if (overrides.skipUnfreeze) return `${node.id}: skipped (refreeze: ${describeLayers(all)} stay frozen)`;
      const layers = replaced_only ? all.filter((l) => state.masks[l] !== null) : all;
      const layerKinds = kinds.filter((k) => k !== 'embeddings' && k !== 'selector');
      setTrainable(model, state, { selection: { layers, kinds: layerKinds }, trainable: true, stage });
      if (kinds.includes('selector')) {
        const withIndexer = layers.filter((l) => state.masks[l]?.selector === 'indexer');
        setTrainable(model, state, { selection: { layers: withIndexer, kinds: ['selector'] }, trainable: true, stage });
      }
      return `${node.id}: unfroze ${kinds.join(',')} of ${describeLayers(layers)}${replaced_only ? ' (replaced layers only)' : ''}`;
    }
    default:
      return null;
  }
}

/** "layers 4-6" in the schema's 1-based numbering. */
export function describeLayers(layers: number[] | 'all'): string {
  if (layers === 'all') return 'all layers';
  if (layers.length === 0) return 'no layers';
  const sorted = [...layers].sort((a, b) => a - b);
  const contiguous = sorted.every((l, i) => i === 0 || l === sorted[i - 1] + 1);
  if (contiguous) return sorted.length === 1 ? `layer ${sorted[0] + 1}` : `layers ${sorted[0] + 1}-${sorted[sorted.length - 1] + 1}`;
  return `layers ${sorted.map((l) => l + 1).join(',')}`;
}
