// Attached runs: run folders another process writes (an exported PyTorch project's train.py, a
// mounted or synced cluster folder, another studio) that the studio follows live next to its
// own runs. Each attached folder gets an id of its own ('attached-<folder name>'); its events
// keep the writer's order and are re-labelled with that id, so the monitor, the stage bands and
// the comparison treat it like a local run.
//
// Design choices:
// - Events come from events.jsonl through RunFollower (complete lines only, each step once).
//   System samples come from system.jsonl when the folder has one (the studio's own writer puts
//   every sample in both files; an exported project may write only system.jsonl), otherwise from
//   the system events in events.jsonl.
// - The history a client fetches (get) is exactly what was streamed so far, after one more
//   poll: a client that subscribes, then fetches, sees every step once.
// - Following stops after the run's summary (one more poll picks up trailing samples); detach
//   stops it at once. Attachments live as long as the service (they are not remembered).
import { existsSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { RunDetail, RunSummary } from '../core/api';
import type { RunEvent, RunStatus, SystemSample } from '../core/events';
import type { Pipeline } from '../core/schema';
import { JsonlTail, RunFollower } from './run-follow';
import { readPipelineText, readRegularFile } from './safe-read';

export const ATTACHED_PREFIX = 'attached-';

interface Attached {
  id: string;
  dir: string;
  follower: RunFollower;
  system: JsonlTail<{ time?: number } & SystemSample>;
  history: RunEvent[];
  timer: ReturnType<typeof setInterval> | null;
  /** Polls left after the summary (trailing samples). */
  tailPolls: number;
}

/** Why `dir` cannot be attached (null: it can). */
export function attachProblem(dir: string): string | null {
  let isDir = false;
  try { isDir = statSync(dir).isDirectory(); } catch { return `${dir}: no such folder`; }
  if (!isDir) return `${dir}: not a folder`;
  if (!existsSync(join(dir, 'events.jsonl')) && !existsSync(join(dir, 'run.json'))) return `${dir}: not a run folder (no events.jsonl or run.json yet)`;
  return null;
}

export class AttachedRuns {
  private readonly runs = new Map<string, Attached>();

  constructor(private readonly emit: (event: RunEvent) => void, private readonly intervalMs = 250) {}

  has(id: string): boolean { return this.runs.has(id); }

  /** Starts following `dir` (an absolute path); returns its id (the same id for a folder already attached). */
  attach(dir: string): string {
    dir = resolve(dir);
    for (const run of this.runs.values()) if (run.dir === dir) return run.id;
    const problem = attachProblem(dir);
    if (problem) throw new Error(problem);
    const stem = ATTACHED_PREFIX + (basename(dir).replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[.]+/, '') || 'run');
    let id = stem;
    for (let n = 2; this.runs.has(id); n++) id = `${stem}-${n}`;
    const run: Attached = {
      id, dir, follower: new RunFollower(dir), system: new JsonlTail(join(dir, 'system.jsonl')),
      history: [], timer: null, tailPolls: 1,
    };
    this.runs.set(id, run);
    this.poll(run);
    if (this.runs.has(id) && !this.finished(run)) {
      run.timer = setInterval(() => this.poll(run), this.intervalMs);
      run.timer.unref?.();
    }
    return id;
  }

  detach(id: string): void {
    const run = this.runs.get(id);
    if (!run) throw new Error(`run '${id}' is not an attached run`);
    if (run.timer) clearInterval(run.timer);
    this.runs.delete(id);
  }

  close(): void {
    for (const id of [...this.runs.keys()]) this.detach(id);
  }

  list(): RunSummary[] {
    return [...this.runs.values()].map((run) => this.summary(run));
  }

  get(id: string): RunDetail {
    const run = this.runs.get(id);
    if (!run) throw new Error(`run '${id}' is not an attached run`);
    if (run.timer) this.poll(run);
    return { ...this.summary(run), pipeline: readPipeline(run.dir), events: [...run.history], runDir: run.dir };
  }

  private finished(run: Attached): boolean {
    return run.follower.done && run.tailPolls <= 0;
  }

  /** New lines of both files, merged by time (each file keeps its own order), streamed and kept. */
  private poll(run: Attached): void {
    const wasDone = run.follower.done;
    let events: RunEvent[];
    let samples: RunEvent[];
    try {
      const fromEvents = run.follower.poll();
      const ownSamples = run.system.exists;
      events = ownSamples ? fromEvents.filter((e) => e.type !== 'system') : fromEvents;
      samples = ownSamples ? run.system.poll().filter(isSample).map((s) => sampleEvent(s)) : [];
    } catch {
      return; // an unreadable moment (a sync tool replacing files): try again next tick
    }
    const merged = mergeByTime(events, samples).map((e) => ({ ...e, runId: run.id }) as RunEvent);
    for (const event of merged) {
      run.history.push(event);
      this.emit(event);
    }
    if (wasDone) run.tailPolls -= 1;
    if (this.finished(run) && run.timer) { clearInterval(run.timer); run.timer = null; }
  }

  private summary(run: Attached): RunSummary {
    const record = readRecord(run.dir);
    const first = run.history[0]?.time;
    let status: RunStatus | undefined;
    let endedAt: number | undefined;
    let final = {};
    let stages = 0;
    for (const e of run.history) {
      if (e.type === 'status') status = e.status;
      if (e.type === 'stage_start') stages = Math.max(stages, e.stage + 1);
      if (e.type === 'summary') { status = e.status; endedAt = e.time; final = e.final; stages = e.stages.length; }
    }
    return {
      id: run.id, name: record?.name || basename(run.dir), status: status ?? record?.status ?? 'running',
      startedAt: record?.startedAt ?? first ?? Date.now(), endedAt: record?.endedAt ?? endedAt,
      stages: record?.stages?.length || stages, final: record?.final && Object.keys(record.final).length ? record.final : final,
      attachedFrom: run.dir,
    };
  }
}

function isSample(s: unknown): s is { time: number } & SystemSample {
  const o = s as Partial<SystemSample & { time: number }> | null;
  return !!o && typeof o === 'object' && typeof o.time === 'number' && (o.source === 'cpu' || o.source === 'gpu')
    && typeof o.utilization === 'number' && typeof o.memory_bytes === 'number';
}

function sampleEvent(line: { time: number } & SystemSample): RunEvent {
  const { time, ...sample } = line;
  return { type: 'system', runId: '', time, sample };
}

/** Two time-ordered lists merged; ties keep `a` first. */
function mergeByTime(a: RunEvent[], b: RunEvent[]): RunEvent[] {
  if (!b.length) return a;
  if (!a.length) return b;
  const out: RunEvent[] = [];
  let j = 0;
  for (const e of a) {
    while (j < b.length && b[j].time < e.time) out.push(b[j++]);
    out.push(e);
  }
  while (j < b.length) out.push(b[j++]);
  return out;
}

interface RecordLike { name?: string; status?: RunStatus; startedAt?: number; endedAt?: number; stages?: unknown[]; final?: RunSummary['final'] }

/** run.json when it is there and whole (a writer replaces it atomically, a sync tool may not). */
function readRecord(dir: string): RecordLike | null {
  try {
    const r = JSON.parse(readRegularFile(join(dir, 'run.json'), 4 << 20).toString('utf8')) as RecordLike;
    return r && typeof r === 'object' ? r : null;
  } catch {
    return null;
  }
}

function readPipeline(dir: string): Pipeline {
  const read = readPipelineText(join(dir, 'pipeline.json'));
  try {
    if ('text' in read) return JSON.parse(read.text) as Pipeline;
  } catch { /* a pipeline.json mid-sync: the empty one below */ }
  return { version: 1, info: { name: basename(dir), author: '', description: '' }, seed: 0, backend: 'auto', nodes: [], links: [] };
}
