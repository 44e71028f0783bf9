// What the pipeline has done to the engine's model so far, as plain data: per-layer attention
// masks and the ordered log of freeze/unfreeze calls. It goes
// into each checkpoint's state.json and is replayed onto a freshly loaded base model on
// rollback and --resume, so the teacher (the frozen base) is always the original weights.
//
// Layer ranges in the schema are 1-based inclusive; everything here is 0-based (engine/HF).
import type { LayerRange, MaskSpec } from '../../core/schema';
import type { EngineModel, ParamSelection } from '../../native/engine-api';

export interface TrainableOp {
  selection: ParamSelection;
  trainable: boolean;
  /** 0-based stage that issued it (refreeze undoes a stage's unfreezes). */
  stage: number;
}

export interface ModelState {
  /** Per 0-based layer: the block-sparse mask, or null for dense attention. */
  masks: (MaskSpec | null)[];
  trainableOps: TrainableOp[];
}

export function initialModelState(numLayers: number): ModelState {
  return { masks: Array.from({ length: numLayers }, () => null), trainableOps: [] };
}

export function cloneModelState(state: ModelState): ModelState {
  return JSON.parse(JSON.stringify(state)) as ModelState;
}

/** 1-based inclusive [first, last] -> 0-based indices, checked against the model depth. */
export function layerIndices(range: LayerRange, numLayers: number, field = 'layers'): number[] {
  const [first, last] = range;
  if (!Number.isInteger(first) || !Number.isInteger(last) || first < 1 || last < first || last > numLayers) {
    throw new Error(`${field}: range [${first}, ${last}] is outside the model's layers 1-${numLayers}`);
  }
  return Array.from({ length: last - first + 1 }, (_, i) => first - 1 + i);
}

/** Layers that currently have block-sparse attention. */
export function replacedLayers(state: ModelState): number[] {
  return state.masks.flatMap((m, i) => (m ? [i] : []));
}

/** Applies a freeze/unfreeze to the engine and records it. */
export function setTrainable(model: EngineModel, state: ModelState, op: TrainableOp): void {
  if (op.selection.layers !== 'all' && op.selection.layers.length === 0) return;
  if (op.selection.kinds.length === 0) return;
  model.setTrainable(op.selection, op.trainable);
  state.trainableOps.push(op);
}

/** Sets one layer's attention on the engine and records it. */
export function setMask(model: EngineModel, state: ModelState, layer: number, mask: MaskSpec | null): void {
  model.setAttention(layer, mask);
  state.masks[layer] = mask ? { ...mask } : null;
}

/** Replays a recorded state onto a freshly loaded (dense, fully trainable) base model. */
export function applyModelState(model: EngineModel, state: ModelState): void {
  state.masks.forEach((mask, layer) => { if (mask) model.setAttention(layer, mask); });
  for (const op of state.trainableOps) model.setTrainable(op.selection, op.trainable);
}

/** The unfreezes a stage issued, as selections (refreeze undoes exactly these). */
export function unfreezesOfStage(state: ModelState, stage: number): ParamSelection[] {
  return state.trainableOps.filter((op) => op.stage === stage && op.trainable).map((op) => op.selection);
}
