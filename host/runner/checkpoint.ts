// Stage checkpoints: checkpoints/stage-<n>/ holds the student (engine.save: config.json +
// model.safetensors), the optimiser state and state.json (what the runtime needs to rebuild
// the model on a fresh base: masks, freeze/unfreeze log, global step, LR). Written under a
// temporary name and renamed, so a directory named stage-<n> is always complete.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { EngineModel } from '../../native/engine-api';
import type { ModelState } from './model-state';

export interface CheckpointState {
  format: 'sparse-studio-checkpoint/1';
  /** 0-based stage the checkpoint closes. */
  stage: number;
  /** Global optimiser steps done. */
  step: number;
  /** Last learning rate used. */
  lr: number;
  modelState: ModelState;
}

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
    const body: CheckpointState = { format: 'sparse-studio-checkpoint/1', ...state };
    writeFileSync(join(tmp, STATE_FILE), JSON.stringify(body, null, 2) + '\n');
    if (existsSync(final)) rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return rel;
}

export function readCheckpointState(dir: string): CheckpointState {
  const file = join(dir, STATE_FILE);
  if (!existsSync(file)) throw new Error(`${file}: no such file (incomplete checkpoint)`);
  let state: CheckpointState;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as CheckpointState;
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (state.format !== 'sparse-studio-checkpoint/1') throw new Error(`${file}: format: expected 'sparse-studio-checkpoint/1'`);
  return state;
}
