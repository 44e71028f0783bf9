// Reads and validates a Hugging Face config.json into the engine's ModelConfig. Every field the
// engine uses is checked here, once, at the boundary; errors are one line naming file and field.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { addon } from '../addon';
import type { ModelConfig } from '../engine-api';
import { family, MODEL_TYPES, type ModelType, type ScaleFields, withFeatures } from './families';

export { MODEL_TYPES };

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

type Raw = Record<string, unknown>;

function fail(file: string, field: string, what: string): never {
  throw new CheckpointError(`${file}: ${field}: ${what}`);
}

function positiveInt(raw: Raw, file: string, field: string, fallback?: number): number {
  const v = raw[field] ?? fallback;
  if (v === undefined) fail(file, field, 'missing');
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) fail(file, field, `must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function positiveNumber(raw: Raw, file: string, field: string, fallback?: number): number {
  const v = raw[field] ?? fallback;
  if (v === undefined) fail(file, field, 'missing');
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(file, field, `must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

/** rope_scaling: null/default (plain RoPE) or LongRoPE (MiniCPM 4.1, Phi-3); anything else is refused. */
function validateRopeScaling(raw: Raw, file: string, headDim: number): Record<string, unknown> | null {
  const rs = raw.rope_scaling;
  if (rs === undefined || rs === null) return null;
  if (typeof rs !== 'object' || Array.isArray(rs)) fail(file, 'rope_scaling', 'must be an object or null');
  const r = rs as Raw;
  const type = r.rope_type ?? r.type;
  if (type === 'default') return null;
  if (type === 'longrope') {
    for (const key of ['short_factor', 'long_factor']) {
      const f = r[key];
      if (!Array.isArray(f) || f.length !== headDim / 2 || !f.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) {
        fail(file, `rope_scaling.${key}`, `must be ${headDim / 2} positive numbers (head_dim / 2)`);
      }
    }
    const orig = r.original_max_position_embeddings ?? raw.original_max_position_embeddings;
    if (typeof orig !== 'number' || !Number.isInteger(orig) || orig < 1) {
      fail(file, 'rope_scaling.original_max_position_embeddings', 'must be a positive integer');
    }
    return { ...r, rope_type: 'longrope', original_max_position_embeddings: orig };
  }
  return fail(file, 'rope_scaling.rope_type', `unsupported ${JSON.stringify(type)} (supported: default, longrope)`);
}

/** Validates a parsed config.json object; `file` names it in errors. */
export function validateModelConfig(raw: unknown, file = 'config.json'): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(file, '(root)', 'must be a JSON object');
  const r = raw as Raw;
  const modelType = r.model_type;
  if (!MODEL_TYPES.includes(modelType as ModelType)) {
    fail(file, 'model_type', `must be one of ${MODEL_TYPES.join(', ')}, got ${JSON.stringify(modelType)}`);
  }
  const type = modelType as ModelType;
  const fam = family(type);
  const hidden = positiveInt(r, file, 'hidden_size');
  const heads = positiveInt(r, file, 'num_attention_heads');
  const kvHeads = positiveInt(r, file, 'num_key_value_heads', heads);
  if (heads % kvHeads !== 0) fail(file, 'num_key_value_heads', `${kvHeads} must divide num_attention_heads (${heads})`);
  const headDimDefault = hidden % heads === 0 ? hidden / heads : undefined;
  const headDim = positiveInt(r, file, 'head_dim', headDimDefault);
  if (headDim % 2 !== 0) fail(file, 'head_dim', `must be even for RoPE, got ${headDim}`);
  const tie = r.tie_word_embeddings ?? fam.tie_word_embeddings;
  if (typeof tie !== 'boolean') fail(file, 'tie_word_embeddings', 'must be true or false');
  const act = r.hidden_act ?? 'silu';
  if (act !== 'silu') fail(file, 'hidden_act', `only silu (SwiGLU) is supported, got ${JSON.stringify(act)}`);
  const config: ModelConfig = {
    model_type: type,
    vocab_size: positiveInt(r, file, 'vocab_size'),
    hidden_size: hidden,
    intermediate_size: positiveInt(r, file, 'intermediate_size'),
    num_hidden_layers: positiveInt(r, file, 'num_hidden_layers'),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    rms_norm_eps: positiveNumber(r, file, 'rms_norm_eps', 1e-6),
    rope_theta: positiveNumber(r, file, 'rope_theta', 10000),
    max_position_embeddings: positiveInt(r, file, 'max_position_embeddings', 2048),
    tie_word_embeddings: tie,
    rope_scaling: validateRopeScaling(r, file, headDim),
  };
  if (fam.scale_defaults) {
    for (const [field, fallback] of Object.entries(fam.scale_defaults(hidden))) {
      config[field as keyof ScaleFields] = positiveNumber(r, file, field, fallback);
    }
  }
  return config;
}

/** Reads DIR/config.json. */
export function readModelConfig(dir: string): ModelConfig {
  const file = join(dir, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CheckpointError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return validateModelConfig(raw, file);
}

/** The config.json the engine writes on save: the HF fields plus `architectures`. */
export function configToJson(config: ModelConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { architectures: [family(config.model_type).architecture], hidden_act: 'silu', torch_dtype: 'float32', ...config };
  if (out.rope_scaling === undefined) out.rope_scaling = null;
  return out;
}

/**
 * Name and shape of every tensor a checkpoint of this config holds (HF naming), in model order.
 * The C++ model owns the layout (native/src/model.h tensor_layout, which also builds the model),
 * so the checkpoint reader, writer and preflight cannot disagree with it; this asks the addon.
 */
export function expectedTensors(config: ModelConfig): { name: string; shape: number[] }[] {
  return addon().tensorLayout(withFeatures(config)).map(({ name, shape }) => ({ name, shape }));
}
