// Stage checkpoints: checkpoints/stage-<n>/ holds the student (engine.save: config.json +
// model.safetensors), the optimiser state and state.json (what the runtime needs to rebuild
// the model on a fresh base: per-layer state, freeze/unfreeze log, global step, LR). Written
// under a temporary name, every file and folder fsynced, then renamed and checkpoints/ fsynced,
// so a directory named stage-<n> is always complete, also after a power cut. An older
// stage-<n> (a rerun of the stage) is moved aside, not deleted, until the new one is in place;
// the host records the checkpoint in run.json only after it has arrived.
// Format 2 stores core's ModelState; format 1 (masks + log only) is still read.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { EngineModel } from '../../native/engine-api';
import { fromLegacyModelState, type LegacyModelState, type RunModelState } from './model-state';
import { durableFs, syncTree } from '../durable-fs';

export interface CheckpointState {
  format: typeof CHECKPOINT_FORMAT;
  /** 0-based stage the checkpoint closes. */
  stage: number;
  /** Global optimiser steps done. */
  step: number;
  /** Last learning rate used. */
  lr: number;
  modelState: RunModelState;
}

export const CHECKPOINT_FORMAT = 'sparse-studio-checkpoint/2';
const LEGACY_FORMAT = 'sparse-studio-checkpoint/1';

export const MODEL_DIR = 'model';
export const OPTIMIZER_FILE = 'optimizer.bin';
export const STATE_FILE = 'state.json';

export function checkpointRelPath(stage: number): string {
  return join('checkpoints', `stage-${stage}`);
}

/** Writes checkpoints/stage-<n>/ atomically; returns its path relative to the run directory. */
export async function writeCheckpoint(model: EngineModel, runDir: string, state: Omit<CheckpointState, 'format'>): Promise<string> {
  const rel = checkpointRelPath(state.stage);
  const final = join(runDir, rel);
  const tmp = join(runDir, 'checkpoints', `.stage-${state.stage}.tmp-${randomBytes(3).toString('hex')}`);
  mkdirSync(tmp, { recursive: true });
  try {
    await model.save(join(tmp, MODEL_DIR));
    await model.saveOptimizer(join(tmp, OPTIMIZER_FILE));
    const body: CheckpointState = { format: CHECKPOINT_FORMAT, ...state };
    writeFileSync(join(tmp, STATE_FILE), JSON.stringify(body, null, 2) + '\n');
    syncTree(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const parent = join(runDir, 'checkpoints');
  const aside = existsSync(final) ? join(parent, `.stage-${state.stage}.old-${randomBytes(3).toString('hex')}`) : null;
  if (aside) renameSync(final, aside);
  try {
    renameSync(tmp, final);
  } catch (e) {
    if (aside) renameSync(aside, final); // the old one stays the checkpoint
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  durableFs.syncDir(parent);
  if (aside) rmSync(aside, { recursive: true, force: true });
  return rel;
}

export function readCheckpointState(dir: string): CheckpointState {
  const file = join(dir, STATE_FILE);
  if (!existsSync(file)) throw new Error(`${file}: no such file (incomplete checkpoint)`);
  let state: Omit<CheckpointState, 'format'> & { format: string };
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as typeof state;
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (state.format === LEGACY_FORMAT) {
    return { ...state, format: CHECKPOINT_FORMAT, modelState: fromLegacyModelState(state.modelState as unknown as LegacyModelState) };
  }
  if (state.format !== CHECKPOINT_FORMAT) throw new Error(`${file}: format: expected '${CHECKPOINT_FORMAT}'`);
  return state as CheckpointState;
}
