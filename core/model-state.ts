// The model state a pipeline implies and what each node kind does to it, in one place: the
// editor's layer strip, the validator and the runner all apply nodes through nodeEffect.
//
// Design choices:
// - A node's effect is a list of changes in the engine's terms (0-based layers): set a layer's
//   attention, or set the trainability of a parameter selection. The editor and the validator
//   apply them to plain data; the runner also plays each one on the engine, in this order.
// - Freeze 'all' also freezes what lies outside the layers (embeddings, final norm).
// - Replace with a trainable indexer makes that layer's selector trainable (a new part trains).
// - Unfreeze with replaced_only touches only layers that are block-sparse at that point;
//   embeddings live outside layers and a selector exists only with an indexer.
// - Layer ranges are trusted, not repaired: the validator rejects a range outside the model,
//   and layerIndices throws on one (naming the field) rather than quietly narrowing it, so
//   nothing shows or trains layers other than the ones the file names.
// - Retries of a failed gate change what a stage's nodes do (StageOverrides): rollback_sparsity
//   makes its Replace nodes' masks some levels denser, and after its last retry skips them (the
//   layers keep the masks they had); refreeze leaves some layers of its Unfreeze nodes frozen.
//
// Owned by core/: no Node, DOM or Electron imports here.
import type { LayerRange, MaskSpec, NodeOf, ParamKind, PipelineNode } from './schema';
import { PARAM_KINDS } from './schema';
import { LAYER_PARAM_KINDS, MOE_PARAM_KINDS } from './nodes';
import { denserBy } from './sparsity-step';

export interface LayerState {
  attention: 'dense' | 'sparse';
  mask?: MaskSpec;
  /** Id of the Replace node that made this layer sparse. */
  replacedBy?: string;
  /** Trainable parameter kinds of this layer, in PARAM_KINDS order. */
  trainable: ParamKind[];
}

/** Parameters outside every layer: token embeddings (and the LM head) and the final norm. */
export interface OutsideState { trainable: ParamKind[] }

export interface ModelState { layers: LayerState[]; outside: OutsideState }

/** Parameters a trainability change covers: 0-based layers, or 'all' (outside ones included). */
export interface ParamSelection { layers: number[] | 'all'; kinds: ParamKind[] }

/** One change to the model, in the engine's terms. */
export type ModelChange =
  | { type: 'attention'; layer: number; mask: MaskSpec | null; /** Replace node responsible; absent keeps the layer's. */ by?: string }
  | { type: 'trainable'; selection: ParamSelection; trainable: boolean };

/** What one node does: its changes, in order, and one line that says so (the run log prints it). */
export interface NodeEffect { changes: ModelChange[]; summary: string }

export interface StageOverrides {
  /** rollback_sparsity, retries 1..max_retries: the Replace nodes' masks, this many levels denser (core/sparsity-step.ts). */
  denserLevels: number;
  /** rollback_sparsity after max_retries: the stage's Replace nodes change nothing (the layers keep their previous masks). */
  skipReplace: boolean;
  /** refreeze retries: 0-based layers the stage's Unfreeze nodes leave frozen. */
  refrozen: readonly number[];
}

export const NO_OVERRIDES: StageOverrides = { denserLevels: 0, skipReplace: false, refrozen: [] };

/** Kinds that live outside every layer. */
const OUTSIDE_KINDS: readonly ParamKind[] = ['norms', 'embeddings'];

/** Fresh model: every layer dense, every base parameter trainable, no selector yet. */
export function initialModelState(numLayers: number): ModelState {
  const base: ParamKind[] = LAYER_PARAM_KINDS.filter((k) => k !== 'selector' && !MOE_PARAM_KINDS.includes(k));
  return {
    layers: Array.from({ length: numLayers }, (): LayerState => ({ attention: 'dense', trainable: [...base] })),
    outside: { trainable: [...OUTSIDE_KINDS] },
  };
}

/**
 * 1-based inclusive [first, last] -> 0-based indices. A range outside 1..numLayers (or reversed,
 * or not whole numbers) throws, naming `field`: the validator reports such ranges first.
 */
export function layerIndices(range: LayerRange, numLayers: number, field = 'layers'): number[] {
  const [first, last] = range;
  if (!Number.isInteger(first) || !Number.isInteger(last) || first < 1 || last < first || last > numLayers) {
    throw new Error(`${field}: range [${first}, ${last}] is outside the model's layers 1-${numLayers}`);
  }
  return Array.from({ length: last - first + 1 }, (_, i) => first - 1 + i);
}

/** The layer range a node works on: 'all', a range, or null for kinds that touch no layers. */
export function layerRangeOf(node: PipelineNode): LayerRange | 'all' | null {
  switch (node.kind) {
    case 'freeze':
    case 'replace':
    case 'unfreeze':
      return node.params.layers;
    case 'model':
    case 'dataset':
    case 'distill':
    case 'train':
    case 'gate':
    case 'export':
      return null;
  }
}

/** What `node` does to a model in `state`; null for kinds that leave the model state alone. */
export function nodeEffect(state: ModelState, node: PipelineNode, overrides: StageOverrides = NO_OVERRIDES): NodeEffect | null {
  switch (node.kind) {
    case 'freeze': return freezeEffect(state, node);
    case 'replace': return replaceEffect(state, node, overrides);
    case 'unfreeze': return unfreezeEffect(state, node, overrides);
    case 'model':
    case 'dataset':
    case 'distill':
    case 'train':
    case 'gate':
    case 'export':
      return null;
  }
}

function freezeEffect(state: ModelState, node: NodeOf<'freeze'>): NodeEffect {
  const { layers, kinds } = node.params;
  const selection: ParamSelection = { layers: layers === 'all' ? 'all' : layerIndices(layers, state.layers.length, `${node.id}.layers`), kinds: [...kinds] };
  return { changes: trainableChange(selection, false), summary: `${node.id}: froze ${kinds.join(',')} of ${describeLayers(selection.layers)}` };
}

function replaceEffect(state: ModelState, node: NodeOf<'replace'>, overrides: StageOverrides): NodeEffect {
  const { mask } = node.params;
  const layers = layerIndices(node.params.layers, state.layers.length, `${node.id}.layers`);
  if (overrides.skipReplace) return { changes: [], summary: `${node.id}: skipped (rollback_sparsity: ${describeLayers(layers)} keep their previous attention)` };
  const denser = denserBy(mask, overrides.denserLevels);
  const changes: ModelChange[] = layers.map((layer) => ({ type: 'attention', layer, mask: denser.mask, by: node.id }));
  // A trainable indexer is a new part: it trains from the start ("train only the new parts").
  if (mask.selector === 'indexer') changes.push(...trainableChange({ layers, kinds: ['selector'] }, true));
  const levels = overrides.denserLevels;
  const note = levels > 0 ? `, ${levels} level${levels > 1 ? 's' : ''} denser (rollback_sparsity: ${denser.change})` : '';
  return { changes, summary: `${node.id}: block-sparse attention on ${describeLayers(layers)}${note}` };
}

function unfreezeEffect(state: ModelState, node: NodeOf<'unfreeze'>, overrides: StageOverrides): NodeEffect {
  const { kinds, replaced_only } = node.params;
  const all = layerIndices(node.params.layers, state.layers.length, `${node.id}.layers`);
  const eligible = replaced_only ? all.filter((l) => state.layers[l].attention === 'sparse') : all;
  const kept = eligible.filter((l) => overrides.refrozen.includes(l));
  const layers = eligible.filter((l) => !overrides.refrozen.includes(l));
  const refrozen = kept.length ? `; refreeze: ${describeLayers(kept)} stay frozen` : '';
  const changes = trainableChange({ layers, kinds: kinds.filter((k) => k !== 'embeddings' && k !== 'selector') }, true);
  if (kinds.includes('selector')) {
    changes.push(...trainableChange({ layers: layers.filter((l) => state.layers[l].mask?.selector === 'indexer'), kinds: ['selector'] }, true));
  }
  return { changes, summary: `${node.id}: unfroze ${kinds.join(',')} of ${describeLayers(layers)}${replaced_only ? ' (replaced layers only)' : ''}${refrozen}` };
}

/** A trainability change, or none when it would select nothing. */
function trainableChange(selection: ParamSelection, trainable: boolean): ModelChange[] {
  if ((selection.layers !== 'all' && selection.layers.length === 0) || selection.kinds.length === 0) return [];
  return [{ type: 'trainable', selection, trainable }];
}

/** Applies one change to `state` in place. */
export function applyChange(state: ModelState, change: ModelChange): void {
  switch (change.type) {
    case 'attention': {
      const layer = state.layers[change.layer];
      if (change.mask) {
        layer.attention = 'sparse';
        layer.mask = structuredClone(change.mask);
        if (change.by !== undefined) layer.replacedBy = change.by;
      } else {
        layer.attention = 'dense';
        delete layer.mask;
        delete layer.replacedBy;
      }
      // Only an indexer has selector parameters.
      if (layer.mask?.selector !== 'indexer') layer.trainable = layer.trainable.filter((k) => k !== 'selector');
      return;
    }
    case 'trainable': {
      const { selection: { layers, kinds }, trainable } = change;
      const targets = layers === 'all' ? state.layers.map((_, i) => i) : layers;
      for (const i of targets) {
        const layer = state.layers[i];
        // Only kinds the layer has: embeddings live outside layers, a selector needs an indexer.
        const has = (k: ParamKind) => k !== 'embeddings' && (k !== 'selector' || layer.mask?.selector === 'indexer');
        layer.trainable = trainable
          ? sortKinds([...layer.trainable, ...kinds.filter(has)])
          : layer.trainable.filter((k) => !kinds.includes(k));
      }
      if (layers === 'all') {
        const outside = state.outside.trainable;
        state.outside.trainable = trainable
          ? [...outside, ...kinds.filter((k) => OUTSIDE_KINDS.includes(k) && !outside.includes(k))]
          : outside.filter((k) => !kinds.includes(k));
      }
      return;
    }
  }
}

/** Applies one node to a state in place; returns its effect (null: the node changes nothing). */
export function applyNode(state: ModelState, node: PipelineNode, overrides: StageOverrides = NO_OVERRIDES): NodeEffect | null {
  const effect = nodeEffect(state, node, overrides);
  for (const change of effect?.changes ?? []) applyChange(state, change);
  return effect;
}

/** True when any parameter would receive gradient updates in this state. */
export function hasTrainable(state: ModelState): boolean {
  return state.outside.trainable.length > 0 || state.layers.some((l) => l.trainable.length > 0);
}

/** Per 0-based layer: its block-sparse mask, or null for dense attention. */
export function masksOf(state: ModelState): (MaskSpec | null)[] {
  return state.layers.map((l) => l.mask ?? null);
}

/** "layers 4-6" in the schema's 1-based numbering, from 0-based indices. */
export function describeLayers(layers: number[] | 'all'): string {
  if (layers === 'all') return 'all layers';
  if (layers.length === 0) return 'no layers';
  const sorted = [...layers].sort((a, b) => a - b);
  const contiguous = sorted.every((l, i) => i === 0 || l === sorted[i - 1] + 1);
  if (contiguous) return sorted.length === 1 ? `layer ${sorted[0] + 1}` : `layers ${sorted[0] + 1}-${sorted[sorted.length - 1] + 1}`;
  return `layers ${sorted.map((l) => l + 1).join(',')}`;
}

function sortKinds(kinds: ParamKind[]): ParamKind[] {
  return PARAM_KINDS.filter((k) => kinds.includes(k));
}
