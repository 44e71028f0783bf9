// `sparse-studio bench gemm|attention|train [--json]`: engine measurements, one JSON object per
// measurement with --json, else a readable table.
//   gemm:      {"bench":"gemm","m","n","k","gflops","layout","reference","reference_gflops","ratio"}
//              for the matrix products of a training step of the demo model (models/demo/config.json,
//              batch 4 x 256) and of a d=1024 model on a 4096-token batch (QKV/O/MLP/LM head; forward
//              C = X W^T, layout "nt", and weight gradient dW = dY^T X, layout "tn"), each timed
//              against OpenBLAS in the same run when it is installed (loaded at run time; ratio = ours /
//              OpenBLAS, null without it), then {"bench":"gemm_geomean","ratio","shapes","reference"}.
//   train:     {"bench":"train","tokens_per_s","gflops","params","gemm_gflops","gemm_share"} over
//              full forward + backward + AdamW steps [--model DIR | --config FILE] [--batch B]
//              [--seq T] [--steps N] [--attn-entropy-weight W]; gemm_share = the step's FLOP rate
//              over our GEMM's rate on the step's largest product, measured in the same run (1 =
//              every FLOP at GEMM speed). --attn-entropy-weight turns the attention-entropy term on
//              (the Train node's attn_entropy_weight); gflops counts the matmul FLOPs only.
//   attention: native/bench-attention.ts (block-sparse vs dense).
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { ModelConfig } from '../../native/engine-api';
import { validateModelConfig } from '../../native/checkpoint/config';
import { isMoeLayer } from '../../native/checkpoint/families';

const USAGE = `usage: sparse-studio bench gemm [--json] [--reps N]
       sparse-studio bench train [--json] [--model DIR | --config FILE] [--batch B] [--seq T] [--steps N] [--attn-entropy-weight W]
       sparse-studio bench attention [--json] [...]`;

class UsageError extends Error {}

const DEMO_CONFIG = fileURLToPath(new URL('../../models/demo/config.json', import.meta.url));

/** The demo model's shape (d=128, 12 layers, vocab 4096) when its config.json is absent. */
const DEMO_DEFAULT = { hidden_size: 128, intermediate_size: 384, num_hidden_layers: 12, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32, vocab_size: 4096 };

/** The small model `bench train` builds when no --model is given. */
export const BUILTIN_TRAIN_CONFIG: ModelConfig = {
  model_type: 'llama', vocab_size: 4096, hidden_size: 128, intermediate_size: 384, num_hidden_layers: 4,
  num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32, rms_norm_eps: 1e-5, rope_theta: 10000,
  max_position_embeddings: 1024, tie_word_embeddings: true, rope_scaling: null,
};

/** C (m, n) = op(A) op(B) over k; transA: A is stored (k, m); transB: B is stored (n, k) (as engine sgemm). */
export interface GemmShape { label: string; m: number; n: number; k: number; transA: boolean; transB: boolean }

type Shape = Pick<ModelConfig, 'hidden_size' | 'intermediate_size' | 'num_attention_heads' | 'num_key_value_heads' | 'head_dim' | 'vocab_size'>;

/** Distinct products of one training step over N tokens: forward X W^T and weight gradients dY^T X. */
export function trainingGemmShapes(model: string, c: Shape, N: number): GemmShape[] {
  const C = c.hidden_size, F = c.intermediate_size, HD = c.num_attention_heads * c.head_dim, KD = c.num_key_value_heads * c.head_dim;
  const linears: [string, number, number][] = [['q', HD, C], ['kv', KD, C], ['o', C, HD], ['gate/up', F, C], ['down', C, F], ['lm_head', c.vocab_size, C]];
  const out: GemmShape[] = [];
  const seen = new Set<string>();
  const add = (label: string, m: number, n: number, k: number, transA: boolean, transB: boolean) => {
    const key = `${m},${n},${k}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ label: `${model} ${label}`, m, n, k, transA, transB });
  };
  // As matmul_forward / matmul_backward call sgemm: Y = X W^T and dW += dY^T X.
  for (const [name, OC, IC] of linears) add(`${name} fwd`, N, OC, IC, false, true);
  for (const [name, OC, IC] of linears) add(`${name} dW`, OC, IC, N, true, false);
  return out;
}

function demoShape(): Shape {
  if (!existsSync(DEMO_CONFIG)) return DEMO_DEFAULT;
  const c = JSON.parse(readFileSync(DEMO_CONFIG, 'utf8')) as Partial<Shape> & { hidden_size: number; num_attention_heads: number };
  return { ...DEMO_DEFAULT, ...c, head_dim: c.head_dim ?? c.hidden_size / c.num_attention_heads };
}

/** Every gemm shape `bench gemm` measures. */
export function gemmShapes(): GemmShape[] {
  const d1024: Shape = { hidden_size: 1024, intermediate_size: 2816, num_attention_heads: 16, num_key_value_heads: 8, head_dim: 64, vocab_size: 32000 };
  return [...trainingGemmShapes('demo', demoShape(), 4 * 256), ...trainingGemmShapes('d1024', d1024, 4096)];
}

/**
 * FLOPs of one training step (forward + backward) over B x T tokens: 6 per matmul weight per token
 * plus causal attention. A mixture-of-experts layer counts its router and the k experts a token
 * runs (not all E), as the engine's Model::train_flops does.
 */
export function trainStepFlops(c: ModelConfig, B: number, T: number): number {
  const C = c.hidden_size, F = c.intermediate_size, HD = c.num_attention_heads * c.head_dim, KD = c.num_key_value_heads * c.head_dim;
  let matmulParams = c.vocab_size * C;
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const mlp = isMoeLayer(c, l) ? C * c.num_experts! + c.num_experts_per_tok! * 3 * C * c.moe_intermediate_size! : 3 * C * F;
    matmulParams += 2 * C * HD + 2 * C * KD + mlp;
  }
  const attention = c.num_hidden_layers * 2 * 2 * (T / 2) * HD; // QK^T and PV over the causal half, per token
  return B * T * (6 * matmulParams + 3 * attention);
}

function flagValue(args: string[], i: number, flag: string): string {
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new UsageError(`${flag} needs a value`);
  return v;
}

function positiveInt(v: string, flag: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`${flag} must be a positive integer, got '${v}'`);
  return Number(v);
}

function nonNegativeNumber(v: string, flag: string): number {
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || x < 0) throw new UsageError(`${flag} must be a number >= 0, got '${v}'`);
  return x;
}

/** A config.json for `bench train --config`: validated like a checkpoint's, weights initialised at random. */
function readBenchConfig(file: string): ModelConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`--config ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  try {
    return validateModelConfig(raw, file);
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]);
  }
}

/** The step's largest forward product (N tokens x out x in): the GEMM rate the step is held to. */
export function largestStepGemm(c: Shape, N: number): { m: number; n: number; k: number } {
  const shapes = trainingGemmShapes('step', c, N).filter((s) => s.label.endsWith('fwd'));
  return shapes.reduce((a, b) => (b.m * b.n * b.k > a.m * a.n * a.k ? b : a));
}

async function benchGemmCommand(args: string[]): Promise<number> {
  let json = false;
  let reps = 3;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--json') json = true;
    else if (args[i] === '--reps') reps = positiveInt(flagValue(args, i++, '--reps'), '--reps');
    else throw new UsageError(`unknown argument '${args[i]}'`);
  }
  const { benchGemmCompare, engineInfo } = await import('../../native/index');
  const info = engineInfo();
  const cell = (v: string | number, w: number) => String(v).padStart(w);
  const logRatios: number[] = [];
  let reference: string | null = null;
  for (const [i, s] of gemmShapes().entries()) {
    const r = await benchGemmCompare(s.m, s.n, s.k, s.transA, s.transB, reps);
    const layout = `${s.transA ? 't' : 'n'}${s.transB ? 't' : 'n'}`;
    const ratio = r.referenceGflops ? r.gflops / r.referenceGflops : null;
    if (ratio !== null) logRatios.push(Math.log(ratio));
    reference = r.reference;
    if (i === 0 && !json) {
      console.log(`sgemm C = op(A) op(B), best of >= ${reps} interleaved with the reference, ${info.threads} threads, ${info.simd}, cpu: ${cpus()[0]?.model ?? 'unknown'}`);
      console.log(r.reference ? `reference: OpenBLAS (${r.referenceCore || 'core unknown'} kernels), same threads, same run` : `reference: none, ${r.referenceMissing}`);
      console.log(`${'shape'.padEnd(22)} ${cell('m', 6)} ${cell('n', 6)} ${cell('k', 6)} ${cell('op', 3)} ${cell('GFLOP/s', 9)}${r.reference ? ` ${cell('OpenBLAS', 9)} ${cell('ratio', 6)}` : ''}`);
    }
    if (json) {
      const round = (x: number | null) => (x === null ? null : Number(x.toFixed(x < 10 ? 3 : 2)));
      console.log(JSON.stringify({ bench: 'gemm', m: s.m, n: s.n, k: s.k, gflops: round(r.gflops), layout, reference: r.reference, reference_gflops: round(r.referenceGflops), ratio: round(ratio) }));
    } else {
      const ref = r.referenceGflops === null || ratio === null ? '' : ` ${cell(r.referenceGflops.toFixed(1), 9)} ${cell(ratio.toFixed(2), 6)}`;
      console.log(`${s.label.padEnd(22)} ${cell(s.m, 6)} ${cell(s.n, 6)} ${cell(s.k, 6)} ${cell(layout, 3)} ${cell(r.gflops.toFixed(1), 9)}${ref}`);
    }
  }
  if (logRatios.length > 0) {
    const geomean = Math.exp(logRatios.reduce((a, b) => a + b, 0) / logRatios.length);
    if (json) console.log(JSON.stringify({ bench: 'gemm_geomean', ratio: Number(geomean.toFixed(3)), shapes: logRatios.length, reference }));
    else console.log(`geometric mean of ours / OpenBLAS over ${logRatios.length} shapes: ${geomean.toFixed(2)}`);
  }
  return 0;
}

async function benchTrainCommand(args: string[]): Promise<number> {
  let json = false;
  let modelDir: string | undefined;
  let configFile: string | undefined;
  let batch = 4;
  let seq = 256;
  let steps = 3;
  let entropyWeight = 0;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--json') json = true;
    else if (a === '--model') modelDir = flagValue(args, i++, a);
    else if (a === '--config') configFile = flagValue(args, i++, a);
    else if (a === '--batch') batch = positiveInt(flagValue(args, i++, a), a);
    else if (a === '--seq') seq = positiveInt(flagValue(args, i++, a), a);
    else if (a === '--steps') steps = positiveInt(flagValue(args, i++, a), a);
    else if (a === '--attn-entropy-weight') entropyWeight = nonNegativeNumber(flagValue(args, i++, a), a);
    else throw new UsageError(`unknown argument '${a}'`);
  }
  if (modelDir && configFile) throw new UsageError('give --model DIR or --config FILE, not both');
  const { engine, benchGemm } = await import('../../native/index');
  const model = modelDir ? await engine.loadModel(modelDir)
    : engine.createModel(configFile ? readBenchConfig(configFile) : BUILTIN_TRAIN_CONFIG, { seed: 0 });
  try {
    const c = model.config;
    if (seq > c.max_position_embeddings) throw new UsageError(`--seq ${seq} exceeds the model's max_position_embeddings (${c.max_position_embeddings})`);
    let state = 12345;
    const tokens = Int32Array.from({ length: batch * (seq + 1) }, () => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state % c.vocab_size;
    });
    const options = { lr: 1e-4, weight_decay: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, grad_clip: 1, distill: null, ...(entropyWeight > 0 ? { attn_entropy_weight: entropyWeight } : {}) };
    await model.trainStep({ tokens, batch, seq }, options); // warm-up: buffers, RoPE table, pool
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) await model.trainStep({ tokens, batch, seq }, options);
    const seconds = (performance.now() - t0) / 1000;
    const tokensPerS = (batch * seq * steps) / seconds;
    const gflops = (trainStepFlops(c, batch, seq) * steps) / seconds / 1e9;
    const largest = largestStepGemm(c, batch * seq);
    const gemmGflops = await benchGemm(largest.m, largest.n, largest.k, 3);
    const share = gflops / gemmGflops;
    if (json) {
      console.log(JSON.stringify({ bench: 'train', tokens_per_s: Number(tokensPerS.toFixed(1)), gflops: Number(gflops.toFixed(2)), params: model.numParams,
        gemm_gflops: Number(gemmGflops.toFixed(2)), gemm_share: Number(share.toFixed(3)), ...(entropyWeight > 0 ? { attn_entropy_weight: entropyWeight } : {}) }));
    } else {
      const term = entropyWeight > 0 ? `, attention-entropy term x${entropyWeight}` : '';
      console.log(`train step (forward + backward + AdamW${term}), ${modelDir ?? configFile ?? 'built-in model'}: ${model.numParams} params, batch ${batch} x ${seq} tokens, ${steps} steps`);
      console.log(`  ${tokensPerS.toFixed(0)} tokens/s   ${gflops.toFixed(1)} GFLOP/s   ${(seconds / steps * 1000).toFixed(0)} ms/step`);
      console.log(`  ${(share * 100).toFixed(0)}% of our GEMM's ${gemmGflops.toFixed(1)} GFLOP/s on the step's largest product (${largest.m}x${largest.n}x${largest.k})`);
    }
    return 0;
  } finally {
    model.dispose();
  }
}

export async function run(args: string[]): Promise<number> {
  const [kind, ...rest] = args;
  try {
    if (kind === 'gemm') return await benchGemmCommand(rest);
    if (kind === 'train') return await benchTrainCommand(rest);
    if (kind === 'attention') {
      const file = fileURLToPath(new URL('../../native/bench-attention.ts', import.meta.url));
      if (!existsSync(file)) {
        console.error('sparse-studio bench attention: not yet available in this build');
        return 2;
      }
      const { runAttentionBench } = (await import('../../native/bench-attention')) as { runAttentionBench: (a: string[]) => Promise<number> };
      return await runAttentionBench(rest);
    }
    throw new UsageError(kind === undefined ? 'which benchmark? gemm, attention or train' : `unknown benchmark '${kind}' (gemm, attention or train)`);
  } catch (e) {
    const message = (e as Error).message.split('\n')[0];
    if (e instanceof UsageError) {
      console.error(`sparse-studio bench: ${message}\n${USAGE}`);
      return 2;
    }
    console.error(`sparse-studio bench: ${message}`);
    return message.startsWith('engine addon not built') ? 2 : 1;
  }
}
