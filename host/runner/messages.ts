// Messages between the engine host (studio side) and the engine process. Plain JSON-able
// objects, so node's fork IPC and Electron's utilityProcess carry them unchanged.
import type { EvalMetrics, RunEvent, RunStatus, StageSummary } from '../../core/events';
import type { Pipeline } from '../../core/schema';
import type { ExportLayer } from './export';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** An event as the engine process sends it; the host adds the run id. */
export type EngineEvent = DistributiveOmit<RunEvent, 'runId'>;
/** An event's own fields, before the time stamp is added. */
export type EventBody = DistributiveOmit<RunEvent, 'runId' | 'time'>;

export interface ResumePoint {
  /** 0-based stage whose end checkpoint to continue from. */
  stage: number;
  /** Checkpoint directory, relative to the run directory. */
  path: string;
  /**
   * A fork (host/fork.ts): the model and data hashes the parent run recorded. The run fails
   * before its first stage when what it loaded hashes otherwise.
   */
  expect?: { modelHash?: string; dataHash?: string };
}

export interface StartMessage {
  type: 'start';
  pipeline: Pipeline;
  runDir: string;
  backend: 'auto' | 'cpu' | 'cuda';
  /** Engine threads; fixed per run so CPU results are reproducible. */
  threads: number;
  resume?: ResumePoint;
  /**
   * The run's origin is the user at the command line: an Export may write to an absolute path
   * outside the run folder. Runs a studio client (serve, the page) started never get it.
   */
  trustedPaths?: boolean;
}

export type HostToEngine = StartMessage | { type: 'pause' } | { type: 'resume' } | { type: 'cancel' };

/** Identity of what the run used, for run.json. */
export interface RunIdentity {
  engineVersion: string;
  threads: number;
  backend: string;
  modelHash: string;
  dataHash: string;
  simd: string;
}

export type EngineToHost =
  | { type: 'ready' }
  | { type: 'identity'; identity: RunIdentity }
  | { type: 'event'; event: EngineEvent }
  | { type: 'stage_summary'; summary: StageSummary }
  /** The run's end as the engine saw it; the process exits right after. */
  | { type: 'done'; status: Extract<RunStatus, 'completed' | 'failed' | 'cancelled'>; message?: string; stages: StageSummary[]; final: Partial<EvalMetrics>;
    /** Per layer, what the exported model uses and its last validation density (host/runner/export.ts ExportLayer); after an Export. */
    exported?: ExportLayer[] };
