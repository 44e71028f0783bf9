// Run store: one self-contained directory per run.
//
//   runs/<id>/pipeline.json    canonical JSON of the pipeline that ran
//             run.json         status, versions, hashes, machine, timestamps, committed checkpoints
//             metrics.jsonl    step and eval metrics only, no wall-clock: byte-identical across
//                              reproducible runs
//             events.jsonl     every event with its time (the monitor redraws from it)
//             system.jsonl     system samples (once a second)
//             checkpoints/stage-<n>/   written by the engine process (model, optimizer, state.json)
//
// Design choices:
// - Appends are buffered and flushed at least every second and at every stage boundary, so a
//   killed engine (or a killed studio) loses at most a second of events.
// - A checkpoint counts as committed only once the store has flushed every metric line before
//   it and recorded the line count in run.json; --resume truncates metrics.jsonl to that count.
// - Readers tolerate a torn last line (the writer may have died mid-append).
// - run.json is replaced atomically and durably (temp name fsynced, renamed, folder fsynced).
// - Once the run is going, a failed write (disk full, folder removed) never throws into the
//   caller's event loop: the store reports it once through onWriteError and skips later writes,
//   so the run manager fails that run and the server goes on.
import { appendFileSync, copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync, writeFileSync, openSync, ftruncateSync, closeSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { EvalMetrics, RunEvent, RunStatus, StageSummary } from '../core/events';
import type { Pipeline } from '../core/schema';
import type { ExportLayer } from './runner/export';
import { canonicalJson } from '../core/canonical';
import { durableFs, replaceFileDurably } from './durable-fs';
import { readCheckpointState } from './runner/checkpoint';

export interface CommittedCheckpoint {
  /** 0-based stage the checkpoint closes. */
  stage: number;
  /** Relative to the run directory. */
  path: string;
  /** Global optimiser steps done when it was written. */
  step: number;
  /** metrics.jsonl lines that precede it. */
  metricsLines: number;
}

export interface RunRecord {
  id: string;
  name: string;
  status: RunStatus;
  startedAt: number;
  endedAt?: number;
  /** Last error or log line when the run failed or crashed. */
  message?: string;
  /** How the engine process ended: completed, failed, cancelled, crashed, oom. */
  exitReason?: string;
  backend: string;
  /** Engine threads (fixed per run: the CPU backend is bit-reproducible for a fixed count). */
  threads?: number;
  versions: { studio: string; node: string; engine?: string };
  /** Process that hosts the run (studio, serve or CLI): a 'running' run whose host is gone was interrupted. */
  hostPid?: number;
  hashes: { pipeline: string; model?: string; data?: string };
  machine: { platform: string; arch: string; cpus: number; cpuModel: string; totalMemoryBytes: number };
  checkpoints: CommittedCheckpoint[];
  stages: StageSummary[];
  final: Partial<EvalMetrics>;
  /** Per layer, what the exported model uses (selector, static or dynamic blocks) and its last validation density; after an Export. */
  exported?: ExportLayer[];
  resumes: number;
  /** A fork (`run --from`, forkRun): the run and 1-based stage it continues from, and that stage's prefix hash (core/prefix.ts). */
  parent?: RunParent;
}

export interface RunParent {
  runId: string;
  /** 1-based stage of the parent whose checkpoint this run started from. */
  stage: number;
  /** sha256 of the canonical prefix of stages 1..stage (core/prefix.ts), equal in both runs. */
  prefixHash: string;
  /** The parent's folder when the fork was made. */
  runDir: string;
}

const FLUSH_INTERVAL_MS = 1000;
const BOUNDARY_EVENTS = new Set<RunEvent['type']>(['stage_start', 'stage_end', 'checkpoint', 'status', 'summary', 'gate']);

/** Sortable run id: UTC timestamp to the millisecond plus 6 random hex digits. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('.', '').replace('T', '-').replace('Z', '');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

/** Parses a JSONL file; a torn (unparseable) last line is dropped, a bad line elsewhere is an error. */
export function readJsonl<T>(file: string): T[] {
  if (!existsSync(file)) return [];
  const lines = readFileSync(file, 'utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const out: T[] = [];
  lines.forEach((line, i) => {
    try {
      out.push(JSON.parse(line) as T);
    } catch {
      if (i !== lines.length - 1) throw new Error(`${file}: line ${i + 1} is not valid JSON`);
    }
  });
  return out;
}

export function readRunRecord(runDir: string): RunRecord {
  const file = join(runDir, 'run.json');
  if (!existsSync(file)) throw new Error(`${file}: no such file (not a run directory)`);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RunRecord;
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

export function readRunPipeline(runDir: string): Pipeline {
  const file = join(runDir, 'pipeline.json');
  if (!existsSync(file)) throw new Error(`${file}: no such file (not a run directory)`);
  return JSON.parse(readFileSync(file, 'utf8')) as Pipeline;
}

/** The metric line a step/eval event becomes: its metrics and kind, nothing wall-clock. */
export function metricLine(event: RunEvent): string | null {
  if (event.type === 'step' || event.type === 'eval') return JSON.stringify({ type: event.type, ...event.metrics });
  return null;
}

export class RunStore {
  private eventBuf: string[] = [];
  private metricBuf: string[] = [];
  private systemBuf: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  private record: RunRecord;
  /** metrics.jsonl lines written or buffered so far. */
  metricsLines: number;
  /** Told once, when a write to the run folder first fails; later writes are skipped. */
  onWriteError: ((error: Error) => void) | null = null;
  private writeFailure: Error | null = null;

  private constructor(readonly runDir: string, record: RunRecord, metricsLines: number) {
    this.record = record;
    this.metricsLines = metricsLines;
  }

  /** Creates runs/<id>/ with pipeline.json and run.json. */
  static create(runsDir: string, pipeline: Pipeline, init: Omit<RunRecord, 'id' | 'name' | 'status' | 'startedAt' | 'checkpoints' | 'stages' | 'final' | 'resumes' | 'hashes'> & { hashes?: Partial<RunRecord['hashes']> }): RunStore {
    const id = newRunId();
    const runDir = join(runsDir, id);
    mkdirSync(join(runDir, 'checkpoints'), { recursive: true });
    const pipelineText = canonicalJson(pipeline);
    writeFileSync(join(runDir, 'pipeline.json'), pipelineText); // canonical JSON ends with its one newline
    const record: RunRecord = {
      ...init, id, name: pipeline.info?.name ?? id, status: 'pending', startedAt: Date.now(),
      hashes: { pipeline: sha256(pipelineText), ...init.hashes }, checkpoints: [], stages: [], final: {}, resumes: 0,
    };
    const store = new RunStore(runDir, record, 0);
    store.writeRecord();
    for (const f of ['events.jsonl', 'metrics.jsonl', 'system.jsonl']) writeFileSync(join(runDir, f), '');
    return store;
  }

  /**
   * Reopens a run to resume it from its last committed checkpoint: metrics.jsonl is cut back to
   * that checkpoint (a torn tail included), later checkpoints are forgotten. Returns null as
   * the checkpoint when none was committed (the run restarts from the beginning).
   */
  static reopenForResume(runDir: string): { store: RunStore; checkpoint: CommittedCheckpoint | null } {
    const record = readRunRecord(runDir);
    const checkpoint = record.checkpoints.length ? record.checkpoints[record.checkpoints.length - 1] : null;
    // Checked before anything is cut: a refused resume leaves the run folder as it was.
    if (checkpoint) checkResumePoint(runDir, checkpoint);
    const keep = checkpoint ? checkpoint.metricsLines : 0;
    truncateLines(join(runDir, 'metrics.jsonl'), keep);
    truncateTornTail(join(runDir, 'events.jsonl'));
    truncateTornTail(join(runDir, 'system.jsonl'));
    const stages = checkpoint ? record.stages.filter((s) => s.stage <= checkpoint.stage) : [];
    const reopened: RunRecord = { ...record, status: 'pending', endedAt: undefined, message: undefined, exitReason: undefined, stages, final: {}, resumes: record.resumes + 1 };
    const store = new RunStore(runDir, reopened, keep);
    store.writeRecord();
    return { store, checkpoint };
  }

  /**
   * Creates a run that continues `parent` after its committed checkpoint `checkpoint` (a fork):
   * the checkpoint folder is linked (hard links; copied where links fail) into the new run's
   * checkpoints/, and the parent's metric lines, stage summaries and events up to that
   * checkpoint are copied, so the new folder is self-contained and reads as one whole run.
   */
  static createFork(runsDir: string, pipeline: Pipeline, init: Parameters<typeof RunStore.create>[2],
    parent: { runDir: string; checkpoint: CommittedCheckpoint; link: RunParent }): RunStore {
    const store = RunStore.create(runsDir, pipeline, init);
    const { checkpoint } = parent;
    linkTree(resolve(parent.runDir, checkpoint.path), join(store.runDir, checkpoint.path));
    const metrics = readFileSync(join(parent.runDir, 'metrics.jsonl'), 'utf8').split('\n').slice(0, checkpoint.metricsLines);
    if (metrics.length < checkpoint.metricsLines) throw new Error(`${parent.runDir}: metrics.jsonl has fewer lines than its checkpoint ${checkpoint.path} counts`);
    writeFileSync(join(store.runDir, 'metrics.jsonl'), metrics.length ? metrics.join('\n') + '\n' : '');
    // The parent's events up to the checkpoint, minus status, system and summary lines: the monitor redraws stages 1..k.
    const events: string[] = [];
    for (const event of readJsonl<RunEvent>(join(parent.runDir, 'events.jsonl'))) {
      if (event.type !== 'status' && event.type !== 'system' && event.type !== 'summary') events.push(JSON.stringify({ ...event, runId: store.id }));
      if (event.type === 'checkpoint' && event.stage === checkpoint.stage) break;
    }
    writeFileSync(join(store.runDir, 'events.jsonl'), events.length ? events.join('\n') + '\n' : '');
    const stages = readRunRecord(parent.runDir).stages.filter((s) => s.stage <= checkpoint.stage);
    store.metricsLines = checkpoint.metricsLines;
    store.update({ parent: parent.link, stages, checkpoints: [{ ...checkpoint }] });
    return store;
  }

  get id(): string { return this.record.id; }
  get run(): Readonly<RunRecord> { return this.record; }

  append(event: RunEvent): void {
    const line = JSON.stringify(event);
    if (event.type === 'system') this.systemBuf.push(JSON.stringify({ time: event.time, ...event.sample }));
    this.eventBuf.push(line);
    const metric = metricLine(event);
    if (metric !== null) { this.metricBuf.push(metric); this.metricsLines += 1; }
    if (BOUNDARY_EVENTS.has(event.type)) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), FLUSH_INTERVAL_MS);
  }

  /** Records a checkpoint the engine has finished writing (after flushing the lines before it). */
  commitCheckpoint(checkpoint: Omit<CommittedCheckpoint, 'metricsLines'>): void {
    this.flush();
    // The lines it counts are on disk before run.json says so.
    this.guarded(() => durableFs.syncFile(join(this.runDir, 'metrics.jsonl')));
    this.record.checkpoints.push({ ...checkpoint, metricsLines: this.metricsLines });
    this.guarded(() => this.writeRecord());
  }

  update(patch: Partial<RunRecord>): void {
    this.record = { ...this.record, ...patch };
    this.guarded(() => this.writeRecord());
  }

  flush(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    const write = (name: string, buf: string[]) => {
      if (buf.length) this.guarded(() => appendFileSync(join(this.runDir, name), buf.join('\n') + '\n'));
      buf.length = 0;
    };
    write('metrics.jsonl', this.metricBuf);
    write('events.jsonl', this.eventBuf);
    write('system.jsonl', this.systemBuf);
  }

  /** The first failed write, if any. */
  get writeError(): Error | null { return this.writeFailure; }

  private guarded(write: () => void): void {
    if (this.writeFailure) return;
    try {
      write();
    } catch (e) {
      this.writeFailure = new Error(`cannot write to the run folder ${this.runDir}: ${(e as Error).message}`);
      this.onWriteError?.(this.writeFailure);
    }
  }

  close(): void { this.flush(); }

  private writeRecord(): void {
    replaceFileDurably(join(this.runDir, 'run.json'), JSON.stringify(this.record, null, 2) + '\n');
  }
}

/**
 * A resume trusts nothing it reads: the committed checkpoint's path must lead to a folder
 * inside the run folder (after symlinks), and its state.json must close the same stage at the
 * same global step as run.json says. Throws one line naming what contradicts what.
 */
export function checkResumePoint(runDir: string, checkpoint: CommittedCheckpoint): void {
  const where = `cannot resume ${runDir}: run.json checkpoint ${JSON.stringify(checkpoint.path)}`;
  if (typeof checkpoint.path !== 'string' || checkpoint.path === '' || isAbsolute(checkpoint.path)) throw new Error(`${where}: must be a path relative to the run folder`);
  if (!Number.isInteger(checkpoint.stage) || checkpoint.stage < 0 || !Number.isInteger(checkpoint.step) || checkpoint.step < 0
    || !Number.isInteger(checkpoint.metricsLines) || checkpoint.metricsLines < 0) {
    throw new Error(`${where}: stage, step and metricsLines must be whole numbers >= 0`);
  }
  const dir = resolve(runDir, checkpoint.path);
  let real: string;
  try { real = realpathSync(dir); } catch { throw new Error(`${where}: ${dir} does not exist`); }
  const root = realpathSync(runDir);
  const rel = relative(root, real);
  if (rel === '' || rel === '..' || rel.startsWith('..' + sep) || isAbsolute(rel)) throw new Error(`${where}: leads outside the run folder (${real})`);
  if (!statSync(real).isDirectory()) throw new Error(`${where}: ${real} is not a folder`);
  let saved: { stage: number; step: number };
  try { saved = readCheckpointState(real); } catch (e) { throw new Error(`${where}: ${(e as Error).message}`); }
  if (saved.stage !== checkpoint.stage || saved.step !== checkpoint.step) {
    throw new Error(`${where}: its state.json says stage ${saved.stage}, step ${saved.step}; run.json committed stage ${checkpoint.stage}, step ${checkpoint.step}`);
  }
}

/** Recreates a folder tree with hard links to its files (a copy where a link is refused). */
function linkTree(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const src = join(from, entry.name);
    const dst = join(to, entry.name);
    if (entry.isDirectory()) linkTree(src, dst);
    else if (entry.isFile()) {
      try { linkSync(src, dst); } catch { copyFileSync(src, dst); }
    }
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Keeps the first `keep` complete lines of a file. */
function truncateLines(file: string, keep: number): void {
  if (!existsSync(file)) { writeFileSync(file, ''); return; }
  const text = readFileSync(file, 'utf8');
  let offset = 0;
  for (let i = 0; i < keep; i++) {
    const nl = text.indexOf('\n', offset);
    if (nl < 0) throw new Error(`${file}: has fewer than ${keep} complete lines; cannot resume from its checkpoint`);
    offset = nl + 1;
  }
  cutAt(file, Buffer.byteLength(text.slice(0, offset)));
}

/** Drops a torn (unterminated) last line so later appends start on a fresh line. */
function truncateTornTail(file: string): void {
  if (!existsSync(file)) return;
  const text = readFileSync(file, 'utf8');
  if (text === '' || text.endsWith('\n')) return;
  cutAt(file, Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1)));
}

function cutAt(file: string, bytes: number): void {
  const fd = openSync(file, 'r+');
  try { ftruncateSync(fd, bytes); } finally { closeSync(fd); }
}
