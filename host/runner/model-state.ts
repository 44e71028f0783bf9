// What the pipeline has done to the engine's model so far, as plain data: core's ModelState
// (per-layer attention and trainable parameters) plus the ordered log of the trainability calls
// made on the engine. It goes into each checkpoint's state.json and is replayed onto a freshly
// loaded base model on rollback and --resume, so the teacher (the frozen base) is always the
// original weights. The calls are replayed as made, not re-derived from the state, because
// unfreezing copies the teacher's tensors first.
//
// What each node changes is core/model-state.ts's nodeEffect; this module plays changes on the
// engine. Layer indices here are 0-based (engine/HF).
import { applyChange, initialModelState, masksOf, type ModelChange, type ModelState, type ParamSelection } from '../../core/model-state';
import type { MaskSpec } from '../../core/schema';
import type { EngineModel } from '../../native/engine-api';

export interface TrainableOp {
  selection: ParamSelection;
  trainable: boolean;
  /** 0-based stage that issued it. */
  stage: number;
}

/** core's ModelState with the engine calls that produced its trainability, in order. */
export interface RunModelState extends ModelState {
  trainableOps: TrainableOp[];
}

export function initialRunModelState(numLayers: number): RunModelState {
  return { ...initialModelState(numLayers), trainableOps: [] };
}

export function cloneRunModelState(state: RunModelState): RunModelState {
  return JSON.parse(JSON.stringify(state)) as RunModelState;
}

/** Plays changes on the engine, in order, and records them in `state`. */
export function applyChanges(model: EngineModel, state: RunModelState, changes: readonly ModelChange[], stage: number): void {
  for (const change of changes) {
    switch (change.type) {
      case 'attention':
        model.setAttention(change.layer, change.mask);
        break;
      case 'trainable':
        model.setTrainable(change.selection, change.trainable);
        state.trainableOps.push({ selection: change.selection, trainable: change.trainable, stage });
        break;
    }
    applyChange(state, change);
  }
}

/** Replays a recorded state onto a freshly loaded (dense, fully trainable) base model. */
export function replayModelState(model: EngineModel, state: RunModelState): void {
  masksOf(state).forEach((mask, layer) => { if (mask) model.setAttention(layer, mask); });
  for (const op of state.trainableOps) model.setTrainable(op.selection, op.trainable);
}

/** The state.json of checkpoints written before the runner shared core's ModelState. */
export interface LegacyModelState {
  masks: (MaskSpec | null)[];
  trainableOps: TrainableOp[];
}

/** Rebuilds the full state from a legacy record (masks first: a selector needs its indexer). */
export function fromLegacyModelState(legacy: LegacyModelState): RunModelState {
  const state = initialRunModelState(legacy.masks.length);
  legacy.masks.forEach((mask, layer) => { if (mask) applyChange(state, { type: 'attention', layer, mask }); });
  for (const op of legacy.trainableOps) {
    applyChange(state, { type: 'trainable', selection: op.selection, trainable: op.trainable });
    state.trainableOps.push(op);
  }
  return state;
}
