// The StudioApi implementation behind both transports (Electron IPC and `serve`).
//
// Design choices:
// - Plain Node, no Electron: native dialogs come in through `dialogs` from main.ts; without
//   them (serve) the file methods are simply absent and the page uploads/downloads instead.
// - Runs belong to the RunManager (run-manager.ts); this file only forwards to it and relays
//   its events. It is created on first use, so listing templates never starts run machinery.
// - systemInfo is `sparse-studio info`'s report (commands/info.ts), probed once per service:
//   the page and the CLI describe the machine the same way.
import { EventEmitter } from 'node:events';
import { totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { ForkRequest, OpenedPipelineFile, PreflightReport, RunDetail, RunSummary, StudioApi, SystemInfo, TemplateSummary, ValidationProblem } from '../core/api';
import type { RunEvent } from '../core/events';
import type { Pipeline } from '../core/schema';
import { validatePipeline } from '../core/validate';
import { ApiCallError } from './api-call';
import { RunManager } from './run-manager';
import { createAttentionAnalyzer, type AttentionAnalyzerOptions } from './attention-analysis';
import { collectInfo } from './commands/info';
import { clientPathProblems, insideRoots, preflightPipeline, runMemoryRefusal } from './preflight';
import { exportPathProblems } from './runner/export';
import { listTemplates, readTemplate } from './templates';

/** What the service needs from run-manager.ts (the runtime engineer's RunManager). */
export interface RunManagerLike {
  start(pipeline: Pipeline, opts?: { backend?: 'auto' | 'cpu' | 'cuda'; fork?: { runDir: string; stage: number } }): Promise<string>;
  /** A run's folder (forkRun names the parent by id). */
  runDir?(id: string): string;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  cancel(id: string): Promise<void>;
  list(): Promise<RunSummary[]>;
  get(id: string): Promise<RunDetail>;
  /** Follows a run folder another process writes (run-attach.ts); absent: attaching is not offered. */
  attach?(dir: string): Promise<string>;
  detach?(id: string): Promise<void>;
  on(event: 'event', listener: (e: RunEvent) => void): unknown;
  off(event: 'event', listener: (e: RunEvent) => void): unknown;
  close?(): Promise<void> | void;
}

export interface FileDialogs {
  openPipelineFile(): Promise<OpenedPipelineFile | null>;
  savePipelineFile(text: string, suggestedName: string): Promise<string | null>;
}

export interface StudioServiceOptions {
  runsDir: string;
  templatesDir: string;
  /** The studio's folder (holds models/); defaults to the folder above templatesDir. */
  projectRoot?: string;
  /** Relative model/data paths resolve here, as the runner resolves them; default: the working directory. */
  baseDir?: string;
  /** 'builtin:demo' is `${modelsDir}/demo`; defaults to `${projectRoot}/models`. */
  modelsDir?: string;
  /** Electron only: native open/save dialogs. */
  dialogs?: FileDialogs;
  /** Builds the run manager; default: run-manager.ts's RunManager on runsDir. */
  createRunManager?: (opts: { runsDir: string; maxRuns?: number }) => Promise<RunManagerLike>;
  /** Runs whose engines may run at once; later ones queue (default: run-manager.ts's). */
  maxRuns?: number;
  warn?: (line: string) => void;
  /** Memory a run may use (preflight and the run-start check); default: the machine's. */
  totalMemoryBytes?: number;
  /**
   * `serve`: clients are anyone who holds the token (or anyone, with --no-token). Their model
   * and dataset paths must lie in the project, models, runs or working folder; others are
   * refused by path alone (preflight.ts clientPathProblems), in preflight and startRun.
   */
  confineClientPaths?: boolean;
  /** analyzeAttention's job runner (tests); default: a child process per profile. */
  runProfileJob?: AttentionAnalyzerOptions['runJob'];
}

export type StudioService = StudioApi & { close(): Promise<void> };

export function createStudioService(options: StudioServiceOptions): StudioService {
  const projectRoot = options.projectRoot ?? dirname(options.templatesDir);
  const modelsDir = options.modelsDir ?? join(projectRoot, 'models');
  const warn = options.warn ?? ((line: string) => console.warn(line));
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const relay = (event: RunEvent) => events.emit('event', event);

  let manager: Promise<RunManagerLike> | null = null;
  let systemInfoProbe: Promise<SystemInfo> | null = null;
  function runManager(): Promise<RunManagerLike> {
    manager ??= (options.createRunManager ?? defaultRunManager)({ runsDir: options.runsDir, maxRuns: options.maxRuns }).then((m) => {
      m.on('event', relay);
      return m;
    });
    return manager;
  }

  const baseDir = () => options.baseDir ?? process.cwd();
  const clientRoots = () => [projectRoot, modelsDir, options.runsDir, baseDir()];
  const preflightContext = () => ({
    baseDir: baseDir(), modelsDir, totalMemoryBytes: options.totalMemoryBytes ?? totalmem(),
    ...(options.confineClientPaths ? { confineTo: clientRoots() } : {}),
  });

  const analyzer = createAttentionAnalyzer({
    baseDir, modelsDir, runJob: options.runProfileJob,
    ...(options.confineClientPaths ? { confineTo: clientRoots } : {}),
  });

  const service: StudioService = {
    listTemplates: (): Promise<TemplateSummary[]> => listTemplates(options.templatesDir, warn),
    getTemplate: (id: string): Promise<Pipeline> => readTemplate(options.templatesDir, id),
    validate: async (pipeline: unknown): Promise<ValidationProblem[]> => validatePipeline(pipeline),
    preflight: async (pipeline: Pipeline): Promise<PreflightReport> => preflightPipeline(pipeline, validatePipeline(pipeline), preflightContext()),
    async startRun(pipeline, runOptions) {
      const problems = validatePipeline(pipeline);
      if (problems.length > 0) {
        const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
        throw new ApiCallError('invalid_pipeline', `pipeline is not valid: ${problems[0].path}: ${problems[0].message}${more}`);
      }
      // A client never names a folder outside the run folder (runner/export.ts has the rule).
      const refused = [...exportPathProblems(pipeline, { trusted: false }), ...(options.confineClientPaths ? clientPathProblems(pipeline, baseDir(), clientRoots()) : [])];
      if (refused.length > 0) throw new ApiCallError('invalid_pipeline', `${refused[0].path}: ${refused[0].message}`);
      const backend = runOptions?.backend;
      if (backend !== undefined && !['auto', 'cpu', 'cuda'].includes(backend)) {
        throw new ApiCallError('bad_request', `startRun: options.backend must be auto, cpu or cuda, got ${JSON.stringify(backend)}`);
      }
      const refusal = await runMemoryRefusal(backend ? { ...pipeline, backend } : pipeline, preflightContext());
      if (refusal) throw new ApiCallError('insufficient_memory', refusal);
      const runId = await (await runManager()).start(pipeline, backend ? { backend } : undefined);
      return { runId };
    },
    async forkRun(request) {
      const { runId, stage, pipeline, backend } = (request ?? {}) as Partial<ForkRequest>;
      if (typeof runId !== 'string' || runId === '') throw new ApiCallError('bad_request', 'forkRun: runId must be a run id');
      if (typeof stage !== 'number' || !Number.isInteger(stage) || stage < 1) throw new ApiCallError('bad_request', `forkRun: stage must be a stage number from 1, got ${JSON.stringify(stage)}`);
      if (backend !== undefined && !['auto', 'cpu', 'cuda'].includes(backend)) {
        throw new ApiCallError('bad_request', `forkRun: backend must be auto, cpu or cuda, got ${JSON.stringify(backend)}`);
      }
      if (typeof pipeline !== 'object' || pipeline === null) throw new ApiCallError('bad_request', 'forkRun: pipeline must be a pipeline object');
      const problems = validatePipeline(pipeline);
      if (problems.length > 0) throw new ApiCallError('invalid_pipeline', `pipeline is not valid: ${problems[0].path}: ${problems[0].message}`);
      const refused = [...exportPathProblems(pipeline, { trusted: false }), ...(options.confineClientPaths ? clientPathProblems(pipeline, baseDir(), clientRoots()) : [])];
      if (refused.length > 0) throw new ApiCallError('invalid_pipeline', `${refused[0].path}: ${refused[0].message}`);
      const refusal = await runMemoryRefusal(backend ? { ...pipeline, backend } : pipeline, preflightContext());
      if (refusal) throw new ApiCallError('insufficient_memory', refusal);
      const m = await runManager();
      if (!m.runDir) throw new ApiCallError('not_available', 'forkRun is not available in this mode');
      let runDir: string;
      try { runDir = m.runDir(runId); } catch (e) { throw new ApiCallError('not_found', (e as Error).message); }
      try {
        return { runId: await m.start(pipeline, { ...(backend ? { backend } : {}), fork: { runDir, stage } }) };
      } catch (e) {
        throw new ApiCallError('fork_refused', (e as Error).message);
      }
    },
    pauseRun: async (runId) => (await runManager()).pause(runId),
    resumeRun: async (runId) => (await runManager()).resume(runId),
    cancelRun: async (runId) => (await runManager()).cancel(runId),
    listRuns: async () => (await runManager()).list(),
    getRun: async (runId) => (await runManager()).get(runId),
    async attachRun(dir) {
      const abs = resolve(baseDir(), dir);
      // A client of serve reads only the folders the service reads for it (as model and data paths).
      if (options.confineClientPaths && !insideRoots(abs, clientRoots())) {
        throw new ApiCallError('outside_roots', `${abs} is outside the folders this studio reads for its clients (the project, models, runs and working folders)`);
      }
      const m = await runManager();
      if (!m.attach) throw new ApiCallError('not_available', 'attachRun is not available in this mode');
      try {
        return { runId: await m.attach(abs) };
      } catch (e) {
        throw new ApiCallError('not_a_run', (e as Error).message);
      }
    },
    async detachRun(runId) {
      const m = await runManager();
      if (!m.detach) throw new ApiCallError('not_available', 'detachRun is not available in this mode');
      await m.detach(runId);
    },
    systemInfo: (): Promise<SystemInfo> => (systemInfoProbe ??= collectInfo()),
    analyzeAttention: (request) => analyzer.analyze(request),
    onRunEvent(listener) {
      events.on('event', listener);
      // Subscribing starts the run manager so events of runs started elsewhere arrive too.
      runManager().catch(() => { /* reported on the first run call */ });
      return () => { events.off('event', listener); };
    },
    async close() {
      analyzer.close();
      events.removeAllListeners();
      if (!manager) return;
      const m = await manager.catch(() => null);
      if (m) { m.off('event', relay); await m.close?.(); }
    },
  };
  if (options.dialogs) {
    service.openPipelineFile = () => options.dialogs!.openPipelineFile();
    service.savePipelineFile = (text, suggestedName) => options.dialogs!.savePipelineFile(text, suggestedName);
  }
  return service;
}

async function defaultRunManager(opts: { runsDir: string; maxRuns?: number }): Promise<RunManagerLike> {
  return new RunManager(opts);
}
