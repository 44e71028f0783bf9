// StudioApi: the one contract between the renderer and the rest of the studio.
// Two transports implement it unchanged: Electron IPC (preload -> window.studio) and
// WebSocket (`sparse-studio serve`). Every call returns a Promise; events are subscriptions.
import type { Pipeline } from './schema';
import type { RunEvent, RunStatus, EvalMetrics } from './events';
import type { AttentionProfileRequest, ProfileReport } from './attention-profile';

export interface ValidationProblem {
  /** JSON path of the offending value, e.g. `nodes[3].params.lr`. */
  path: string;
  message: string;
  /** Node id the problem belongs to, when there is one (the editor marks that node). */
  node?: string;
}

export interface TemplateSummary { id: string; name: string; description: string }

export interface RunSummary {
  id: string;
  name: string;
  status: RunStatus;
  startedAt: number;
  endedAt?: number;
  stages: number;
  final: Partial<EvalMetrics>;
  /** A fork: the run and 1-based stage it continues (forkRun, `run --from`). */
  parent?: { runId: string; stage: number };
  /** An attached run (attachRun): the folder another process writes, which the studio follows. */
  attachedFrom?: string;
}

export interface RunDetail extends RunSummary {
  pipeline: Pipeline;
  /** Every event so far, in order (the monitor rebuilds its charts from these after a reload). */
  events: RunEvent[];
  runDir: string;
}

export interface PreflightReport {
  ok: boolean;
  problems: ValidationProblem[];
  /** Per node id: a one-line note the editor shows on the node (e.g. "loads: 12 layers"). */
  notes: Record<string, string>;
  /** Per Train node id: estimated peak memory in bytes for the chosen backend. */
  memoryBytes: Record<string, number>;
}

export interface SystemInfo {
  version: string;
  backends: { cpu: { threads: number; simd: string }; cuda: { compiled: boolean; available: boolean; device?: string } };
  nvml: boolean;
}

export interface StudioApi {
  listTemplates(): Promise<TemplateSummary[]>;
  getTemplate(id: string): Promise<Pipeline>;
  validate(pipeline: unknown): Promise<ValidationProblem[]>;
  preflight(pipeline: Pipeline): Promise<PreflightReport>;
  startRun(pipeline: Pipeline, options?: { backend?: 'auto' | 'cpu' | 'cuda' }): Promise<{ runId: string }>;
  pauseRun(runId: string): Promise<void>;
  /** A paused run goes on; an ended one (crashed, failed, cancelled) continues from its last committed checkpoint. */
  resumeRun(runId: string): Promise<void>;
  cancelRun(runId: string): Promise<void>;
  listRuns(): Promise<RunSummary[]>;
  getRun(runId: string): Promise<RunDetail>;
  /**
   * Follows a run folder another process writes (an exported PyTorch project, a mounted cluster
   * folder): it is listed with the studio's runs and streams its new lines as events. Under
   * `serve`, only folders the service reads for its clients. Returns its id.
   */
  attachRun(dir: string): Promise<{ runId: string }>;
  /** Stops following an attached run; its folder is left as it is. */
  detachRun(runId: string): Promise<void>;
  /**
   * Continues run `runId` after its finished stage `stage` (1-based) with `pipeline`, whose
   * stages 1..stage must equal the run's (else refused with one line naming the first differing
   * node): a new run starts from that stage's checkpoint and records its parent. Like `run --from`.
   */
  forkRun(fork: ForkRequest): Promise<{ runId: string }>;
  systemInfo(): Promise<SystemInfo>;
  /**
   * The dense teacher's attention profile (`sparse-studio profile`'s report) for an "Analyze
   * attention" request (core/attention-profile.ts attentionProfileRequest). Runs off the
   * server's thread; answers are cached for the session. Under `serve`, only paths the service
   * reads for its clients.
   */
  analyzeAttention(request: AttentionProfileRequest): Promise<ProfileReport>;
  /** Subscribe to events of every run; returns the unsubscribe function. */
  onRunEvent(listener: (event: RunEvent) => void): () => void;
  /** Electron only (native dialogs): absent in the browser, where the page uploads/downloads. */
  openPipelineFile?(): Promise<OpenedPipelineFile | null>;
  /** Electron only: asks where to save `text`; resolves to the chosen path, or null when cancelled. */
  savePipelineFile?(text: string, suggestedName: string): Promise<string | null>;
  /** Electron only: File-menu commands the page should perform (e.g. open the import dialog). */
  onMenuCommand?(listener: (command: MenuCommand) => void): () => void;
}

export interface ForkRequest {
  runId: string;
  /** 1-based stage of the run whose checkpoint to continue from. */
  stage: number;
  pipeline: Pipeline;
  backend?: 'auto' | 'cpu' | 'cuda';
}

/** A pipeline file the user picked in a native open dialog. */
export interface OpenedPipelineFile { path: string; name: string; text: string }

/** Commands the Electron menu sends to the page. */
export type MenuCommand = 'open-pipeline' | 'export-pipeline';

/** Methods only the Electron transport offers (native file dialogs). */
export const FILE_METHODS = ['openPipelineFile', 'savePipelineFile'] as const;
export type FileMethod = (typeof FILE_METHODS)[number];

/** Method names callable over a transport (everything but the subscription). */
export const STUDIO_METHODS = ['listTemplates', 'getTemplate', 'validate', 'preflight', 'startRun', 'pauseRun',
  'resumeRun', 'cancelRun', 'listRuns', 'getRun', 'attachRun', 'detachRun', 'forkRun', 'systemInfo', 'analyzeAttention'] as const;
export type StudioMethod = (typeof STUDIO_METHODS)[number];
