// Model families as data: what each Hugging Face model_type adds to the Llama decoder, and the
// defaults its config class gives the fields config.json may omit. config.ts reads config.json
// through this table; the engine receives the resolved features (withFeatures) and reads
// model_type only as a label. Adding a family: an entry here (and, for a new feature, the C++
// model's ModelConfig field and the branch that reads it).
import type { ModelConfig } from '../engine-api';

export type MlpKind = 'swiglu';

/** What the C++ model asks (native/src/model.h ModelConfig), resolved from a config. */
export interface ModelFeatures {
  /** RMSNorm over each head of q and k before RoPE. */
  qk_norm: boolean;
  mlp: MlpKind;
  /** Multiplies the embeddings. */
  embedding_scale: number;
  /** Multiplies each residual branch. */
  residual_scale: number;
  /** Divides the final hidden state before the LM head. */
  logit_divisor: number;
}

/** MiniCPM's μP scaling fields of config.json. */
export type ScaleFields = Required<Pick<ModelConfig, 'scale_emb' | 'scale_depth' | 'dim_model_base'>>;

interface Family {
  /** config.json `architectures`, written on save. */
  architecture: string;
  /** When config.json omits tie_word_embeddings. */
  tie_word_embeddings: boolean;
  qk_norm: boolean;
  mlp: MlpKind;
  /** μP scaling: the scale fields' defaults (read from config.json when present). */
  scale_defaults?: (hidden_size: number) => ScaleFields;
  /** Mixture of experts: the MoE fields' defaults (read from config.json when present). */
  moe_defaults?: MoeFields;
}

/** The mixture-of-experts fields of config.json (transformers' Qwen3MoeConfig). */
export type MoeFields = Required<Pick<ModelConfig,
  'num_experts' | 'num_experts_per_tok' | 'moe_intermediate_size' | 'norm_topk_prob' | 'decoder_sparse_step' | 'mlp_only_layers' | 'router_aux_loss_coef'>>;

/** Qwen3MoeConfig's defaults for the fields a config.json omits. */
export const QWEN3_MOE_DEFAULTS: MoeFields = {
  num_experts: 128, num_experts_per_tok: 8, moe_intermediate_size: 768, norm_topk_prob: false, decoder_sparse_step: 1,
  mlp_only_layers: [], router_aux_loss_coef: 0.001,
};

export const FAMILIES = {
  llama: { architecture: 'LlamaForCausalLM', tie_word_embeddings: false, qk_norm: false, mlp: 'swiglu' },
  qwen3: { architecture: 'Qwen3ForCausalLM', tie_word_embeddings: false, qk_norm: true, mlp: 'swiglu' },
  qwen3_moe: {
    architecture: 'Qwen3MoeForCausalLM', tie_word_embeddings: false, qk_norm: true, mlp: 'swiglu', moe_defaults: QWEN3_MOE_DEFAULTS,
  },
  minicpm: {
    architecture: 'MiniCPMForCausalLM', tie_word_embeddings: true, qk_norm: false, mlp: 'swiglu',
    scale_defaults: (hidden) => ({ scale_emb: 1, scale_depth: 1, dim_model_base: hidden }),
  },
} as const satisfies Record<string, Family>;

export type ModelType = keyof typeof FAMILIES;
export const MODEL_TYPES = Object.keys(FAMILIES) as ModelType[];

export function family(type: ModelType): Family {
  return FAMILIES[type];
}

// The C++ model computes in float: rounding each step to float here gives the very values it used
// to compute itself (double rounding is exact for +, /, sqrt of floats).
const f = Math.fround;

/**
 * Whether layer l (0-based) of a validated config is a mixture-of-experts layer (transformers'
 * rule, native/src/model.h is_moe_layer): num_experts > 0, l not in mlp_only_layers, and
 * (l + 1) % decoder_sparse_step == 0. The others keep a dense MLP of intermediate_size.
 */
export function isMoeLayer(c: ModelConfig, l: number): boolean {
  if (!c.num_experts) return false;
  if ((c.mlp_only_layers ?? []).includes(l)) return false;
  return (l + 1) % (c.decoder_sparse_step ?? 1) === 0;
}

/** The features of a validated config. */
export function modelFeatures(c: ModelConfig): ModelFeatures {
  const fam = family(c.model_type);
  const scaled = fam.scale_defaults !== undefined;
  return {
    qk_norm: fam.qk_norm,
    mlp: fam.mlp,
    embedding_scale: scaled ? f(c.scale_emb!) : 1,
    residual_scale: scaled ? f(f(c.scale_depth!) / f(Math.sqrt(c.num_hidden_layers))) : 1,
    logit_divisor: scaled ? f(f(c.hidden_size) / f(c.dim_model_base!)) : 1,
  };
}

/** A validated config as the engine addon receives it: the config plus its family's features. */
export function withFeatures(c: ModelConfig): ModelConfig & ModelFeatures {
  return { ...c, ...modelFeatures(c) };
}
