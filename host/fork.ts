// Forks: continue a finished stage of a run with another pipeline (`run FILE --from RUN_DIR:STAGE`,
// StudioApi.forkRun). A conversion run takes hours; a fork reruns nothing up to that stage.
//
// Design choices:
// - Everything up to and including the stage must be what the parent ran: the pipeline prefix
//   (core/prefix.ts, canonical hash of the nodes and links stages 1..k read, and the seed) is
//   checked here before any work; the model and data hashes the parent recorded in run.json
//   are checked by the engine once it has loaded them (executor.ts, ResumePoint.expect).
// - The new run starts from the parent's committed checkpoint of that stage, linked into its
//   own folder with the metric lines and events before it (run-store.ts createFork): the fork is
//   self-contained, and run.json's `parent` names where it came from.
// - Refusals are one line that names the first differing node.
import { resolve } from 'node:path';
import type { Pipeline } from '../core/schema';
import { prefixDifference, prefixHash } from '../core/prefix';
import { checkResumePoint, readRunPipeline, readRunRecord, type CommittedCheckpoint, type RunRecord } from './run-store';

export interface ForkSource {
  /** The parent run's folder. */
  runDir: string;
  /** 1-based stage (as people count) whose end checkpoint to continue from. */
  stage: number;
}

export interface ForkPlan {
  parentDir: string;
  parent: RunRecord;
  checkpoint: CommittedCheckpoint;
  prefixHash: string;
}

/** Parses `RUN_DIR:STAGE` (STAGE 1-based); throws one line. */
export function parseForkSpec(spec: string): ForkSource {
  const colon = spec.lastIndexOf(':');
  const stageText = colon < 0 ? '' : spec.slice(colon + 1);
  if (colon <= 0 || !/^\d+$/.test(stageText) || Number(stageText) < 1) {
    throw new Error(`--from must be RUN_DIR:STAGE with STAGE a stage number from 1, got "${spec}"`);
  }
  return { runDir: spec.slice(0, colon), stage: Number(stageText) };
}

/** Checks that `pipeline` may continue `from`; returns the plan or throws one line. */
export function planFork(pipeline: Pipeline, from: ForkSource): ForkPlan {
  const parentDir = resolve(from.runDir);
  const where = `cannot continue from stage ${from.stage} of ${parentDir}`;
  let parent: RunRecord;
  let parentPipeline: Pipeline;
  try {
    parent = readRunRecord(parentDir);
    parentPipeline = readRunPipeline(parentDir);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  let expected: string;
  try {
    expected = prefixHash(parentPipeline, from.stage);
  } catch (e) {
    throw new Error(`${where}: the run's pipeline: ${(e as Error).message}`);
  }
  const difference = prefixDifference(parentPipeline, pipeline, from.stage);
  if (difference !== null) throw new Error(`${where}: ${difference}; stages 1-${from.stage} must be unchanged`);
  const checkpoint = parent.checkpoints.find((c) => c.stage === from.stage - 1);
  if (!checkpoint) {
    const done = parent.checkpoints.map((c) => c.stage + 1);
    throw new Error(`${where}: the run has no committed checkpoint of stage ${from.stage} (${done.length ? `finished: ${done.join(', ')}` : 'no stage finished'})`);
  }
  try {
    checkResumePoint(parentDir, checkpoint);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  // Equal by construction now; recorded so a reader can check the parent without our code.
  const hash = prefixHash(pipeline, from.stage);
  if (hash !== expected) throw new Error(`${where}: the prefix hash differs (${expected.slice(0, 12)} vs ${hash.slice(0, 12)})`);
  return { parentDir, parent, checkpoint, prefixHash: hash };
}
