// Reads and validates a Hugging Face config.json into the engine's ModelConfig. Every field the
// engine uses is checked here, once, at the boundary; errors are one line naming file and field.
import { FileRefused, readRegularFile } from './regular-file';
import { join } from 'node:path';
import { addon } from '../addon';
import type { MaskSpec } from '../../core/schema';
import type { ModelConfig } from '../engine-api';
import { family, MODEL_TYPES, type MoeFields, type ModelType, type ScaleFields, withFeatures } from './families';

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

/**
 * Upper bounds of config.json's dimensions, far above any released model, so a corrupt or hostile
 * file fails with one line instead of sizing a layout or allocation from it. The C++ engine holds
 * the same bounds (ModelConfig::validate in native/src/model.cpp).
 */
export const CONFIG_CAPS = {
  vocab_size: 1 << 22,
  hidden_size: 1 << 16,
  intermediate_size: 1 << 19,
  num_hidden_layers: 1024,
  num_attention_heads: 1024,
  num_key_value_heads: 1024,
  head_dim: 1024,
  max_position_embeddings: 1 << 24,
  num_experts: 4096,
  moe_intermediate_size: 1 << 19,
  decoder_sparse_step: 1024,
} as const;

/** config.json larger than this is refused before it is read. */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

function positiveInt(raw: Raw, file: string, field: string, fallback?: number): number {
  const v = raw[field] ?? fallback;
  if (v === undefined) fail(file, field, 'missing');
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) fail(file, field, `must be a positive integer, got ${JSON.stringify(v)}`);
  const cap = (CONFIG_CAPS as Record<string, number>)[field];
  if (cap !== undefined && v > cap) fail(file, field, `${v} exceeds the supported maximum ${cap}`);
  return v;
}

function positiveNumber(raw: Raw, file: string, field: string, fallback?: number): number {
  const v = raw[field] ?? fallback;
  if (v === undefined) fail(file, field, 'missing');
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(file, field, `must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

const ROPE_TYPES = ['default', 'linear', 'dynamic', 'yarn', 'llama3', 'longrope'] as const;

/**
 * rope_scaling as transformers reads it (modeling_rope_utils): `rope_type` (or the older `type`) one
 * of ROPE_TYPES. Returns null for plain RoPE, else the object with `rope_type` set and the fields
 * the engine reads resolved (yarn's factor, longrope's original context); its other keys are kept,
 * so a save writes them back.
 */
function validateRopeScaling(raw: Raw, file: string, headDim: number, maxPositions: number): Record<string, unknown> | null {
  const rs = raw.rope_scaling;
  if (rs === undefined || rs === null) return null;
  if (typeof rs !== 'object' || Array.isArray(rs)) fail(file, 'rope_scaling', 'must be an object or null');
  const r = rs as Raw;
  const type = r.rope_type ?? r.type;
  if (!ROPE_TYPES.includes(type as (typeof ROPE_TYPES)[number])) {
    fail(file, 'rope_scaling.rope_type', `unsupported ${JSON.stringify(type)} (supported: ${ROPE_TYPES.join(', ')})`);
  }
  const field = (key: string) => `rope_scaling.${key}`;
  const num = (key: string, check: (v: number) => boolean, what: string, fallback?: number): number | undefined => {
    const v = r[key] ?? fallback;
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) fail(file, field(key), `must be ${what}, got ${JSON.stringify(v)}`);
    return v;
  };
  const required = (key: string, check: (v: number) => boolean, what: string): number => {
    if (r[key] === undefined || r[key] === null) fail(file, field(key), `missing (required for ${String(type)})`);
    return num(key, check, what)!;
  };
  const atLeastOne = (v: number) => v >= 1;
  const positive = (v: number) => v > 0;
  const positiveInt = (v: number) => Number.isInteger(v) && v >= 1 && v <= CONFIG_CAPS.max_position_embeddings;
  switch (type) {
    case 'default':
      return null;
    case 'linear':
    case 'dynamic':
      required('factor', atLeastOne, 'a number >= 1');
      return { ...r, rope_type: type };
    case 'yarn': {
      const original = num('original_max_position_embeddings', positiveInt, `a positive integer <= ${CONFIG_CAPS.max_position_embeddings}`);
      // transformers: factor from rope_scaling, else max_position_embeddings / original.
      const factor = r.factor ?? (original !== undefined ? maxPositions / original : undefined);
      if (factor === undefined) fail(file, field('factor'), 'missing (required for yarn without original_max_position_embeddings)');
      if (typeof factor !== 'number' || !Number.isFinite(factor) || factor < 1) fail(file, field('factor'), `must be a number >= 1, got ${JSON.stringify(factor)}`);
      num('attention_factor', positive, 'a positive number');
      num('beta_fast', positive, 'a positive number');
      num('beta_slow', positive, 'a positive number');
      num('mscale', (v) => v >= 0, 'a number >= 0');
      num('mscale_all_dim', (v) => v >= 0, 'a number >= 0');
      if (r.truncate !== undefined && typeof r.truncate !== 'boolean') fail(file, field('truncate'), 'must be true or false');
      return { ...r, rope_type: type, factor };
    }
    case 'llama3': {
      required('factor', atLeastOne, 'a number >= 1');
      const low = required('low_freq_factor', positive, 'a positive number');
      const high = required('high_freq_factor', positive, 'a positive number');
      if (high <= low) fail(file, field('high_freq_factor'), `must exceed low_freq_factor (${low}), got ${high}`);
      required('original_max_position_embeddings', positiveInt, `a positive integer <= ${CONFIG_CAPS.max_position_embeddings}`);
      return { ...r, rope_type: type };
    }
    case 'longrope': {
      for (const key of ['short_factor', 'long_factor']) {
        const f = r[key];
        if (!Array.isArray(f) || f.length !== headDim / 2 || !f.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) {
          fail(file, field(key), `must be ${headDim / 2} positive numbers (head_dim / 2)`);
        }
      }
      const orig = r.original_max_position_embeddings ?? raw.original_max_position_embeddings;
      if (typeof orig !== 'number' || !positiveInt(orig)) {
        fail(file, field('original_max_position_embeddings'), `must be a positive integer <= ${CONFIG_CAPS.max_position_embeddings}`);
      }
      num('attention_factor', positive, 'a positive number');
      return { ...r, rope_type: 'longrope', original_max_position_embeddings: orig };
    }
  }
  return null;
}

// Keys the engine reads (ModelConfig) or writes itself on save (configToJson); every other key of
// config.json is kept in `passthrough`.
const ENGINE_KEYS = new Set([
  'model_type', 'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
  'num_key_value_heads', 'head_dim', 'rms_norm_eps', 'rope_theta', 'max_position_embeddings', 'tie_word_embeddings',
  'scale_emb', 'scale_depth', 'dim_model_base', 'rope_scaling', 'architectures', 'hidden_act', 'torch_dtype', 'passthrough',
  'num_experts', 'num_experts_per_tok', 'moe_intermediate_size', 'norm_topk_prob', 'decoder_sparse_step', 'mlp_only_layers',
  'router_aux_loss_coef',
]);

/** The mixture-of-experts fields of a config.json, the family's defaults for those it omits. */
function validateMoe(r: Raw, file: string, layers: number, defaults: MoeFields): MoeFields {
  const int = (field: keyof MoeFields, min: number, max: number): number => {
    const v = r[field] ?? defaults[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(file, field, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    if (v > max) fail(file, field, `${v} exceeds the supported maximum ${max}`);
    return v;
  };
  const experts = int('num_experts', 0, CONFIG_CAPS.num_experts);
  const perTok = experts === 0 ? int('num_experts_per_tok', 0, Number.MAX_SAFE_INTEGER) : int('num_experts_per_tok', 1, experts);
  const width = int('moe_intermediate_size', 1, CONFIG_CAPS.moe_intermediate_size);
  const step = int('decoder_sparse_step', 1, CONFIG_CAPS.decoder_sparse_step);
  const norm = r.norm_topk_prob ?? defaults.norm_topk_prob;
  if (typeof norm !== 'boolean') fail(file, 'norm_topk_prob', 'must be true or false');
  const only = r.mlp_only_layers ?? defaults.mlp_only_layers;
  if (!Array.isArray(only)) fail(file, 'mlp_only_layers', `must be an array of layer indices, got ${JSON.stringify(only)}`);
  for (const l of only) {
    if (typeof l !== 'number' || !Number.isInteger(l) || l < 0 || l >= layers) fail(file, 'mlp_only_layers', `${JSON.stringify(l)} is not a layer in [0, ${layers - 1}]`);
  }
  const coef = r.router_aux_loss_coef ?? defaults.router_aux_loss_coef;
  if (typeof coef !== 'number' || !Number.isFinite(coef) || coef < 0) fail(file, 'router_aux_loss_coef', `must be a number >= 0, got ${JSON.stringify(coef)}`);
  return {
    num_experts: experts, num_experts_per_tok: perTok, moe_intermediate_size: width, norm_topk_prob: norm, decoder_sparse_step: step,
    mlp_only_layers: [...(only as number[])], router_aux_loss_coef: coef,
  };
}

/** The keys of a config.json the engine does not use; an already-validated config's own passthrough is kept. */
function passthroughOf(r: Raw): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const own = r.passthrough;
  if (typeof own === 'object' && own !== null && !Array.isArray(own)) Object.assign(out, own);
  for (const [key, value] of Object.entries(r)) if (!ENGINE_KEYS.has(key)) out[key] = value;
  return out;
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
  const maxPositions = positiveInt(r, file, 'max_position_embeddings', 2048);
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
    max_position_embeddings: maxPositions,
    tie_word_embeddings: tie,
    rope_scaling: validateRopeScaling(r, file, headDim, maxPositions),
  };
  const passthrough = passthroughOf(r);
  if (Object.keys(passthrough).length > 0) config.passthrough = passthrough;
  if (fam.moe_defaults) Object.assign(config, validateMoe(r, file, config.num_hidden_layers, fam.moe_defaults));
  if (fam.scale_defaults) {
    for (const [field, fallback] of Object.entries(fam.scale_defaults(hidden))) {
      config[field as keyof ScaleFields] = positiveNumber(r, file, field, fallback);
    }
  }
  return config;
}

/** The text of a regular file of at most `maxBytes` (regular-file.ts), as a CheckpointError when refused. */
export function readBoundedText(file: string, maxBytes: number): string {
  try {
    return readRegularFile(file, maxBytes).toString('utf8');
  } catch (e) {
    if (e instanceof FileRefused && e.code === 'not_found') throw new CheckpointError(`${file}: cannot read (ENOENT)`);
    throw new CheckpointError((e as Error).message);
  }
}

/** Reads DIR/config.json. */
export function readModelConfig(dir: string): ModelConfig {
  const file = join(dir, 'config.json');
  const text = readBoundedText(file, MAX_CONFIG_BYTES);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return validateModelConfig(raw, file);
}

/**
 * The config.json the engine writes on save: the source's keys the engine does not use
 * (passthrough: sparse_config, auto_map, ...), then the HF fields it does, `architectures`,
 * `hidden_act` and `torch_dtype` (the engine writes F32).
 */
export function configToJson(config: ModelConfig): Record<string, unknown> {
  const { passthrough, ...fields } = config;
  const out: Record<string, unknown> = {
    ...passthrough, architectures: [family(config.model_type).architecture], hidden_act: 'silu', torch_dtype: 'float32', ...fields,
  };
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

/**
 * The block mask a checkpoint's InfLLM-V2 `sparse_config` (MiniCPM 4.1: block_size 64, kernel_size
 * 32, kernel_stride 16, init_blocks 1, window_size 2048, topk 64, dense_len 8192) describes, as the
 * engine's infllm_v2 selector takes it: topk counts the init and window blocks, which the MaskSpec
 * holds apart (global_blocks, window_blocks + the own block, topk_blocks extra). Null without a
 * sparse_config; one-line errors naming sparse_config.<field> for what the selector cannot run.
 */
export function infllmV2MaskOf(config: ModelConfig, file = 'config.json'): MaskSpec | null {
  const sc = config.passthrough?.sparse_config;
  if (sc === undefined || sc === null) return null;
  if (typeof sc !== 'object' || Array.isArray(sc)) fail(file, 'sparse_config', 'must be an object');
  const r = sc as Raw;
  const int = (key: string, min: number): number => {
    const v = r[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(file, `sparse_config.${key}`, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return v;
  };
  const block = int('block_size', 16);
  if ((block & (block - 1)) !== 0 || block > 256) fail(file, 'sparse_config.block_size', `must be a power of two in [16, 256], got ${block}`);
  const kernel = int('kernel_size', 1), stride = int('kernel_stride', 1);
  if (kernel !== block / 2) fail(file, 'sparse_config.kernel_size', `must be block_size / 2 (${block / 2}) for the infllm_v2 selector, got ${kernel}`);
  if (stride !== block / 4) fail(file, 'sparse_config.kernel_stride', `must be block_size / 4 (${block / 4}) for the infllm_v2 selector, got ${stride}`);
  const init = int('init_blocks', 0), window = int('window_size', block), topk = int('topk', 1);
  if (window % block !== 0) fail(file, 'sparse_config.window_size', `must be a multiple of block_size (${block}), got ${window}`);
  const local = window / block;
  if (topk < init + local) fail(file, 'sparse_config.topk', `must count at least the init and window blocks (${init + local}), got ${topk}`);
  const denseLen = r.dense_len === undefined ? 0 : int('dense_len', 0);
  return {
    block_size: block, global_blocks: init, global_rows: 0, window_blocks: local - 1, random_blocks: 0, random_seed: 0,
    topk_blocks: topk - init - local, selector: 'infllm_v2', dense_below: denseLen, share_gqa_group: true,
  };
}
