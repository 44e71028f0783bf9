// Loads the engine addon (native/build/Release/sparse_engine.node) and types its surface. Only
// native/ code calls it: index.ts (the EngineApi) and checkpoint/config.ts (the tensor layout).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import type { MaskSpec, ParamKind } from '../core/schema';
import type { AttentionProfile, AttentionProfileOptions, EngineMaskSpec, BackendInfo, BackendName, EvalResult, ModelConfig, Precision, PrefillTimes, StepOptions, StepResult } from './engine-api';
import type { ModelFeatures } from './checkpoint/families';
import type { CudaInfo, NvmlReading } from './index';

export const ADDON_MISSING = 'engine addon not built: run npm install (node-gyp)';

export interface NativeTensorInfo { name: string; kind: ParamKind; layer: number; shape: number[]; trainable: boolean }
export interface NativeModelHandle {
  numParams(): number;
  tensors(): NativeTensorInfo[];
  initRandom(seed: number): void;
  /** studentOnly: the teacher keeps its weights (the tensor gets its own teacher copy if needed). */
  setTensor(name: string, data: Float32Array, studentOnly?: boolean): void;
  getTensor(name: string): Float32Array;
  getTeacherTensor(name: string): Float32Array;
  setTrainable(layers: number[], kinds: string[], trainable: boolean): void;
  setAttention(layer: number, mask: EngineMaskSpec | null): void;
  trainStep(tokens: Int32Array, batch: number, seq: number, options: StepOptions): Promise<StepResult>;
  computeGradients(tokens: Int32Array, batch: number, seq: number, options: StepOptions): Promise<{ result: StepResult; grads: Record<string, Float32Array> }>;
  evaluate(tokens: Int32Array, batch: number, seq: number): Promise<EvalResult>;
  loss(tokens: Int32Array, batch: number, seq: number): Promise<number>;
  timePrefill(tokens: Int32Array, batch: number, seq: number, reps: number): Promise<PrefillTimes>;
  attentionProfile(tokens: Int32Array, batch: number, seq: number, options: AttentionProfileOptions): Promise<AttentionProfile>;
  getOptimizerState(): Record<string, { step: number; m: Float32Array; v: Float32Array }>;
  setOptimizerState(name: string, step: number, m: Float32Array, v: Float32Array): void;
  backend(): BackendInfo;
  setPrecision(precision: Precision): void;
  dispose(): void;
}
export interface NativeBackendOptions { backend: BackendName; precision: Precision; cudaModule?: string }
export interface Addon {
  NativeModel: new (config: ModelConfig & ModelFeatures, options?: NativeBackendOptions) => NativeModelHandle;
  /** Every tensor of a checkpoint of this config, in checkpoint order (native/src/model.h tensor_layout). */
  tensorLayout(config: ModelConfig & ModelFeatures): { name: string; kind: ParamKind; layer: number; shape: number[] }[];
  /** RoPE inverse frequencies and cos/sin attention factor for a sequence of seqLen tokens (native/src/ops.h rope_frequencies). */
  ropeFrequencies(config: ModelConfig & ModelFeatures, seqLen: number): { invFreq: Float64Array; attentionFactor: number };
  /** The parameter kind names the engine knows, in its order. */
  paramKinds(): string[];
  engineInfo(): { threads: number; simd: string };
  setThreads(n: number): void;
  benchGemm(m: number, n: number, k: number, reps: number): Promise<number>;
  benchGemmCompare(m: number, n: number, k: number, transA: boolean, transB: boolean, reps: number): Promise<GemmCompare>;
  cudaInfo?: () => CudaInfo;
  nvmlRead?: () => NvmlReading;
}

/** engine sgemm vs OpenBLAS (loaded at run time when installed), timed alternately in one run. */
export interface GemmCompare {
  gflops: number;
  /** null when OpenBLAS is not installed (referenceMissing says so and how to install it). */
  referenceGflops: number | null;
  reference: 'openblas' | null;
  /** OpenBLAS's kernel set for this CPU (openblas_get_corename), e.g. "Haswell". */
  referenceCore: string | null;
  referenceMissing: string | null;
  /** Timed reps of each (at least those asked for; more on short products). */
  reps: number;
}

const require = createRequire(import.meta.url);
// SPARSE_STUDIO_ADDON points at another build of the addon (packaged apps, tests of the unbuilt case).
const ADDON_PATH = process.env.SPARSE_STUDIO_ADDON || new URL('./build/Release/sparse_engine.node', import.meta.url).pathname;

let cached: Addon | null | undefined;
export function loadAddon(): Addon | null {
  if (cached !== undefined) return cached;
  cached = null;
  if (existsSync(ADDON_PATH)) {
    try {
      const a = require(ADDON_PATH) as Partial<Addon>;
      if (typeof a.NativeModel === 'function') cached = a as Addon;
    } catch {
      cached = null; // a stale or foreign binary: report it as not built
    }
  }
  return cached;
}

export function addon(): Addon {
  const a = loadAddon();
  if (!a) throw new Error(ADDON_MISSING);
  return a;
}

/** True when the addon is built and loads. */
export function engineAvailable(): boolean {
  return loadAddon() !== null;
}
