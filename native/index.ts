// The engine's TypeScript face: loads the addon (native/build/Release/sparse_engine.node) and
// implements EngineApi (native/engine-api.ts) on top of it. Arguments are validated here, once,
// with one-line messages naming the field; the addon copies them into plain structs and runs
// long calls off the JS thread. Importing this file never throws: without a built addon every
// call fails with "engine addon not built: run npm install (node-gyp)".
import { createRequire } from 'node:module';
import { existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { MaskSpec, ParamKind } from '../core/schema';
import { PARAM_KINDS } from '../core/schema';
import type {
  AttentionProfile, AttentionProfileOptions, BackendChoice, EngineMaskSpec, BackendInfo, BackendName, Batch, EngineApi, EngineModel, EvalResult, ModelConfig, ParamSelection, Precision,
  PrefillTimes, StepOptions, StepResult,
} from './engine-api';
import { PRECISIONS } from './engine-api';
import { ADDON_MISSING, addon, loadAddon, type NativeBackendOptions, type NativeModelHandle, type NativeTensorInfo, type GemmCompare } from './addon';
import { withFeatures } from './checkpoint/families';
import { withRecordedSeed } from './mask';
import { validateModelConfig } from './checkpoint/config';
import { loadCheckpoint, saveCheckpoint } from './checkpoint/load';
import { readSafetensors, SafetensorsFile, writeSafetensors } from './checkpoint/safetensors';

export { ADDON_MISSING, engineAvailable } from './addon';

const require = createRequire(import.meta.url);

const VERSION: string = (require('../package.json') as { version: string }).version;

export function engineInfo(): { version: string; threads: number; simd: string; cuda: CudaInfo } {
  const a = addon();
  const { threads, simd } = a.engineInfo();
  return { version: VERSION, threads, simd, cuda: a.cudaInfo ? a.cudaInfo() : cudaAddonInfo() };
}

const CUDA_ADDON_PATH = new URL('./build/Release/sparse_cuda.node', import.meta.url).pathname;

/** One NVML reading of every GPU (native/src/nvml.h); `reason` says why there is none. */
export interface NvmlReading {
  available: boolean;
  reason?: string;
  gpus: { index: number; name: string; utilization: number; memoryUsedBytes: number; memoryTotalBytes: number; powerWatts?: number; temperatureC?: number }[];
}

/** GPU telemetry through NVML (loaded at run time by the addon); never throws. */
export function nvmlRead(): NvmlReading {
  const a = loadAddon();
  if (!a || !a.nvmlRead) return { available: false, reason: ADDON_MISSING, gpus: [] };
  return a.nvmlRead();
}

/** What the CUDA backend can do here; `reason` says why it is not available for runs. */
export interface CudaInfo {
  compiled: boolean;
  available: boolean;
  device?: string;
  reason?: string;
  /** The GEMM in use: "cublas (<library>)", or the fp32 fallback with where cuBLAS was sought. */
  gemm?: string;
  /** Which attention head dims fit the device's shared memory, e.g. "head_dim 64 and 128". */
  attention?: string;
}

/** The CUDA module (sparse_cuda.node, built only where nvcc exists); the engine loads the CUDA
 * backend from it when a model is made with backend 'cuda'. */
function cudaAddonInfo(): CudaInfo {
  if (!existsSync(CUDA_ADDON_PATH)) return { compiled: false, available: false, reason: 'this build has no CUDA module (nvcc was not found at install)' };
  try {
    const info = (require(CUDA_ADDON_PATH) as { info(): { available?: boolean; device?: string; reason?: string; gemm?: string; attention?: string } }).info();
    const device = info.device ? { device: info.device } : {};
    if (info.available !== true) return { compiled: true, available: false, ...device, reason: `no usable CUDA device (${info.reason ?? 'unknown'})` };
    return { compiled: true, available: true, ...device, ...(info.gemm ? { gemm: info.gemm } : {}), ...(info.attention ? { attention: info.attention } : {}) };
  } catch (e) {
    return { compiled: true, available: false, reason: `the CUDA module does not load here (${(e as Error).message.split('\n')[0]})` };
  }
}

/** What the engine's options say about where a model runs; checked before the addon sees them. */
function backendOptions(options: BackendChoice | undefined): NativeBackendOptions {
  const backend = options?.backend ?? 'cpu';
  const precision = options?.precision ?? 'fp32';
  if (backend !== 'cpu' && backend !== 'cuda') throw new Error(`backend: must be cpu or cuda, got ${JSON.stringify(backend)}`);
  if (!PRECISIONS.includes(precision)) throw new Error(`precision: must be one of ${PRECISIONS.join(', ')}, got ${JSON.stringify(precision)}`);
  if (backend === 'cpu') return { backend, precision: 'fp32' };  // the CPU computes in fp32
  const cuda = cudaAddonInfo();
  if (!cuda.available) throw new Error(`backend: cuda is not usable here (${cuda.reason})`);
  return { backend, precision, cudaModule: CUDA_ADDON_PATH };
}

function setThreads(threads: number | undefined): void {
  if (threads === undefined) return;
  if (!Number.isInteger(threads) || threads < 1 || threads > 1024) throw new Error(`threads: must be an integer in [1, 1024], got ${threads}`);
  addon().setThreads(threads);
}

/** GFLOP/s of C (m, n) = A (m, k) @ B (n, k)^T, best of reps after a warm-up. */
export function benchGemm(m: number, n: number, k: number, reps: number): Promise<number> {
  return addon().benchGemm(m, n, k, reps);
}

/** C (m, n) = op(A) op(B) timed against OpenBLAS in the same run, rep by rep (transA: A is (k, m); transB: B is (n, k)). */
export function benchGemmCompare(m: number, n: number, k: number, transA: boolean, transB: boolean, reps: number): Promise<GemmCompare> {
  return addon().benchGemmCompare(m, n, k, transA, transB, reps);
}

// ---------------------------------------------------------------------------- argument checks

function checkBatch(batch: Batch): void {
  if (!batch || typeof batch !== 'object') throw new Error('batch: must be an object { tokens, batch, seq }');
  if (!(batch.tokens instanceof Int32Array)) throw new Error('batch.tokens: must be an Int32Array');
  if (!Number.isInteger(batch.batch) || batch.batch < 1) throw new Error(`batch.batch: must be a positive integer, got ${batch.batch}`);
  if (!Number.isInteger(batch.seq) || batch.seq < 1) throw new Error(`batch.seq: must be a positive integer, got ${batch.seq}`);
  const want = batch.batch * (batch.seq + 1);
  if (batch.tokens.length !== want) throw new Error(`batch.tokens: length ${batch.tokens.length}, expected batch * (seq + 1) = ${want}`);
}

function checkStepOptions(o: StepOptions): void {
  if (!o || typeof o !== 'object') throw new Error('options: must be an object');
  const finite = (field: string, v: unknown, min: number, max = Infinity) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw new Error(`options.${field}: must be a number in [${min}, ${max}], got ${String(v)}`);
  };
  finite('lr', o.lr, 0);
  finite('weight_decay', o.weight_decay, 0);
  finite('beta1', o.beta1, 0, 0.999999);
  finite('beta2', o.beta2, 0, 0.999999999);
  finite('eps', o.eps, 0);
  finite('grad_clip', o.grad_clip, 0);
  if (o.lr_scale !== undefined && o.lr_scale !== null) {
    if (typeof o.lr_scale !== 'object') throw new Error('options.lr_scale: must be an object { kind: multiplier }');
    for (const [k, v] of Object.entries(o.lr_scale)) {
      if (!PARAM_KINDS.includes(k as ParamKind)) throw new Error(`options.lr_scale: unknown kind ${JSON.stringify(k)} (one of ${PARAM_KINDS.join(', ')})`);
      finite(`lr_scale.${k}`, v, 0);
    }
  }
  if (o.distill !== null && o.distill !== undefined) {
    const d = o.distill;
    if (typeof d !== 'object') throw new Error('options.distill: must be an object or null');
    for (const f of ['task', 'attn_kl', 'logit_kl', 'hidden_mse'] as const) {
      if (typeof d[f] !== 'number' || !Number.isFinite(d[f]) || d[f] < 0) throw new Error(`options.distill.${f}: must be a non-negative number, got ${String(d[f])}`);
    }
    if (typeof d.temperature !== 'number' || !(d.temperature > 0) || !Number.isFinite(d.temperature)) {
      throw new Error(`options.distill.temperature: must be a positive number, got ${String(d.temperature)}`);
    }
  }
  if (o.attn_entropy_weight !== undefined && o.attn_entropy_weight !== null) finite('attn_entropy_weight', o.attn_entropy_weight, 0);
  if (o.load_balance !== null && o.load_balance !== undefined) {
    const lb = o.load_balance;
    if (typeof lb !== 'object') throw new Error('options.load_balance: must be an object { kind, weight? } or null');
    if (lb.kind !== 'seed' && lb.kind !== 'switch') throw new Error(`options.load_balance.kind: must be seed or switch, got ${JSON.stringify(lb.kind)}`);
    if (lb.weight !== undefined && (typeof lb.weight !== 'number' || !Number.isFinite(lb.weight) || lb.weight < 0)) {
      throw new Error(`options.load_balance.weight: must be a non-negative number, got ${String(lb.weight)}`);
    }
  }
}

/** Re-throws an addon error from here, so the stack shows the caller (the addon's has none). */
async function withCallerStack<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p();
  } catch (e) {
    throw new Error((e as Error).message ?? String(e));
  }
}

// ---------------------------------------------------------------------------- model

/** The config fields that fix every tensor's shape (a checkpoint must agree on all of them). */
const SHAPE_FIELDS = ['model_type', 'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
  'num_key_value_heads', 'head_dim', 'tie_word_embeddings', 'num_experts', 'moe_intermediate_size', 'decoder_sparse_step'] as const;

/** Engine-only tensors (the trainable block indexers) saved beside model.safetensors. */
export const SELECTOR_FILE = 'selector.safetensors';

export class NativeEngineModel implements EngineModel {
  readonly numParams: number;
  private handle: NativeModelHandle | null;
  // Selector tensors read from a saved directory: a layer's indexer exists only once
  // setAttention makes that layer block-sparse, so its weights wait here until then.
  private pendingSelectors: Map<string, Float32Array>;

  constructor(readonly config: ModelConfig, handle: NativeModelHandle, pendingSelectors = new Map<string, Float32Array>()) {
    this.handle = handle;
    this.numParams = handle.numParams();
    this.pendingSelectors = pendingSelectors;
  }

  private get h(): NativeModelHandle {
    if (!this.handle) throw new Error('model was disposed');
    return this.handle;
  }

  /** Where the model runs: backend, device, precision (and the fp16 loss scale). */
  get backend(): BackendInfo {
    return this.h.backend();
  }

  setPrecision(precision: Precision): void {
    if (!PRECISIONS.includes(precision)) throw new Error(`precision: must be one of ${PRECISIONS.join(', ')}, got ${JSON.stringify(precision)}`);
    this.h.setPrecision(precision);
  }

  /** Every tensor with its kind, layer, shape and whether it trains. */
  tensors(): NativeTensorInfo[] {
    return this.h.tensors();
  }

  getTensor(name: string): Float32Array {
    return this.h.getTensor(name);
  }

  /** The weights the dense teacher reads (the student's own until the tensor was unfrozen). */
  getTeacherTensor(name: string): Float32Array {
    return this.h.getTeacherTensor(name);
  }

  setTensor(name: string, data: Float32Array): void {
    this.h.setTensor(name, data);
  }

  setAttention(layer: number, mask: EngineMaskSpec | null): void {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.config.num_hidden_layers) {
      throw new Error(`layer: must be an integer in [0, ${this.config.num_hidden_layers - 1}], got ${layer}`);
    }
    if (mask !== null && (typeof mask !== 'object' || Array.isArray(mask))) throw new Error('mask: must be a MaskSpec object or null');
    this.h.setAttention(layer, mask === null ? null : withRecordedSeed(mask, mask.share_gqa_group ? this.config.num_key_value_heads : this.config.num_attention_heads));
    const prefix = `model.layers.${layer}.self_attn.indexer.`;
    const present = new Set(this.h.tensors().map((t) => t.name));
    for (const [name, data] of this.pendingSelectors) {
      if (name.startsWith(prefix) && present.has(name)) {
        this.h.setTensor(name, data);
        this.pendingSelectors.delete(name);
      }
    }
  }

  setTrainable(selection: ParamSelection, trainable: boolean): void {
    if (!selection || typeof selection !== 'object') throw new Error('selection: must be { layers, kinds }');
    const { layers, kinds } = selection;
    const L = this.config.num_hidden_layers;
    if (layers !== 'all') {
      if (!Array.isArray(layers) || layers.length === 0) throw new Error("selection.layers: must be 'all' or a non-empty array of layer indices");
      for (const l of layers) {
        if (!Number.isInteger(l) || l < 0 || l >= L) throw new Error(`selection.layers: ${l} is not a layer in [0, ${L - 1}]`);
      }
    }
    if (!Array.isArray(kinds)) throw new Error('selection.kinds: must be an array');
    for (const k of kinds) {
      if (!PARAM_KINDS.includes(k)) throw new Error(`selection.kinds: unknown kind ${JSON.stringify(k)} (one of ${PARAM_KINDS.join(', ')})`);
    }
    if (typeof trainable !== 'boolean') throw new Error('trainable: must be a boolean');
    this.h.setTrainable(layers === 'all' ? [] : layers, kinds, trainable);
  }

  trainStep(batch: Batch, options: StepOptions): Promise<StepResult> {
    return withCallerStack(async () => {
      checkBatch(batch);
      checkStepOptions(options);
      return this.h.trainStep(batch.tokens, batch.batch, batch.seq, { ...options, distill: options.distill ?? null });
    });
  }

  /** Loss and the gradients of every trainable tensor, without updating anything. */
  computeGradients(batch: Batch, options: StepOptions): Promise<{ result: StepResult; grads: Record<string, Float32Array> }> {
    return withCallerStack(async () => {
      checkBatch(batch);
      checkStepOptions(options);
      return this.h.computeGradients(batch.tokens, batch.batch, batch.seq, { ...options, distill: options.distill ?? null });
    });
  }

  evaluate(batch: Batch): Promise<EvalResult> {
    return withCallerStack(async () => {
      checkBatch(batch);
      return this.h.evaluate(batch.tokens, batch.batch, batch.seq);
    });
  }

  attentionProfile(batch: Batch, options: AttentionProfileOptions): Promise<AttentionProfile> {
    return withCallerStack(async () => {
      checkBatch(batch);
      return this.h.attentionProfile(batch.tokens, batch.batch, batch.seq, options);
    });
  }

  timePrefill(batch: Batch, reps: number): Promise<PrefillTimes> {
    return withCallerStack(async () => {
      checkBatch(batch);
      if (!Number.isInteger(reps) || reps < 1 || reps > 1000) throw new Error(`reps: must be an integer in [1, 1000], got ${String(reps)}`);
      return this.h.timePrefill(batch.tokens, batch.batch, batch.seq, reps);
    });
  }

  /** Mean next-token cross-entropy (nats) of the student, dense forward only. */
  loss(batch: Batch): Promise<number> {
    return withCallerStack(async () => {
      checkBatch(batch);
      return this.h.loss(batch.tokens, batch.batch, batch.seq);
    });
  }

  /** config.json + model.safetensors (Hugging Face tensors), and selector.safetensors when block indexers exist. */
  async save(dir: string): Promise<void> {
    const tensors = new Map<string, Float32Array>();
    const selectors: { name: string; shape: number[]; data: Float32Array }[] = [];
    for (const t of this.h.tensors()) {
      if (t.kind === 'selector') selectors.push({ name: t.name, shape: t.shape, data: this.h.getTensor(t.name) });
      else tensors.set(t.name, this.h.getTensor(t.name));
    }
    saveCheckpoint(dir, this.config, tensors);
    const selectorFile = join(dir, SELECTOR_FILE);
    if (selectors.length > 0) writeSafetensors(selectorFile, selectors, { format: 'sparse-studio-selector' });
    else if (existsSync(selectorFile)) unlinkSync(selectorFile);
  }

  /**
   * The weights of a save() directory on top of this model (a fresh base with the run's model state
   * replayed), the teacher kept as the base: a tensor that differs gets its own teacher copy first.
   * Stage rollback and --resume use it instead of recomputing the earlier stages.
   */
  async loadTrainable(dir: string): Promise<void> {
    const { config, tensors } = loadCheckpoint(dir);
    for (const field of SHAPE_FIELDS) {
      if (config[field] !== this.config[field]) throw new Error(`${dir}: config.json ${field} is ${String(config[field])}, this model has ${String(this.config[field])}`);
    }
    try {
      for (const [name, data] of tensors) this.h.setTensor(name, data, true);
    } catch (e) {
      throw new Error(`${dir}: ${(e as Error).message}`);
    }
    const selectorFile = join(dir, SELECTOR_FILE);
    if (!existsSync(selectorFile)) return;
    const present = new Set(this.h.tensors().map((t) => t.name));
    for (const [name, t] of readSafetensors(selectorFile)) {
      if (present.has(name)) this.h.setTensor(name, t.data, true);
      else this.pendingSelectors.set(name, t.data);
    }
  }

  async saveOptimizer(file: string): Promise<void> {
    const state = this.h.getOptimizerState();
    const shapes = new Map(this.h.tensors().map((t) => [t.name, t.shape]));
    const list: { name: string; shape: number[]; data: Float32Array }[] = [];
    const steps: Record<string, number> = {};
    for (const [name, s] of Object.entries(state)) {
      steps[name] = s.step;
      list.push({ name: `${name}.exp_avg`, shape: shapes.get(name)!, data: s.m }, { name: `${name}.exp_avg_sq`, shape: shapes.get(name)!, data: s.v });
    }
    writeSafetensors(file, list, { format: 'sparse-studio-adamw', steps: JSON.stringify(steps) });
  }

  async loadOptimizer(file: string): Promise<void> {
    const st = SafetensorsFile.open(file);
    try {
      const steps = optimizerSteps(st);
      const trainable = new Set(this.h.tensors().filter((t) => t.trainable).map((t) => t.name));
      for (const [name, step] of Object.entries(steps)) {
        if (!trainable.has(name)) throw new Error(`${file}: optimizer state for ${name}, which is not a trainable tensor of this model`);
        if (!st.tensors.has(`${name}.exp_avg`) || !st.tensors.has(`${name}.exp_avg_sq`)) throw new Error(`${file}: missing moments of ${name}`);
        this.h.setOptimizerState(name, step, st.read(`${name}.exp_avg`).data, st.read(`${name}.exp_avg_sq`).data);
      }
    } finally {
      st.close();
    }
  }

  dispose(): void {
    this.handle?.dispose();
    this.handle = null;
  }
}

/** The per-tensor AdamW step counts saveOptimizer stores in __metadata__.steps. */
function optimizerSteps(st: SafetensorsFile): Record<string, number> {
  const text = st.metadata?.steps;
  if (typeof text !== 'string') throw new Error(`${st.file}: not an optimizer state file (no steps in __metadata__)`);
  let steps: unknown;
  try {
    steps = JSON.parse(text);
  } catch {
    throw new Error(`${st.file}: __metadata__.steps is not valid JSON`);
  }
  if (typeof steps !== 'object' || steps === null || !Object.values(steps).every((s) => Number.isInteger(s) && (s as number) >= 0)) {
    throw new Error(`${st.file}: __metadata__.steps must map tensor names to step counts`);
  }
  return steps as Record<string, number>;
}

// ---------------------------------------------------------------------------- EngineApi

function createModel(config: ModelConfig, options: { seed: number; threads?: number } & BackendChoice): NativeEngineModel {
  const a = addon();
  const valid = validateModelConfig(config, 'config');
  if (!options || !Number.isInteger(options.seed) || options.seed < 0) throw new Error(`seed: must be a non-negative integer, got ${options?.seed}`);
  setThreads(options.threads);
  const handle = new a.NativeModel(withFeatures(valid), backendOptions(options));
  handle.initRandom(options.seed);
  return new NativeEngineModel(valid, handle);
}

async function loadModel(dir: string, options?: { threads?: number } & BackendChoice): Promise<NativeEngineModel> {
  const a = addon();
  setThreads(options?.threads);
  const native = backendOptions(options);
  const { config, tensors } = loadCheckpoint(dir);
  const selectorFile = join(dir, SELECTOR_FILE);
  const selectors = existsSync(selectorFile) ? new Map([...readSafetensors(selectorFile)].map(([k, t]) => [k, t.data])) : new Map<string, Float32Array>();
  const handle = new a.NativeModel(withFeatures(config), native);
  try {
    for (const [name, data] of tensors) handle.setTensor(name, data);
  } catch (e) {
    handle.dispose();
    throw new Error(`${dir}: ${(e as Error).message}`);
  }
  return new NativeEngineModel(config, handle, selectors);
}

export const engine = {
  loadModel,
  createModel,
  info: engineInfo,
} satisfies EngineApi;

export default engine;
