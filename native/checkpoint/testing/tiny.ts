// Test support: writes tiny Hugging Face checkpoints (config.json + safetensors) of every
// architecture the engine reads, in F32, F16 or BF16, single-file or sharded, from a seeded PRNG.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../../engine-api';
import { expectedTensors } from '../config';

export type Dtype = 'F32' | 'F16' | 'BF16';

/** mulberry32: a tiny seeded PRNG for reproducible test weights. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function tinyConfig(type: ModelConfig['model_type'], tied: boolean, extra: Partial<ModelConfig> = {}): ModelConfig {
  const base: ModelConfig = {
    model_type: type, vocab_size: 37, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, head_dim: type === 'qwen3' || type === 'qwen3_moe' ? 8 : 4, rms_norm_eps: 1e-6,
    rope_theta: 10000, max_position_embeddings: 64, tie_word_embeddings: tied, rope_scaling: null,
  };
  if (type === 'minicpm') Object.assign(base, { scale_emb: 2.5, scale_depth: 1.4, dim_model_base: 8 });
  if (type === 'qwen3_moe') {
    Object.assign(base, {
      num_hidden_layers: 3, num_experts: 4, num_experts_per_tok: 2, moe_intermediate_size: 12, norm_topk_prob: true,
      decoder_sparse_step: 1, mlp_only_layers: [1], router_aux_loss_coef: 0.001,
    });
  }
  return { ...base, ...extra };
}

function f32ToF16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const ax = Math.abs(x);
  if (Number.isNaN(x)) return 0x7e00;
  if (ax >= 65520) return sign | 0x7c00;
  if (ax < 2 ** -14) return sign | Math.round(ax / 2 ** -24);
  let exp = Math.floor(Math.log2(ax));
  let mant = Math.round((ax / 2 ** exp - 1) * 1024);
  if (mant === 1024) { mant = 0; exp++; }
  return sign | ((exp + 15) << 10) | mant;
}

function f32ToBf16(x: number): number {
  const u = new Uint32Array(new Float32Array([x]).buffer)[0];
  return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16; // round to nearest even
}

/** safetensors bytes of the given tensors in one dtype (test-only writer; the engine writes F32). */
export function encodeAs(tensors: { name: string; shape: number[]; data: Float32Array }[], dtype: Dtype): Buffer {
  const size = dtype === 'F32' ? 4 : 2;
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length * size] };
    offset += t.data.length * size;
  }
  const json = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length));
  json.copy(out, 8);
  let at = 8 + json.length;
  for (const t of tensors) {
    for (const x of t.data) {
      if (dtype === 'F32') out.writeFloatLE(x, at);
      else out.writeUInt16LE(dtype === 'F16' ? f32ToF16(x) : f32ToBf16(x), at);
      at += size;
    }
  }
  return out;
}

export function randomTensors(config: ModelConfig, seed: number, std = 0.3): { name: string; shape: number[]; data: Float32Array }[] {
  const next = rng(seed);
  return expectedTensors(config).map(({ name, shape }) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = name.endsWith('norm.weight') || name.endsWith('layernorm.weight');
    for (let i = 0; i < n; i++) {
      const g = Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next());
      data[i] = isNorm ? 1 + 0.2 * g : std * g;
    }
    return { name, shape, data };
  });
}

/** Writes DIR with config.json and weights; `shards` > 1 writes model-0000i-of-0000n.safetensors + index. */
export function writeTinyCheckpoint(dir: string, config: ModelConfig, options: { seed?: number; dtype?: Dtype; shards?: number } = {}): void {
  const { seed = 1, dtype = 'F32', shards = 1 } = options;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ architectures: ['X'], ...config }, null, 2));
  const tensors = randomTensors(config, seed);
  if (shards === 1) {
    writeFileSync(join(dir, 'model.safetensors'), encodeAs(tensors, dtype));
    return;
  }
  const weightMap: Record<string, string> = {};
  const per = Math.ceil(tensors.length / shards);
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = tensors.slice(s * per, (s + 1) * per);
    for (const t of part) weightMap[t.name] = file;
    writeFileSync(join(dir, file), encodeAs(part, dtype));
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}
