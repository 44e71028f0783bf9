// The pipeline executor: runs a validated pipeline stage by stage on the engine.
//
// Design choices:
// - Stages come from core/order.ts (each Train node with the operations before it and the Gate
//   after it), so the runner and the editor agree on what a stage is.
// - What a node does to the model is core/model-state.ts's nodeEffect (the editor's layer strip
//   shows the same); every change is played on the engine and recorded as data
//   (model-state.ts); a stage-end checkpoint
//   stores it with the weights, and rollback/--resume rebuild the model on a fresh base
//   (the dense teacher stays the original weights).
// - Reproducible by construction: training batches are keyed by the global step, validation
//   batches by index, the engine runs a fixed thread count, and nothing here reads the clock
//   or an unseeded random source. Two runs of one file give byte-identical metrics.jsonl.
// - The pipeline seed drives the init of an `init:` model, the data split and order and the
//   random mask blocks; a Dataset seed or mask random_seed other than 0 overrides it there.
// - Failures are outcomes, not exceptions: a NaN loss, a failed gate with 'stop', or an engine
//   error end the run 'failed' with one clear message; the last good checkpoint stays on disk.
import { join } from 'node:path';
import type { DatasetParams, Pipeline, PipelineNode, TrainParams, NodeOf } from '../../core/schema';
import type { EvalMetrics, StageSummary } from '../../core/events';
import { stagesOf, trailingOps, type Stage } from '../../core/order';
import { canonicalJson } from '../../core/canonical';
import { resolveSeeds } from '../../core/seeds';
import type { BackendChoice, Batch, DistillWeights, EngineApi, EngineModel, StepResult } from '../../native/engine-api';
import { aggregateEval } from './eval-metrics';
import { checkMoeGate, loadBalanceOf, moeStepFields } from './moe';
import { judgeGate, unpassedChecks } from './gate';
import { planRetry, type RetryAction } from './gate-retry';
import { describePrefillSpeed, measurePrefillSpeed, type PrefillSpeed } from './prefill-speed';
import { learningRateAt, lrScaleOf } from './lr-schedule';
import { maxSeqLen, seqLenAt } from '../data/curriculum';
import { PlateauTracker } from './plateau';
import { stepBackSparsity } from '../../core/sparsity-step';
import { describeLayers, nodeEffect, NO_OVERRIDES, type ModelChange, type StageOverrides } from '../../core/model-state';
import { applyChanges, cloneRunModelState, initialRunModelState, replayModelState, type RunModelState } from './model-state';
import { checkpointRelPath, MODEL_DIR, OPTIMIZER_FILE, readCheckpointState, writeCheckpoint, type CheckpointState } from './checkpoint';
import { loadBaseModel, modelContentHash, resolveModelSource, type ResolvedModel } from './model-source';
import { describeExportLayers, exportLayers, exportModel, type ExportLayer, type MaskArrays } from './export';
import { masksOf } from '../../core/model-state';
import { seedChanges } from './seed-mask';
import { choosePlacement, cpuPrecisionNote, entropyTrains, pipelineMasks, precisionNote } from './placement';
import type { EngineEvent, EventBody, ResumePoint, RunIdentity } from './messages';

/** Training batches the teacher runs to seed masks from its attention (seed_from_teacher). */
const SEED_BATCHES = 2;

/** The data engineer's dataset contract (host/data). */

export interface TokenDataset {
  vocabSize: number;
  trainTokens: number;
  validationTokens: number;
  contentHash: string;
  trainBatch(step: number, batch: number, seq: number): Batch;
  validationBatch(index: number, batch: number, seq: number): Batch;
}

export type DatasetLoader = (params: DatasetParams, tokenizerJsonPath: string,
  options: { cacheDir?: string; maxSeq?: number; onLog?: (line: string) => void }) => TokenDataset | Promise<TokenDataset>;

export interface RunControl {
  readonly cancelled: boolean;
  /** Resolves at once unless the run is paused; then when it is resumed or cancelled. */
  waitWhilePaused(): Promise<void>;
}

export interface ExecuteOptions {
  runDir: string;
  threads: number;
  backend: string;
  /** Token cache folder; the data layer's default when absent. */
  cacheDir?: string;
  resume?: ResumePoint;
  /** Export may write outside the run folder (the run came from the command line; export.ts). */
  trustedPaths?: boolean;
}

export interface ExecutorDeps {
  engine: EngineApi;
  loadDataset: DatasetLoader;
  emit: (event: EngineEvent) => void;
  control: RunControl;
  /** Reports what the run uses (for run.json), once the model and data are loaded. */
  identify?: (identity: RunIdentity) => void;
  /** Called after each stage with its summary (the host keeps them in run.json). */
  onStageSummary?: (summary: StageSummary) => void;
  /** FlexAttention arrays of a mask (native/mask.ts); without it Export writes no mask arrays. */
  maskArrays?: MaskArrays;
}

export interface RunOutcome {
  status: 'completed' | 'failed' | 'cancelled';
  message?: string;
  stages: StageSummary[];
  final: Partial<EvalMetrics>;
  /** Per layer, what the exported model uses (selector, mask, blocks) and its last validation density; set by an Export. */
  exported?: ExportLayer[];
}

type StageResult = { ok: true } | { ok: false; status: 'failed' | 'cancelled'; message: string };

export async function executePipeline(pipeline: Pipeline, options: ExecuteOptions, deps: ExecutorDeps): Promise<RunOutcome> {
  // Node seeds of 0 follow the pipeline seed (core/seeds.ts): the run sees the resolved values.
  const run = new PipelineExecutor(resolveSeeds(pipeline), options, deps);
  try {
    return await run.execute();
  } catch (e) {
    const message = (e as Error).message;
    deps.emit({ type: 'log', time: Date.now(), level: 'error', message });
    return run.outcome('failed', message);
  } finally {
    run.dispose();
  }
}

class PipelineExecutor {
  private readonly byId: Map<string, PipelineNode>;
  private readonly datasets = new Map<string, TokenDataset>();
  private source!: ResolvedModel;
  private model: EngineModel | null = null;
  /** Backend and first precision of every model this run loads (chosen once, in execute()); each stage then sets its own precision. */
  private placement: BackendChoice = { backend: 'cpu' };
  private state!: RunModelState;
  private globalStep = 0;
  private lastLr = 0;
  /** Checkpoint of the last completed stage, relative to the run directory (null: none yet). */
  private lastCheckpoint: string | null = null;
  private readonly summaries: StageSummary[] = [];
  private final: Partial<EvalMetrics> = {};
  private exported: ExportLayer[] | undefined;
  /** > 0 while recomputing earlier stages: nothing is emitted or written. */
  private silent = 0;

  constructor(private readonly pipeline: Pipeline, private readonly options: ExecuteOptions, private readonly deps: ExecutorDeps) {
    this.byId = new Map(pipeline.nodes.map((n) => [n.id, n]));
  }

  outcome(status: RunOutcome['status'], message?: string): RunOutcome {
    return { status, message, stages: this.summaries, final: this.final, ...(this.exported ? { exported: this.exported } : {}) };
  }

  dispose(): void {
    this.model?.dispose();
    this.model = null;
  }

  async execute(): Promise<RunOutcome> {
    const modelNode = this.pipeline.nodes.find((n): n is NodeOf<'model'> => n.kind === 'model');
    if (!modelNode) throw new Error('nodes: the pipeline has no Model node');
    this.source = resolveModelSource(modelNode.params.source);
    const cuda = this.deps.engine.info().cuda;
    if (this.options.backend === 'cuda' && !cuda.available) {
      throw new Error(`backend: cuda requested but ${cuda.compiled ? (cuda.reason ?? 'no CUDA device is available') : 'this engine was built without CUDA'}`);
    }
    const stages = stagesOf(this.pipeline);
    const { placement, note } = choosePlacement({
      requested: this.options.backend, cudaAvailable: cuda.available,
      precisions: stages.map((s) => (this.node(s.train) as NodeOf<'train'>).params.precision),
      masks: pipelineMasks(this.pipeline), entropyTrains: entropyTrains(this.pipeline),
    });
    this.placement = placement;
    if (note) this.log('info', note);
    if (placement.backend === 'cpu') this.log('info', cpuPrecisionNote(stages.map((s) => this.node(s.train) as NodeOf<'train'>)));
    let firstStage = 0;

    const resume = this.options.resume;
    if (resume) {
      const dir = join(this.options.runDir, resume.path);
      const saved = readCheckpointState(dir);
      this.state = saved.modelState;
      this.globalStep = saved.step;
      this.lastLr = saved.lr;
      this.lastCheckpoint = resume.path;
      await this.rebuildModel(this.state, resume.path);
      firstStage = resume.stage + 1;
      this.log('info', `resumed from ${resume.path} (stage ${resume.stage + 1} done, global step ${saved.step})`);
    } else {
      this.model = await loadBaseModel(this.deps.engine, this.source, this.pipeline.seed, this.options.threads, this.placement);
      this.state = initialRunModelState(this.model.config.num_hidden_layers);
    }
    const depth = this.model!.config.num_hidden_layers;
    if (depth !== modelNode.params.num_layers) {
      throw new Error(`${modelNode.id}.num_layers: the pipeline says ${modelNode.params.num_layers} layers, the model has ${depth}`);
    }
    await this.identify(stages);

    for (const stage of stages.slice(firstStage)) {
      const result = await this.runStage(stage);
      if (!result.ok) return this.outcome(result.status, result.message);
    }
    for (const id of trailingOps(this.pipeline)) await this.applyOp(this.node(id), stages.length, NO_OVERRIDES);
    return this.outcome('completed');
  }

  private async identify(stages: Stage[]): Promise<void> {
    const expect = this.options.resume?.expect;
    if (!this.deps.identify && !expect) return;
    const info = this.deps.engine.info();
    const firstData = stages.find((s) => s.dataset)?.dataset;
    const dataHash = firstData ? (await this.dataset(firstData)).contentHash : '';
    const modelHash = await modelContentHash(this.source, this.pipeline.seed);
    this.deps.identify?.({
      engineVersion: info.version, threads: this.options.threads, backend: this.placement.backend ?? 'cpu', simd: info.simd,
      modelHash, dataHash,
    });
    // A fork continues its parent's weights: the base model and the data must be the ones it used.
    const stage = this.options.resume ? this.options.resume.stage + 1 : 0;
    if (expect?.modelHash && expect.modelHash !== modelHash) {
      throw new Error(`cannot continue after stage ${stage}: the model's weights differ from the parent run's (sha256 ${modelHash.slice(0, 12)}, the parent recorded ${expect.modelHash.slice(0, 12)})`);
    }
    if (expect?.dataHash && expect.dataHash !== dataHash) {
      throw new Error(`cannot continue after stage ${stage}: the dataset's text differs from the parent run's (sha256 ${dataHash.slice(0, 12)}, the parent recorded ${expect.dataHash.slice(0, 12)})`);
    }
  }

  // ---------------------------------------------------------------------------------------
  // stages

  private async runStage(stage: Stage): Promise<StageResult> {
    const train = this.node(stage.train) as NodeOf<'train'>;
    const gate = stage.gate ? (this.node(stage.gate) as NodeOf<'gate'>) : null;
    if (!stage.dataset) throw new Error(`${train.id}: no Dataset node is linked to this Train node`);
    const data = await this.dataset(stage.dataset);
    const gateData = gate ? await this.dataset(stage.gateDataset ?? stage.dataset) : data;
    const distill = stage.distill ? distillWeights(this.node(stage.distill) as NodeOf<'distill'>) : null;
    loadBalanceOf(train, this.model!.config); // a dense model refuses a load-balancing term here, before the stage
    if (gate) checkMoeGate(gate, this.model!.config);
    const evalShape = { batch: train.params.batch_size, seq: maxSeqLen(train.params.curriculum) };
    const startState = cloneRunModelState(this.state);
    const startCheckpoint = this.lastCheckpoint;
    // The stage computes at its own precision from here on, its evaluations included.
    this.model!.setPrecision(train.params.precision);
    if (this.model!.backend.name !== 'cpu') this.log('info', precisionNote(train.id, train.params.precision, this.model!.backend));

    // loss_increase compares with the validation loss before the stage changed anything.
    let startLoss = NaN;
    if (gate && gate.params.checks.some((c) => c.metric === 'loss_increase')) {
      startLoss = (await this.evaluate(gateData, gate.params.eval_batches, evalShape, stage.index)).loss;
      this.log('info', `${stage.name}: validation loss at stage start ${startLoss.toFixed(4)}`);
    }

    let lrMultiplier = 1;
    let overrides: StageOverrides = NO_OVERRIDES;
    /** Layers the stage made trainable on its first attempt, selectors aside (refreeze's candidates). */
    let unfrozen: number[] = [];
    let previousMasks = false;
    for (let attempt = 1; ; attempt++) {
      this.emit({ type: 'stage_start', stage: stage.index, node: train.id, name: stage.name, steps: train.params.steps });
      if (attempt > 1) {
        this.state = cloneRunModelState(startState);
        await this.rebuildModel(this.state, startCheckpoint);
        this.model!.setPrecision(train.params.precision);  // a rebuilt model starts at the run's first precision
      }
      for (const id of stage.ops) await this.applyOp(this.node(id), stage.index, overrides);
      if (attempt === 1) unfrozen = newlyTrainable(startState, this.state);

      const trained = await this.train(stage, train, distill, lrMultiplier, data, evalShape);
      if (!trained.ok) {
        // A cancelled stage says cancelled (event, summary, run.json), not failed.
        this.emit({ type: 'stage_end', stage: stage.index, node: train.id, status: trained.status });
        this.summarize(stage, trained.status, attempt, trained.last ?? {});
        return trained;
      }
      let metrics = trained.last;
      let status: StageSummary['status'] = 'done';
      const speed = await this.prefillSpeed(gateData, evalShape);
      if (gate) {
        // The stage's closing evaluation already measured exactly this (same data, batches, step).
        const reuse = metrics && metrics.step === this.globalStep && gateData === data && gate.params.eval_batches === train.params.eval_batches;
        if (!reuse || !metrics) {
          metrics = await this.evaluate(gateData, gate.params.eval_batches, evalShape, stage.index);
          this.emit({ type: 'eval', metrics });
          this.final = metrics;
        }
        const context = { stageStartLoss: Number.isNaN(startLoss) ? metrics.loss : startLoss, speedup: speed?.speedup };
        const verdict = judgeGate(gate.params, metrics, context, { stage: stage.index, node: gate.id, attempt });
        this.emit({ type: 'gate', verdict });
        const unpassed = unpassedChecks(verdict);
        status = verdict.passed ? 'passed' : 'failed';
        if (!verdict.passed && verdict.action !== 'continue') {
          this.emit({ type: 'stage_end', stage: stage.index, node: train.id, status: 'failed' });
          if (verdict.action === 'stop') {
            this.summarize(stage, 'failed', attempt, metrics, speed);
            const message = `${gate.id}: gate failed after ${attempt} attempt${attempt > 1 ? 's' : ''}: ${unpassed}`;
            this.log('error', message);
            return { ok: false, status: 'failed', message };
          }
          const retry = planRetry(gate.params, verdict.action as RetryAction, attempt, { lrMultiplier, overrides }, unfrozen);
          lrMultiplier = retry.lrMultiplier;
          overrides = retry.overrides;
          previousMasks = overrides.skipReplace;
          this.log('warn', `${gate.id}: gate failed (${unpassed}); ${retry.description}`);
          continue;
        }
        if (!verdict.passed && previousMasks) {
          this.log('warn', `${gate.id}: gate failed (${unpassed}) with the stage's previous masks too; ${stage.name} keeps its previous masks, is marked failed, and the run goes on`);
        } else if (!verdict.passed) {
          this.log('warn', `${gate.id}: gate failed (${unpassed}); continuing as configured`);
        }
      }
      if (this.silent) {
        this.lastCheckpoint = checkpointRelPath(stage.index); // written by the run being recomputed
        return { ok: true };
      }
      const path = await writeCheckpoint(this.model!, this.options.runDir, { stage: stage.index, step: this.globalStep, lr: this.lastLr, modelState: this.state });
      this.lastCheckpoint = path;
      this.emit({ type: 'checkpoint', stage: stage.index, path });
      this.summarize(stage, status, attempt, metrics ?? {}, speed);
      this.emit({ type: 'stage_end', stage: stage.index, node: train.id, status });
      return { ok: true };
    }
  }

  /** The measured prefill speed-up at the stage's longest length, logged; null when the engine cannot time it. */
  private async prefillSpeed(data: TokenDataset, shape: { batch: number; seq: number }): Promise<PrefillSpeed | null> {
    if (this.silent) return null;  // wall-clock: recomputing earlier stages needs none
    const speed = await measurePrefillSpeed(this.model!, data.validationBatch(0, 1, shape.seq));
    if (speed) this.log('info', describePrefillSpeed(speed));
    return speed;
  }

  private summarize(stage: Stage, status: StageSummary['status'], attempts: number, metrics: Partial<EvalMetrics>, prefill?: PrefillSpeed | null): void {
    if (this.silent) return;
    const summary: StageSummary = { stage: stage.index, node: stage.train, name: stage.name, status, attempts, metrics: stripPerLayer(metrics), ...(prefill ? { prefill } : {}) };
    const i = this.summaries.findIndex((s) => s.stage === stage.index);
    if (i >= 0) this.summaries[i] = summary; else this.summaries.push(summary);
    this.deps.onStageSummary?.(summary);
  }

  // ---------------------------------------------------------------------------------------
  // training

  private async train(stage: Stage, train: NodeOf<'train'>, distill: DistillWeights | null, lrMultiplier: number, data: TokenDataset, evalShape: { batch: number; seq: number }):
    Promise<({ ok: true } | { ok: false; status: 'failed' | 'cancelled'; message: string }) & { last: EvalMetrics | null }> {
    const p: TrainParams = train.params;
    const loadBalance = loadBalanceOf(train, this.model!.config);
    const plateau = new PlateauTracker(p.plateau_patience);
    const lrScale = lrScaleOf(p);
    let plateauMultiplier = 1;
    let last: EvalMetrics | null = null;
    for (let i = 0; i < p.steps; i++) {
      await this.deps.control.waitWhilePaused();
      if (this.deps.control.cancelled) {
        // Steps are numbered from 0, as the charts and the monitor header count them.
        const message = this.globalStep > 0 ? `cancelled after step ${this.globalStep - 1}` : 'cancelled before the first step';
        this.log('warn', `${train.id}: ${message}`);
        return { ok: false, status: 'cancelled', message, last };
      }
      const seq = seqLenAt(p.curriculum, i);
      const lr = learningRateAt(p, i, lrMultiplier * plateauMultiplier);
      const batch = data.trainBatch(this.globalStep, p.batch_size, seq);
      const stopStage = (what: string) => {
        const kept = this.lastCheckpoint ? `the last good checkpoint ${this.lastCheckpoint} is kept` : 'no stage had completed, so there is no checkpoint';
        const message = `${train.id}: ${what} at stage step ${i} (global step ${this.globalStep}, lr ${lr}); stage stopped, ${kept}`;
        this.log('error', message);
        return { ok: false as const, status: 'failed' as const, message, last };
      };
      let r: StepResult;
      try {
        r = await this.model!.trainStep(batch, {
          lr, weight_decay: p.weight_decay, beta1: p.beta1, beta2: p.beta2, eps: p.eps, grad_clip: p.grad_clip, distill, load_balance: loadBalance,
          ...(lrScale ? { lr_scale: lrScale } : {}), ...((p.attn_entropy_weight ?? 0) > 0 ? { attn_entropy_weight: p.attn_entropy_weight } : {}),
        });
      } catch (e) {
        // The engine refuses a non-finite step itself ("training diverged: ..."); other errors end the stage the same way.
        return stopStage((e as Error).message);
      }
      if (r.skipped) {
        // fp16 gradient overflow: the engine left the weights as they were and halved its loss scale.
        this.log('warn', `${train.id} step ${i}: fp16 gradients overflowed at loss scale ${r.loss_scale}; update skipped, scale now ${this.model!.backend.lossScale}`);
      } else {
        if (!Number.isFinite(r.loss)) return stopStage(`loss is ${r.loss}`);
        if (!Number.isFinite(r.grad_norm)) return stopStage(`gradient norm is ${r.grad_norm}`);
        this.lastLr = lr;
        this.emit({ type: 'step', metrics: {
          stage: stage.index, step: this.globalStep, stage_step: i, loss: r.loss, task_loss: r.task_loss, attn_kl_loss: r.attn_kl_loss,
          logit_kl_loss: r.logit_kl_loss, hidden_mse_loss: r.hidden_mse_loss, lr, grad_norm: r.grad_norm,
          tokens: batch.batch * batch.seq, density: r.density, seq_len: seq, ...moeStepFields(r),
          ...(r.indexer_phase ? { indexer_loss: r.indexer_loss, indexer_phase: r.indexer_phase } : {}),
          ...(r.attn_entropy !== undefined ? { attn_entropy: r.attn_entropy } : {}),
        } });
      }
      this.globalStep += 1;

      const atEnd = i === p.steps - 1;
      if (!(atEnd || (p.eval_every > 0 && (i + 1) % p.eval_every === 0))) continue;
      last = await this.evaluate(data, p.eval_batches, evalShape, stage.index);
      this.emit({ type: 'eval', metrics: last });
      this.final = last;
      if (!atEnd && plateau.observe(last.loss)) {
        if (p.plateau_action === 'decay_lr') {
          plateauMultiplier *= p.plateau_factor;
          this.log('warn', `${train.id}: plateau (no validation-loss improvement for ${p.plateau_patience} evaluations); LR x${p.plateau_factor} -> ${learningRateAt(p, i + 1, lrMultiplier * plateauMultiplier)}`);
        } else {
          this.stepBackSparsity(stage, train.id, p.plateau_patience);
        }
      }
    }
    return { ok: true, last };
  }

  /** Plateau action 'step_back_sparsity': makes the stage's replaced layers denser. */
  private stepBackSparsity(stage: Stage, trainId: string, patience: number): void {
    const replacedHere = stage.ops.map((id) => this.node(id)).filter((n): n is NodeOf<'replace'> => n.kind === 'replace');
    const layers = new Set<number>();
    for (const r of replacedHere) for (let l = r.params.layers[0] - 1; l < r.params.layers[1]; l++) if (this.state.layers[l].mask) layers.add(l);
    if (layers.size === 0) this.state.layers.forEach((s, l) => { if (s.mask) layers.add(l); });
    if (layers.size === 0) {
      this.log('warn', `${trainId}: plateau (no improvement for ${patience} evaluations) but no block-sparse layer to step back`);
      return;
    }
    const changes = new Set<string>();
    for (const l of [...layers].sort((a, b) => a - b)) {
      const { mask, change } = stepBackSparsity(this.state.layers[l].mask!);
      applyChanges(this.model!, this.state, [{ type: 'attention', layer: l, mask }], stage.index);
      changes.add(change);
    }
    this.log('warn', `${trainId}: plateau (no validation-loss improvement for ${patience} evaluations); stepped sparsity back on ${describeLayers([...layers])}: ${[...changes].join('; ')}`);
  }

  private async evaluate(data: TokenDataset, batches: number, shape: { batch: number; seq: number }, stage: number): Promise<EvalMetrics> {
    const results = [];
    for (let i = 0; i < batches; i++) results.push(await this.model!.evaluate(data.validationBatch(i, shape.batch, shape.seq)));
    return aggregateEval(results, { stage, step: this.globalStep });
  }

  // ---------------------------------------------------------------------------------------
  // operations, model rebuilds, data

  /** One of a stage's operations (or one after the last stage); stages run Train and Gate themselves. */
  private async applyOp(node: PipelineNode, stage: number, overrides: StageOverrides): Promise<void> {
    switch (node.kind) {
      case 'export': {
        if (this.silent) return;
        const dir = await exportModel(this.model!, this.state, node.params, {
          runDir: this.options.runDir, tokenizer: this.source.tokenizer, maskArrays: this.deps.maskArrays,
          trustedPaths: this.options.trustedPaths, where: `nodes[${this.pipeline.nodes.indexOf(node)}].params.path (${node.id})`,
          validationDensity: this.final.per_layer?.density,
        });
        this.exported = exportLayers(masksOf(this.state), this.final.per_layer?.density);
        this.log('info', `${node.id}: exported to ${dir}; ${describeExportLayers(this.exported)}`);
        return;
      }
      case 'distill':
        this.log('info', `${node.id}: distillation from the dense base (task ${node.params.task_weight}, attn_kl ${node.params.attn_kl_weight}, logit_kl ${node.params.logit_kl_weight}, hidden_mse ${node.params.hidden_mse_weight})`);
        return;
      case 'freeze':
      case 'replace':
      case 'unfreeze': {
        const effect = nodeEffect(this.state, node, overrides)!;
        const changes = node.kind === 'replace' ? await this.seedFromTeacher(node, effect.changes, stage) : effect.changes;
        applyChanges(this.model!, this.state, changes, stage);
        this.log('info', effect.summary);
        return;
      }
      case 'model':
      case 'dataset':
      case 'train':
      case 'gate':
        throw new Error(`${node.id}: a ${node.kind} node is not a stage operation`);
    }
  }

  /**
   * Masks with seed_from_teacher and no recorded pairs get them: the dense teacher runs on the
   * stage's first training batches (its longest sequence) and each layer keeps the pairs whose
   * pooled mass exceeds the threshold (host/runner/seed-mask.ts). The pairs go into the layer's
   * mask, so the run state, checkpoints and exports carry them and a retry or resume reuses them.
   */
  private async seedFromTeacher(node: NodeOf<'replace'>, changes: ModelChange[], stageIndex: number): Promise<ModelChange[]> {
    const seed = node.params.mask.seed_from_teacher;
    if (!seed || seed.pairs !== undefined) return changes;
    const stage = stagesOf(this.pipeline)[stageIndex];
    if (!stage?.dataset) throw new Error(`${node.id}.mask.seed_from_teacher: needs the data of a stage after it (none follows)`);
    const model = this.model!;
    if (!model.attentionProfile) throw new Error(`${node.id}.mask.seed_from_teacher: this engine cannot profile attention`);
    const train = this.node(stage.train) as NodeOf<'train'>;
    const data = await this.dataset(stage.dataset);
    const seq = maxSeqLen(train.params.curriculum), batch = train.params.batch_size;
    const parts = Array.from({ length: SEED_BATCHES }, (_, i) => data.trainBatch(i, batch, seq).tokens);
    const tokens = new Int32Array(parts.reduce((n, t) => n + t.length, 0));
    parts.reduce((at, t) => (tokens.set(t, at), at + t.length), 0);
    const { mask } = node.params;
    const profile = await model.attentionProfile({ tokens, batch: SEED_BATCHES * batch, seq }, {
      batch, block: mask.block_size, shareGqa: mask.share_gqa_group, densities: [],
    });
    const { changes: out, notes } = seedChanges(changes, profile, model.config.num_attention_heads, seed.threshold);
    this.log('info', `${node.id}: seeded from the teacher's attention (threshold ${seed.threshold}, ${SEED_BATCHES * batch} sequences x ${seq} tokens, block ${mask.block_size}): ` +
      `pairs kept per layer (share of the off-diagonal causal pairs): ${notes.join(', ')}`);
    return out;
  }

  /**
   * A fresh base model with `state` replayed and the weights/optimiser of a checkpoint (if any).
   * The teacher must stay the original base, so checkpoint weights go in through loadTrainable.
   * An engine without it gets the checkpoint by recomputing the stages up to it instead (exact,
   * since every stage is deterministic, only slower).
   */
  private async rebuildModel(state: RunModelState, checkpoint: string | null): Promise<void> {
    this.dispose();
    const dir = checkpoint ? join(this.options.runDir, checkpoint) : null;
    const model = await loadBaseModel(this.deps.engine, this.source, this.pipeline.seed, this.options.threads, this.placement);
    if (dir && !model.loadTrainable) {
      model.dispose();
      await this.recomputeTo(readCheckpointState(dir), state);
      return;
    }
    this.model = model;
    replayModelState(model, state);
    if (dir) {
      await model.loadTrainable!(join(dir, MODEL_DIR));
      await model.loadOptimizer(join(dir, OPTIMIZER_FILE));
    }
  }

  /** Reruns stages 0..saved.stage silently from the base; the result must match the checkpoint. */
  private async recomputeTo(saved: CheckpointState, state: RunModelState): Promise<void> {
    this.log('warn', `engine has no loadTrainable: recomputing stages 1-${saved.stage + 1} to rebuild ${checkpointRelPath(saved.stage)} with the original teacher`);
    const kept = { summaries: [...this.summaries], final: this.final, lastCheckpoint: this.lastCheckpoint };
    this.silent += 1;
    try {
      this.model = await loadBaseModel(this.deps.engine, this.source, this.pipeline.seed, this.options.threads, this.placement);
      this.state = initialRunModelState(this.model.config.num_hidden_layers);
      this.globalStep = 0;
      this.lastCheckpoint = null;
      for (const stage of stagesOf(this.pipeline).slice(0, saved.stage + 1)) {
        const result = await this.runStage(stage);
        if (!result.ok) throw new Error(`recomputing stage ${stage.index + 1} did not reproduce the run: ${result.message}`);
      }
    } finally {
      this.silent -= 1;
      this.summaries.splice(0, this.summaries.length, ...kept.summaries);
      this.final = kept.final;
      this.lastCheckpoint = kept.lastCheckpoint;
    }
    if (this.globalStep !== saved.step || canonicalJson(this.state) !== canonicalJson(state)) {
      throw new Error(`${checkpointRelPath(saved.stage)}: recomputing the stages did not reproduce the checkpoint (step ${this.globalStep} vs ${saved.step})`);
    }
  }

  private async dataset(id: string): Promise<TokenDataset> {
    const cached = this.datasets.get(id);
    if (cached) return cached;
    const node = this.node(id);
    if (node.kind !== 'dataset') throw new Error(`${id}: expected a Dataset node, found ${node.kind}`);
    const data = await this.deps.loadDataset(node.params, this.source.tokenizer, {
      cacheDir: this.options.cacheDir, maxSeq: this.longestSeq(id), onLog: (line) => this.log('info', `${id}: ${line}`),
    });
    const vocab = this.model?.config.vocab_size;
    if (vocab !== undefined && data.vocabSize > vocab) throw new Error(`${id}: the tokenizer has ${data.vocabSize} tokens but the model's vocab_size is ${vocab}`);
    this.datasets.set(id, data);
    return data;
  }

  /** Longest sequence any Train node fed by this dataset asks for (checked by the data layer at load). */
  private longestSeq(datasetId: string): number | undefined {
    const lengths = stagesOf(this.pipeline)
      .filter((s) => s.dataset === datasetId || s.gateDataset === datasetId)
      .map((s) => maxSeqLen((this.node(s.train) as NodeOf<'train'>).params.curriculum));
    return lengths.length ? Math.max(...lengths) : undefined;
  }

  private node(id: string): PipelineNode {
    const node = this.byId.get(id);
    if (!node) throw new Error(`links: no node with id '${id}'`);
    return node;
  }

  private emit(event: EventBody): void {
    if (this.silent) return;
    this.deps.emit({ ...event, time: Date.now() } as EngineEvent);
  }

  private log(level: 'info' | 'warn' | 'error', message: string): void {
    this.emit({ type: 'log', level, message });
  }
}

function distillWeights(node: NodeOf<'distill'>): DistillWeights {
  const p = node.params;
  return { task: p.task_weight, attn_kl: p.attn_kl_weight, logit_kl: p.logit_kl_weight, hidden_mse: p.hidden_mse_weight, temperature: p.temperature };
}

/** Layers that gained a trainable kind other than the selector (a new part, not an unfreeze) from `before` to `after`. */
function newlyTrainable(before: RunModelState, after: RunModelState): number[] {
  return after.layers.flatMap((layer, l) => layer.trainable.some((k) => k !== 'selector' && !before.layers[l].trainable.includes(k)) ? [l] : []);
}

function stripPerLayer(m: Partial<EvalMetrics>): Partial<EvalMetrics> {
  const { per_layer: _perLayer, ...rest } = m;
  return rest;
}
