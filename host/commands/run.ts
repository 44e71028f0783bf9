// `sparse-studio run FILE [--out DIR] [--json] [--resume RUN_DIR | --from RUN_DIR:STAGE] [--backend auto|cpu|cuda]`
// Runs a pipeline file on the engine (in its own process) and records it under DIR/<run id>/.
// --from continues RUN_DIR after its stage STAGE (1-based) with FILE's later stages: a new run
// whose stages 1..STAGE must equal the parent's (host/fork.ts).
//   TTY:     a progress bar for the running stage, a line per stage and gate, a stage table.
//   --json:  one JSON event per line on stdout; the last is {"type":"summary", ...}.
//   plain:   the TTY output without the redrawn progress bar.
// Exit codes: 0 completed, 1 failed (a gate with on_fail stop, a NaN loss, an engine error),
// 2 invalid input or usage (problems printed `FILE: path: message`) or no usable engine
// (addon not built, --backend cuda without CUDA), 3 crashed, 130 cancelled (Ctrl-C).
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { totalmem } from 'node:os';
import type { RunEvent, StageSummary, EvalMetrics } from '../../core/events';
import { checkMark } from '../runner/gate';
import type { Pipeline } from '../../core/schema';
import { parsePipelineText } from '../../core/parse';
import { canonicalJson } from '../../core/canonical';
import { RunManager, type Backend, type RunEnd } from '../run-manager';
import { readRunPipeline, readRunRecord } from '../run-store';
import { cudaPipelineProblem, entropyTrains, pipelineMasks } from '../runner/placement';
import { readPipelineText } from '../safe-read';
import { runMemoryRefusal } from '../preflight';
import { DEMO_MODEL_DIR } from '../runner/model-source';
import { parseForkSpec, type ForkSource } from '../fork';

const USAGE = 'usage: sparse-studio run FILE [--out DIR] [--json] [--resume RUN_DIR | --from RUN_DIR:STAGE] [--backend auto|cpu|cuda]';

export interface RunArgs { file: string; out: string; json: boolean; resume?: string; from?: ForkSource; backend?: Backend }

export const EXIT = { completed: 0, failed: 1, invalid: 2, crashed: 3, cancelled: 130 } as const;

/** Parses run's arguments; throws one line naming the bad argument. */
export function parseRunArgs(args: string[]): RunArgs {
  let file: string | undefined;
  let out = 'runs';
  let json = false;
  let resume: string | undefined;
  let from: ForkSource | undefined;
  let backend: Backend | undefined;
  for (let i = 0; i < args.length; i++) {
    let arg = args[i];
    let value: string | undefined;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    if (eq > 0) { value = arg.slice(eq + 1); arg = arg.slice(0, eq); }
    const take = () => {
      const v = value ?? args[++i];
      if (v === undefined || v === '') throw new Error(`${arg} needs a value`);
      return v;
    };
    switch (arg) {
      case '--out': out = take(); break;
      case '--resume': resume = take(); break;
      case '--from': from = parseForkSpec(take()); break;
      case '--json':
        if (value !== undefined) throw new Error(`unknown argument "${args[i]}"`);
        json = true;
        break;
      case '--backend': {
        const v = take();
        if (v !== 'auto' && v !== 'cpu' && v !== 'cuda') throw new Error(`--backend must be auto, cpu or cuda, got "${v}"`);
        backend = v;
        break;
      }
      default:
        if (arg.startsWith('-')) throw new Error(`unknown argument "${args[i]}"`);
        if (file !== undefined) throw new Error(`only one FILE, got "${file}" and "${arg}"`);
        file = arg;
    }
  }
  if (file === undefined) throw new Error('missing FILE');
  if (resume !== undefined && from !== undefined) throw new Error('--resume and --from do not go together: --resume continues a run in its own folder, --from starts a new one');
  return { file, out, json, resume, ...(from ? { from } : {}), backend };
}

/** Reads and validates FILE; returns the pipeline or the problem lines (`FILE: path: message`). */
export function readPipelineFile(file: string): { pipeline: Pipeline } | { lines: string[] } {
  const read = readPipelineText(file);
  if ('error' in read) return { lines: [`${file}: cannot read (${read.error})`] };
  const parsed = parsePipelineText(read.text, file);
  if ('problems' in parsed) return { lines: parsed.problems.map((p) => `${file}: ${p.path}: ${p.message}`) };
  return { pipeline: parsed.pipeline };
}

/** Why the engine cannot run at all (addon not built), or null. Nothing is started then. */
async function engineUnavailable(): Promise<string | null> {
  try {
    const mod = (await import('../../native/index')) as { engineAvailable(): boolean; ADDON_MISSING: string };
    return mod.engineAvailable() ? null : mod.ADDON_MISSING;
  } catch (e) {
    return `the engine cannot be loaded (${(e as Error).message.split('\n')[0]})`;
  }
}

async function cudaProblem(): Promise<string | null> {
  try {
    const mod = (await import('../../native/index')) as { engine?: { info(): { cuda: { compiled: boolean; available: boolean; reason?: string } } } };
    const cuda = mod.engine?.info().cuda;
    if (!cuda) return '--backend cuda: the engine did not report its backends';
    if (!cuda.compiled) return '--backend cuda: this build of the engine has no CUDA backend';
    if (!cuda.available) return `--backend cuda: ${cuda.reason ?? 'no CUDA device is available'}`;
    return null;
  } catch (e) {
    return `--backend cuda: the engine cannot be loaded (${(e as Error).message.split('\n')[0]})`;
  }
}

export async function run(args: string[]): Promise<number> {
  let opts: RunArgs;
  try {
    opts = parseRunArgs(args);
  } catch (e) {
    console.error(`sparse-studio run: ${(e as Error).message}`);
    console.error(USAGE);
    return EXIT.invalid;
  }
  const read = readPipelineFile(opts.file);
  if ('lines' in read) {
    for (const line of read.lines) console.error(line);
    return EXIT.invalid;
  }
  const pipeline = read.pipeline;
  if (opts.resume) {
    const problem = resumeProblem(opts.resume, pipeline);
    if (problem) { console.error(problem); return EXIT.invalid; }
  }
  const unavailable = await engineUnavailable();
  if (unavailable) { console.error(`sparse-studio run: ${unavailable}`); return EXIT.invalid; }
  if (!opts.resume) {
    // The run must fit in memory (masks included): refused with the numbers before any work.
    const refusal = await runMemoryRefusal(pipeline, { baseDir: process.cwd(), modelsDir: dirname(DEMO_MODEL_DIR), totalMemoryBytes: totalmem() });
    if (refusal) { console.error(`${opts.file}: ${refusal}`); return EXIT.invalid; }
  }
  const backend = opts.backend ?? pipeline.backend;
  if (backend === 'cuda') {
    const unsuited = cudaPipelineProblem({ masks: pipelineMasks(pipeline), entropyTrains: entropyTrains(pipeline) });
    const problem = (await cudaProblem()) ?? (unsuited ? `--backend cuda: ${unsuited} (run it with --backend cpu)` : null);
    if (problem) { console.error(problem); return EXIT.invalid; }
  }

  const manager = new RunManager({ runsDir: resolve(opts.out) });
  const view = opts.json ? new JsonView() : new TextView(Boolean(process.stdout.isTTY), pipeline);
  manager.on('event', (event) => view.onEvent(event));
  let id: string;
  try {
    id = await manager.start(pipeline, { backend: opts.backend, resumeDir: opts.resume, ...(opts.from ? { fork: opts.from } : {}), trustedPaths: true });
  } catch (e) {
    console.error(`${opts.file}: ${(e as Error).message}`);
    return EXIT.invalid;
  }
  const onSigint = () => { void manager.cancel(id).catch(() => {}); };
  process.on('SIGINT', onSigint);
  try {
    const end = await manager.waitForEnd(id);
    view.finish(end);
    return end.status === 'completed' ? EXIT.completed : end.status === 'failed' ? EXIT.failed : end.status === 'cancelled' ? EXIT.cancelled : EXIT.crashed;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** Why FILE cannot resume RUN_DIR (one line), or null. The pipelines must match, layout and $schema aside. */
function resumeProblem(runDir: string, pipeline: Pipeline): string | null {
  if (!existsSync(join(runDir, 'run.json'))) return `--resume ${runDir}: not a run directory (no run.json)`;
  let saved: Pipeline;
  try {
    readRunRecord(runDir);
    saved = readRunPipeline(runDir);
  } catch (e) {
    return `--resume ${runDir}: ${(e as Error).message}`;
  }
  const semantic = (p: Pipeline) => canonicalJson({ ...p, layout: undefined, $schema: undefined });
  if (semantic(saved) !== semantic(pipeline)) return `--resume ${runDir}: the pipeline file differs from the run's pipeline.json; resume runs the same pipeline`;
  return null;
}

// -----------------------------------------------------------------------------------------
// output

interface View { onEvent(event: RunEvent): void; finish(end: RunEnd): void }

class JsonView implements View {
  onEvent(event: RunEvent): void { process.stdout.write(JSON.stringify(event) + '\n'); }
  finish(): void { /* the summary event was the last line */ }
}

class TextView implements View {
  private stage: { index: number; name: string; steps: number; done: number } | null = null;
  private lastLoss = NaN;
  private lastLr = NaN;
  private barShown = false;
  private readonly stageCount: number;

  constructor(private readonly tty: boolean, pipeline: Pipeline) {
    this.stageCount = pipeline.nodes.filter((n) => n.kind === 'train').length;
  }

  onEvent(event: RunEvent): void {
    switch (event.type) {
      case 'stage_start':
        this.stage = { index: event.stage, name: event.name, steps: event.steps, done: 0 };
        this.lastLoss = NaN;
        this.lastLr = NaN;
        this.line(`stage ${event.stage + 1}/${this.stageCount} ${event.name}: ${event.steps} steps`);
        break;
      case 'step':
        if (this.stage) this.stage.done = event.metrics.stage_step + 1;
        this.lastLoss = event.metrics.loss;
        this.lastLr = event.metrics.lr;
        this.drawBar();
        break;
      case 'eval':
        this.line(`  eval @${event.metrics.step}: loss ${f(event.metrics.loss)} ppl_ratio ${f(event.metrics.ppl_ratio)} attn_kl ${f(event.metrics.attn_kl)} out_cos ${f(event.metrics.out_cos)} density ${f(event.metrics.density)}`);
        break;
      case 'gate': {
        const v = event.verdict;
        const checks = v.checks.map((c) => `${c.metric} ${f(c.value)} ${c.op} ${c.threshold} ${checkMark(c)}`).join(', ');
        this.line(`  gate ${v.node} (attempt ${v.attempt}): ${v.passed ? 'passed' : `failed -> ${v.action}`}: ${checks}`);
        break;
      }
      case 'stage_end':
        this.line(`  stage ${event.stage + 1} ${event.status}`);
        break;
      case 'log':
        if (event.level !== 'info' || !this.tty) this.line(`  ${event.level === 'info' ? '' : `${event.level}: `}${event.message}`);
        break;
      default:
        break;
    }
  }

  finish(end: RunEnd): void {
    this.clearBar();
    const rows = end.stages.map((s: StageSummary) => [String(s.stage + 1), s.name, s.status, String(s.attempts),
      f(s.metrics.attn_kl), f(s.metrics.out_cos), f(s.metrics.ppl_ratio), f(s.metrics.density), f(s.metrics.flops_saved), f(s.prefill?.speedup)]);
    printTable(['#', 'stage', 'status', 'tries', 'attn_kl', 'out_cos', 'ppl_ratio', 'density', 'flops_saved', 'speedup'], rows);
    const fin: Partial<EvalMetrics> = end.final;
    console.log(`run ${end.status}${end.message ? `: ${end.message}` : ''}`);
    if (fin.loss !== undefined) console.log(`final: loss ${f(fin.loss)} ppl ${f(fin.ppl)} ppl_ratio ${f(fin.ppl_ratio)} attn_kl ${f(fin.attn_kl)} out_cos ${f(fin.out_cos)} density ${f(fin.density)}`);
    console.log(`run directory: ${end.runDir}`);
  }

  private drawBar(): void {
    if (!this.tty || !this.stage) return;
    const width = 30;
    const filled = Math.round((width * this.stage.done) / Math.max(1, this.stage.steps));
    const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
    const loss = Number.isFinite(this.lastLoss) ? f(this.lastLoss) : '-';
    const lr = Number.isFinite(this.lastLr) ? this.lastLr.toExponential(2) : '-';
    process.stdout.write(`\r[${bar}] ${this.stage.done}/${this.stage.steps} loss ${loss} lr ${lr}\x1b[K`);
    this.barShown = true;
  }

  private clearBar(): void {
    if (this.barShown) { process.stdout.write('\r\x1b[K'); this.barShown = false; }
  }

  private line(text: string): void {
    this.clearBar();
    console.log(text);
    this.drawBar();
  }
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmtRow = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  console.log(fmtRow(header));
  for (const r of rows) console.log(fmtRow(r));
}

function f(x: number | undefined): string {
  if (x === undefined) return '-';
  if (!Number.isFinite(x)) return String(x);
  return Math.abs(x) >= 1000 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(3) : x.toFixed(4);
}
