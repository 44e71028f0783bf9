// Run manager: starts runs in engine processes, feeds their events to the run store and to
// subscribers, and answers list/get from the store. It outlives every engine process: a
// crashed engine becomes a 'crashed' run with the last error line, nothing more.
// At most `maxRuns` engines run at once (default one per machine: two runs on the same cores
// only slow each other); later runs wait as 'queued' and start in order as slots free.
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import type { EvalMetrics, RunEvent, RunStatus, StageSummary } from '../core/events';
import type { RunDetail, RunSummary } from '../core/api';
import type { Pipeline } from '../core/schema';
import { validatePipeline } from '../core/validate';
import { EngineHost, forkEngine, type EngineExit, type EngineSpawner, type ExitReason } from './engine-host';
import { readJsonl, readRunPipeline, readRunRecord, RunStore, type RunRecord } from './run-store';
import { startSystemMonitor } from './system-monitor';
import { AttachedRuns } from './run-attach';
import type { EngineToHost, EventBody, ResumePoint } from './runner/messages';
import { planFork, type ForkSource } from './fork';
import { exportPathProblems } from './runner/export';

export type Backend = 'auto' | 'cpu' | 'cuda';

export interface StartOptions {
  backend?: Backend;
  /** Continue this run directory from its last committed checkpoint. */
  resumeDir?: string;
  /**
   * The user typed this run at the command line: an Export node may write to an absolute
   * path outside the run folder. Left out (a studio client: serve, the page), it may not.
   */
  trustedPaths?: boolean;
  /** Continue another run after one of its finished stages, with this pipeline (fork.ts). */
  fork?: ForkSource;
}

export interface RunManagerOptions {
  runsDir: string;
  spawn?: EngineSpawner;
  /** Engine threads per run (fixed, recorded in run.json); default: cores, at most 8. */
  threads?: number;
  /** How long cancel waits before SIGKILL. */
  cancelTimeoutMs?: number;
  /** Runs whose engines may run at once; later ones queue. Default $SPARSE_STUDIO_MAX_RUNS, else 1. */
  maxRuns?: number;
}

export interface RunEnd {
  status: RunStatus;
  reason: ExitReason;
  message?: string;
  runDir: string;
  stages: StageSummary[];
  final: Partial<EvalMetrics>;
}

interface ActiveRun {
  store: RunStore;
  /** null while the run is queued. */
  host: EngineHost | null;
  pipeline: Pipeline;
  status: RunStatus;
  lastStep: number;
  stages: StageSummary[];
  stopMonitor: () => void;
  /** The system monitor samples the GPU (the run was placed on one). */
  monitorsGpu?: boolean;
  ended: Promise<RunEnd>;
  settle: (end: RunEnd) => void;
  launch: { backend: Backend; threads: number; resume?: ResumePoint; trustedPaths: boolean };
}

const STATUS_OF_EXIT: Record<ExitReason, RunStatus> = { completed: 'completed', failed: 'failed', cancelled: 'cancelled', crashed: 'crashed', oom: 'crashed' };

export function defaultMaxRuns(): number {
  const fromEnv = Number(process.env.SPARSE_STUDIO_MAX_RUNS);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : 1;
}

export function defaultThreads(): number {
  const fromEnv = Number(process.env.SPARSE_STUDIO_THREADS);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv;
  return Math.max(1, Math.min(8, availableParallelism()));
}

export class RunManager extends EventEmitter<{ event: [RunEvent] }> {
  readonly runsDir: string;
  private readonly spawn: EngineSpawner;
  private readonly threads: number;
  private readonly cancelTimeoutMs: number;
  private readonly active = new Map<string, ActiveRun>();
  private readonly maxRuns: number;
  /** Ids of queued runs, oldest first. */
  private readonly queue: string[] = [];
  /** Run folders other processes write, followed live (run-attach.ts). */
  private readonly attachedRuns = new AttachedRuns((event) => this.emit('event', event));

  constructor(opts: RunManagerOptions) {
    super();
    this.runsDir = resolve(opts.runsDir);
    this.spawn = opts.spawn ?? (() => forkEngine());
    this.threads = opts.threads ?? defaultThreads();
    this.cancelTimeoutMs = opts.cancelTimeoutMs ?? 5000;
    this.maxRuns = opts.maxRuns ?? defaultMaxRuns();
    if (!Number.isInteger(this.maxRuns) || this.maxRuns < 1) throw new Error(`maxRuns must be a positive integer, got ${this.maxRuns}`);
  }

  /** Validates, creates (or reopens) the run directory and starts the engine; returns the run id. */
  async start(pipeline: Pipeline, opts: StartOptions = {}): Promise<string> {
    const problems = validatePipeline(pipeline);
    if (problems.length) throw new Error(`pipeline is invalid: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
    if (opts.fork && opts.resumeDir) throw new Error('a run either resumes or continues another run, not both');
    // Refused before anything is written: stages 1..k must be what the parent ran (fork.ts).
    const fork = opts.fork ? planFork(pipeline, opts.fork) : null;
    // A fork keeps its parent's backend and thread count: the later stages then match an uninterrupted run.
    const backend: Backend = opts.backend ?? (fork ? fork.parent.backend as Backend : undefined) ?? pipeline.backend ?? 'auto';
    const trustedPaths = opts.trustedPaths === true;
    // Refused before any work: an Export that would write outside the run folder (export.ts).
    const exportRefusals = opts.resumeDir
      ? exportPathProblems(readRunPipeline(resolve(opts.resumeDir)), { runDir: resolve(opts.resumeDir), trusted: trustedPaths })
      : exportPathProblems(pipeline, { trusted: trustedPaths });
    if (exportRefusals.length) throw new Error(exportRefusals.map((p) => `${p.path}: ${p.message}`).join('; '));
    let store: RunStore;
    let resume: ResumePoint | undefined;
    if (opts.resumeDir) {
      const reopened = RunStore.reopenForResume(resolve(opts.resumeDir));
      store = reopened.store;
      if (reopened.checkpoint) resume = { stage: reopened.checkpoint.stage, path: reopened.checkpoint.path };
      pipeline = readRunPipeline(store.runDir);
    } else if (fork) {
      const { parent, checkpoint } = fork;
      store = RunStore.createFork(this.runsDir, pipeline, {
        backend, threads: parent.threads ?? this.threads,
        versions: { studio: studioVersion(), node: process.version },
        machine: { platform: process.platform, arch: process.arch, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', totalMemoryBytes: totalmem() },
      }, { runDir: fork.parentDir, checkpoint, link: { runId: parent.id, stage: checkpoint.stage + 1, prefixHash: fork.prefixHash, runDir: fork.parentDir } });
      resume = { stage: checkpoint.stage, path: checkpoint.path, expect: { modelHash: parent.hashes.model, dataHash: parent.hashes.data } };
    } else {
      store = RunStore.create(this.runsDir, pipeline, {
        backend, threads: this.threads,
        versions: { studio: studioVersion(), node: process.version },
        machine: { platform: process.platform, arch: process.arch, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', totalMemoryBytes: totalmem() },
      });
    }
    // A resumed run keeps its thread count: the CPU backend is bit-reproducible per count.
    const threads = opts.resumeDir || fork ? (store.run.threads ?? this.threads) : this.threads;
    const id = store.id;
    let settle!: (end: RunEnd) => void;
    const ended = new Promise<RunEnd>((resolveEnd) => { settle = resolveEnd; });
    const run: ActiveRun = {
      store, host: null, pipeline, status: 'queued', lastStep: resume ? (store.run.checkpoints.at(-1)?.step ?? 0) : 0,
      stages: [...store.run.stages], stopMonitor: () => {}, ended, settle, launch: { backend, threads, resume, trustedPaths },
    };
    this.active.set(id, run);
    // The run cannot be recorded any more: stop its engine; finish() reports why.
    store.onWriteError = (error) => {
      this.emit('event', { type: 'log', level: 'error', message: error.message, runId: id, time: Date.now() } as RunEvent);
      run.host?.kill();
    };
    if (this.engines() >= this.maxRuns) {
      this.queue.push(id);
      store.update({ status: 'queued', threads, backend, hostPid: process.pid });
      this.record(id, run, { type: 'status', status: 'queued', message: `queued: ${this.engines()} of ${this.maxRuns} run slots in use` });
      return id;
    }
    this.launch(id, run);
    return id;
  }

  /** Engines started and not yet ended. */
  private engines(): number {
    let n = 0;
    for (const run of this.active.values()) if (run.host) n += 1;
    return n;
  }

  /** Starts a run's engine; throws (the run recorded as crashed) when the process cannot start. */
  private launch(id: string, run: ActiveRun): void {
    const { store } = run;
    const { backend, threads, resume, trustedPaths } = run.launch;
    store.update({ status: 'running', threads, backend, hostPid: process.pid });
    let host: EngineHost;
    try {
      host = new EngineHost(this.spawn, this.cancelTimeoutMs);
    } catch (e) {
      const message = `engine process could not start: ${(e as Error).message}`;
      store.update({ status: 'crashed', endedAt: Date.now(), exitReason: 'crashed', message });
      store.close();
      this.active.delete(id);
      run.settle({ status: 'crashed', reason: 'crashed', message, runDir: store.runDir, stages: run.stages, final: {} });
      throw new Error(message);
    }
    run.host = host;
    run.status = 'running';
    host.on('message', (m) => this.onEngineMessage(id, run, m));
    void host.exited.then((exit) => {
      run.settle(this.finish(id, run, exit));
      this.startQueued();
    });
    this.monitor(id, run, backend === 'cuda');
    const parent = store.run.parent;
    const message = !resume ? undefined
      : parent && store.run.resumes === 0 ? `continuing run ${parent.runId} after stage ${parent.stage} (${resume.path})` : `resuming from ${resume.path}`;
    this.record(id, run, { type: 'status', status: 'running', message });
    host.start({ pipeline: run.pipeline, runDir: store.runDir, backend, threads, resume, ...(trustedPaths ? { trustedPaths } : {}) });
  }

  /**
   * (Re)starts a run's system samples: the GPU's when the run uses one, else the engine
   * process's CPU and RSS. 'auto' learns its placement from the engine's identity message.
   */
  private monitor(id: string, run: ActiveRun, useGpu: boolean): void {
    const pid = run.host?.pid;
    run.stopMonitor();
    run.monitorsGpu = useGpu;
    if (pid === undefined) return;
    run.stopMonitor = startSystemMonitor({
      pid, useGpu,
      onSample: (sample) => this.record(id, run, { type: 'system', sample }),
      onUnavailable: (reason) => this.record(id, run, { type: 'log', level: 'warn', message: reason }),
    });
  }

  /** Starts queued runs, oldest first, while slots are free. */
  private startQueued(): void {
    while (this.queue.length > 0 && this.engines() < this.maxRuns) {
      const id = this.queue.shift()!;
      const run = this.active.get(id);
      if (!run) continue;
      try { this.launch(id, run); } catch { /* recorded as crashed by launch */ }
    }
  }

  /** Ends a run that never started (cancelled while queued, or the studio closing). */
  private dropQueued(id: string, run: ActiveRun, message: string): void {
    this.queue.splice(this.queue.indexOf(id), 1);
    run.status = 'cancelled';
    this.record(id, run, { type: 'status', status: 'cancelled', message });
    this.record(id, run, { type: 'summary', status: 'cancelled', runDir: run.store.runDir, stages: run.stages, final: {} });
    run.store.update({ status: 'cancelled', endedAt: Date.now(), exitReason: 'cancelled', message });
    run.store.close();
    this.active.delete(id);
    run.settle({ status: 'cancelled', reason: 'cancelled', message, runDir: run.store.runDir, stages: run.stages, final: {} });
  }

  /** Resolves when the run's engine process has ended and the store is final. */
  async waitForEnd(id: string): Promise<RunEnd> {
    const run = this.active.get(id);
    if (run) return run.ended;
    const record = readRunRecord(this.runDir(id));
    return { status: record.status, reason: (record.exitReason as ExitReason) ?? 'completed', message: record.message, runDir: this.runDir(id), stages: record.stages, final: record.final };
  }

  /** Process id of a running run's engine (system views, tests). */
  enginePid(id: string): number | undefined {
    return this.active.get(id)?.host?.pid;
  }

  async pause(id: string): Promise<void> {
    const run = this.activeRun(id);
    if (run.status !== 'running' || !run.host) return;
    run.host.pause();
    run.status = 'paused';
    run.store.update({ status: 'paused' });
    this.record(id, run, { type: 'status', status: 'paused' });
  }

  /**
   * Resumes a paused run; a run that has ended without completing (crashed, failed, cancelled)
   * continues from its last committed checkpoint in its own folder, as `--resume` does, with
   * the client's rights (trustedPaths off).
   */
  async resume(id: string): Promise<void> {
    if (this.attachedRuns.has(id)) this.activeRun(id); // says why not
    if (!this.active.has(id)) {
      const runDir = this.runDir(id);
      const record = this.settleInterrupted(id, readRunRecord(runDir));
      if (record.status === 'completed') throw new Error(`run '${id}' has completed; there is nothing to resume`);
      if (!['crashed', 'failed', 'cancelled'].includes(record.status)) throw new Error(`run '${id}' is ${record.status}; it cannot be resumed`);
      await this.start(readRunPipeline(runDir), { resumeDir: runDir });
      return;
    }
    const run = this.activeRun(id);
    if (run.status !== 'paused' || !run.host) return;
    run.host.resume();
    run.status = 'running';
    run.store.update({ status: 'running' });
    this.record(id, run, { type: 'status', status: 'running' });
  }

  async cancel(id: string): Promise<void> {
    const run = this.activeRun(id);
    if (run.host) {
      this.record(id, run, { type: 'log', level: 'info', message: 'cancel requested; the run stops before its next step' });
      run.host.cancel();
    }
    else this.dropQueued(id, run, 'cancelled before it started');
  }

  /** Kills every running engine and waits for their runs to be recorded (studio shutdown). */
  async close(): Promise<void> {
    this.attachedRuns.close();
    for (const id of [...this.queue]) this.dropQueued(id, this.active.get(id)!, 'the studio closed before it started');
    const ended = [...this.active.values()].map((run) => { run.host?.kill(); return run.ended; });
    await Promise.all(ended);
  }

  async list(): Promise<RunSummary[]> {
    if (!existsSync(this.runsDir)) return this.attachedRuns.list();
    const ids = readdirSync(this.runsDir).filter((name) => !name.startsWith('.') && existsSync(join(this.runsDir, name, 'run.json')) && statSync(join(this.runsDir, name)).isDirectory());
    const out: RunSummary[] = [];
    for (const id of ids.sort().reverse()) {
      try {
        const r = this.settleInterrupted(id, readRunRecord(join(this.runsDir, id)));
        const status = this.active.get(id)?.status ?? r.status;
        out.push({ id, name: r.name, status, startedAt: r.startedAt, endedAt: r.endedAt, stages: r.stages.length, final: r.final,
          ...(r.parent ? { parent: { runId: r.parent.runId, stage: r.parent.stage } } : {}) });
      } catch {
        // A run directory that cannot be read is left out of the list rather than breaking it.
      }
    }
    return [...out, ...this.attachedRuns.list()];
  }

  /** Follows a run folder another process writes; one of this manager's own folders is just its id. */
  async attach(dir: string): Promise<string> {
    const abs = resolve(dir);
    if (resolve(abs, '..') === this.runsDir && existsSync(join(abs, 'run.json'))) return abs.slice(this.runsDir.length + 1);
    return this.attachedRuns.attach(abs);
  }

  async detach(id: string): Promise<void> {
    this.attachedRuns.detach(id);
  }

  async get(id: string): Promise<RunDetail> {
    if (this.attachedRuns.has(id)) return this.attachedRuns.get(id);
    const runDir = this.runDir(id);
    const active = this.active.get(id);
    active?.store.flush();
    const record = this.settleInterrupted(id, readRunRecord(runDir));
    return {
      id, name: record.name, status: active?.status ?? record.status, startedAt: record.startedAt, endedAt: record.endedAt,
      stages: record.stages.length, final: record.final, pipeline: readRunPipeline(runDir),
      ...(record.parent ? { parent: { runId: record.parent.runId, stage: record.parent.stage } } : {}),
      events: readJsonl<RunEvent>(join(runDir, 'events.jsonl')), runDir,
    };
  }

  runDir(id: string): string {
    if (!/^[A-Za-z0-9._-]+$/.test(id) || id.startsWith('.')) throw new Error(`run id '${id}' is not valid`);
    const dir = join(this.runsDir, id);
    if (!existsSync(join(dir, 'run.json')) && !this.active.has(id)) throw new Error(`run '${id}': not found in ${this.runsDir}`);
    return this.active.get(id)?.store.runDir ?? dir;
  }

  /**
   * A run recorded as live whose hosting process is gone (the studio or CLI was killed) can
   * never finish: it is marked crashed, once, so lists stop showing it as running.
   */
  private settleInterrupted(id: string, record: RunRecord): RunRecord {
    const live = record.status === 'running' || record.status === 'paused' || record.status === 'pending' || record.status === 'queued';
    if (!live || this.active.has(id) || record.hostPid === undefined || processAlive(record.hostPid)) return record;
    const message = `interrupted: the process that ran it (pid ${record.hostPid}) exited; resume with --resume ${join(this.runsDir, id)}`;
    const settled: RunRecord = { ...record, status: 'crashed', exitReason: 'crashed', message };
    try {
      writeFileSync(join(this.runsDir, id, 'run.json.tmp'), JSON.stringify(settled, null, 2) + '\n');
      renameSync(join(this.runsDir, id, 'run.json.tmp'), join(this.runsDir, id, 'run.json'));
    } catch {
      // Read-only run folders still list correctly; the fix is just not persisted.
    }
    return settled;
  }

  private activeRun(id: string): ActiveRun {
    const run = this.active.get(id);
    if (!run) throw new Error(this.attachedRuns.has(id) ? `run '${id}' is attached: the process that writes it controls it` : `run '${id}' is not running`);
    return run;
  }

  private onEngineMessage(id: string, run: ActiveRun, message: EngineToHost): void {
    switch (message.type) {
      case 'identity': {
        const { identity } = message;
        run.store.update({
          threads: identity.threads,
          versions: { ...run.store.run.versions, engine: identity.engineVersion },
          hashes: { ...run.store.run.hashes, model: identity.modelHash, data: identity.dataHash },
        });
        // Samples follow where the engine placed the run ('auto' on a GPU reports the GPU).
        if ((identity.backend === 'cuda') !== (run.monitorsGpu === true)) this.monitor(id, run, identity.backend === 'cuda');
        break;
      }
      case 'stage_summary': {
        run.stages = [...run.stages.filter((s) => s.stage !== message.summary.stage), message.summary].sort((a, b) => a.stage - b.stage);
        run.store.update({ stages: run.stages });
        break;
      }
      case 'done':
        // What the exported model uses, per layer, belongs to the run's record too.
        if (message.exported) run.store.update({ exported: message.exported });
        break;
      case 'event': {
        const event = { ...message.event, runId: id } as RunEvent;
        if (event.type === 'step') run.lastStep = event.metrics.step + 1;
        run.store.append(event);
        if (event.type === 'checkpoint') run.store.commitCheckpoint({ stage: event.stage, path: event.path, step: run.lastStep });
        this.emit('event', event);
        break;
      }
      default:
        break;
    }
  }

  private finish(id: string, run: ActiveRun, engineExit: EngineExit): RunEnd {
    run.stopMonitor();
    const writeError = run.store.writeError;
    const exit: EngineExit = writeError ? { ...engineExit, reason: 'failed', message: writeError.message } : engineExit;
    const status = STATUS_OF_EXIT[exit.reason];
    run.status = status;
    const final = lastEval(run.store.runDir);
    if (exit.reason === 'crashed' || exit.reason === 'oom') this.record(id, run, { type: 'log', level: 'error', message: exit.message ?? 'engine process crashed' });
    this.record(id, run, { type: 'status', status, message: exit.message });
    this.record(id, run, { type: 'summary', status, runDir: run.store.runDir, stages: run.stages, final });
    run.store.update({ status, endedAt: Date.now(), exitReason: exit.reason, message: exit.message, stages: run.stages, final });
    run.store.close();
    this.active.delete(id);
    return { status, reason: exit.reason, message: exit.message, runDir: run.store.runDir, stages: run.stages, final };
  }

  private record(id: string, run: ActiveRun, body: EventBody): void {
    const event = { ...body, runId: id, time: Date.now() } as RunEvent;
    run.store.append(event);
    this.emit('event', event);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The final metrics: the last eval in metrics.jsonl (also right after a resume), per-layer arrays left out. */
function lastEval(runDir: string): Partial<EvalMetrics> {
  let lines: ({ type: string } & EvalMetrics)[];
  try { lines = readJsonl(join(runDir, 'metrics.jsonl')); } catch { return {}; } // an unreadable folder has no final metrics
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i].type === 'eval') {
      const { type: _type, per_layer: _perLayer, ...metrics } = lines[i];
      return metrics;
    }
  }
  return {};
}

let cachedVersion: string | null = null;
function studioVersion(): string {
  if (cachedVersion) return cachedVersion;
  try {
    cachedVersion = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    cachedVersion = 'unknown';
  }
  return cachedVersion;
}
