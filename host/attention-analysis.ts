// StudioApi.analyzeAttention: the dense teacher's attention profile for the editor's "Analyze
// attention" action (core/attention-profile.ts says what a Model or Replace node asks for).
//
// Design choices:
// - The engine work runs in a child process (profile-process.ts, forked like the run engine in
//   engine-host.ts), so the server keeps answering while it runs; one profile at a time, since
//   each loads a whole model.
// - Requests are checked here with one line naming the field; model and data paths obey the
//   same confinement as a pipeline's under `serve` (preflight.ts insideRoots).
// - Results are cached in memory per request (model, data, length, block...) for the session;
//   a failure is not cached.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isAbsolute, join, resolve } from 'node:path';
import type { AttentionProfileRequest, ProfileReport } from '../core/attention-profile';
import { profileRequestKey } from '../core/attention-profile';
import { ApiCallError } from './api-call';
import { tsxLoaderUrl } from './engine-host';
import { insideRoots } from './preflight';
import { defaultThreads } from './run-manager';
import type { ProfileAnswer, ProfileJob } from './profile-process';

export const PROFILE_ENTRY = fileURLToPath(new URL('./profile-process.ts', import.meta.url));

export interface AttentionAnalyzerOptions {
  /** Relative model/data paths resolve here. */
  baseDir: () => string;
  /** 'builtin:demo' is `${modelsDir}/demo`. */
  modelsDir: string;
  /** `serve`: model and data paths must lie inside these folders. */
  confineTo?: () => readonly string[];
  threads?: number;
  /** Runs one job in a child process; default: fork profile-process.ts. */
  runJob?: (job: ProfileJob) => Promise<ProfileAnswer>;
}

export interface AttentionAnalyzer {
  analyze(request: unknown): Promise<ProfileReport>;
  close(): void;
}

const LIMITS = { seq: 65536, block: 4096, batches: 64, batchSize: 64 };

function fail(message: string): never {
  throw new ApiCallError('bad_request', `analyzeAttention: ${message}`);
}

function int(value: unknown, field: string, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) fail(`${field} must be an integer 1-${max}, got ${JSON.stringify(value)}`);
  return value;
}

function str(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '' || value.length > 4096) fail(`${field} must be a non-empty string`);
  return value;
}

/** The request with every field checked, or an ApiCallError naming the first bad one. */
export function checkProfileRequest(raw: unknown): AttentionProfileRequest {
  const r = (raw ?? {}) as Record<string, unknown>;
  const d = (typeof r.data === 'object' && r.data !== null && !Array.isArray(r.data) ? r.data : fail('data must be a Dataset node\'s parameters')) as Record<string, unknown>;
  const format = d.format;
  if (format !== 'auto' && format !== 'txt' && format !== 'jsonl') fail(`data.format must be auto, txt or jsonl, got ${JSON.stringify(format)}`);
  const fraction = d.validation_fraction;
  if (typeof fraction !== 'number' || !(fraction > 0 && fraction < 0.5)) fail(`data.validation_fraction must be in (0, 0.5), got ${JSON.stringify(fraction)}`);
  if (typeof d.seed !== 'number' || !Number.isInteger(d.seed) || d.seed < 0) fail(`data.seed must be an integer >= 0, got ${JSON.stringify(d.seed)}`);
  if (typeof d.content_hash !== 'string') fail('data.content_hash must be a string');
  if (typeof r.share_gqa !== 'boolean') fail(`share_gqa must be true or false, got ${JSON.stringify(r.share_gqa)}`);
  if (typeof r.target_kl !== 'number' || !(r.target_kl >= 0)) fail(`target_kl must be a number >= 0, got ${JSON.stringify(r.target_kl)}`);
  const seq = int(r.seq, 'seq', LIMITS.seq);
  const block = int(r.block, 'block', LIMITS.block);
  if (block > seq) fail(`block ${block} is longer than seq ${seq}`);
  return {
    model: str(r.model, 'model'),
    data: { source: str(d.source, 'data.source'), format, text_field: typeof d.text_field === 'string' ? d.text_field : fail('data.text_field must be a string'),
      validation_fraction: fraction, seed: d.seed, content_hash: d.content_hash },
    seq, block, share_gqa: r.share_gqa, batches: int(r.batches, 'batches', LIMITS.batches), batch_size: int(r.batch_size, 'batch_size', LIMITS.batchSize),
    target_kl: r.target_kl,
  };
}

/** Forks profile-process.ts for one job; a child that dies without answering is one line too. */
export function forkProfileJob(job: ProfileJob, entry = PROFILE_ENTRY): { answer: Promise<ProfileAnswer>; child: ChildProcess } {
  const child = fork(entry, [], { execArgv: ['--import', tsxLoaderUrl()], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let lastLine = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = chunk.split('\n').map((l) => l.trim()).filter(Boolean);
    if (lines.length) lastLine = lines[lines.length - 1];
  });
  const answer = new Promise<ProfileAnswer>((resolveAnswer) => {
    let answered = false;
    child.once('message', (m) => { answered = true; resolveAnswer(m as ProfileAnswer); });
    child.once('close', (code, signal) => {
      if (!answered) resolveAnswer({ type: 'error', input: false, message: `profile process ${signal ? `killed by ${signal}` : `exited with code ${code}`}${lastLine ? `: ${lastLine}` : ''}` });
    });
  });
  child.send(job);
  return { answer, child };
}

export function createAttentionAnalyzer(options: AttentionAnalyzerOptions): AttentionAnalyzer {
  const cache = new Map<string, Promise<ProfileReport>>();
  const children = new Set<ChildProcess>();
  let queue: Promise<unknown> = Promise.resolve();
  const runJob = options.runJob ?? ((job: ProfileJob) => {
    const { answer, child } = forkProfileJob(job);
    children.add(child);
    return answer.finally(() => children.delete(child));
  });

  function resolveModel(source: string): string {
    if (source.startsWith('builtin:')) {
      if (source !== 'builtin:demo') fail(`unknown built-in model "${source}" (this build ships builtin:demo)`);
      return join(options.modelsDir, 'demo');
    }
    if (source.startsWith('init:')) fail('model: an init: model has random weights; profile a trained model');
    return isAbsolute(source) ? source : resolve(options.baseDir(), source);
  }

  function confined(path: string, field: string): void {
    const roots = options.confineTo?.();
    if (roots && !insideRoots(path, roots)) {
      throw new ApiCallError('outside_roots', `analyzeAttention: ${field}: ${path} is outside the folders this studio reads for its clients (the project, models, runs and working folders)`);
    }
  }

  return {
    analyze(raw) {
      const request = checkProfileRequest(raw);
      const modelDir = resolveModel(request.model);
      if (!request.model.startsWith('builtin:')) confined(modelDir, 'model');
      const source = request.data.source.startsWith('builtin:') ? request.data.source : resolve(options.baseDir(), request.data.source);
      if (!source.startsWith('builtin:')) confined(source, 'data.source');
      const key = profileRequestKey({ ...request, model: modelDir, data: { ...request.data, source } });
      const hit = cache.get(key);
      if (hit) return hit;
      const job: ProfileJob = {
        type: 'profile', modelDir, modelLabel: request.model, data: { ...request.data, source },
        seq: request.seq, block: request.block, shareGqa: request.share_gqa, batches: request.batches, batchSize: request.batch_size,
        targetKl: request.target_kl, threads: options.threads ?? defaultThreads(),
      };
      const result = queue.then(() => runJob(job)).then((a) => {
        if (a.type === 'result') return { ...a.report, data: request.data.source };
        throw new ApiCallError(a.input ? 'bad_request' : 'profile_failed', `analyzeAttention: ${a.message}`);
      });
      queue = result.catch(() => {});
      cache.set(key, result);
      result.catch(() => cache.delete(key));
      return result;
    },
    close() {
      for (const child of children) child.kill('SIGKILL');
      children.clear();
    },
  };
}
