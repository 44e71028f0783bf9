// The engine's typed surface, as the runtime (host/) sees it. native/index.ts
// implements it on top of the addon (native/addon.ts); nothing outside native/ touches the addon.
import type { MaskSpec, ParamKind } from '../core/schema';
import type { ModelType } from './checkpoint/families';

/** The subset of a Hugging Face config.json the engine reads (snake_case as in the file). */
export interface ModelConfig {
  /** The family (native/checkpoint/families.ts); only a label to the engine. */
  model_type: ModelType;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  rms_norm_eps: number;
  rope_theta: number;
  max_position_embeddings: number;
  tie_word_embeddings: boolean;
  /** μP scaling (families.ts scale_defaults: minicpm) */
  scale_emb?: number;
  scale_depth?: number;
  dim_model_base?: number;
  rope_scaling?: Record<string, unknown> | null;
  // Mixture of experts (qwen3_moe; families.ts QWEN3_MOE_DEFAULTS fills what config.json omits;
  // absent on dense families). A layer l is MoE when num_experts > 0, l is not in mlp_only_layers
  // and (l + 1) % decoder_sparse_step == 0 (families.ts isMoeLayer); the others keep a dense MLP.
  /** Experts per MoE layer (0: every layer dense). */
  num_experts?: number;
  /** Experts each token runs (top-k of the router's softmax). */
  num_experts_per_tok?: number;
  /** Each expert's SwiGLU width. */
  moe_intermediate_size?: number;
  /** Renormalise the chosen experts' probabilities to sum 1. */
  norm_topk_prob?: boolean;
  decoder_sparse_step?: number;
  /** 0-based layers that keep the dense MLP. */
  mlp_only_layers?: number[];
  /** transformers' weight of the Switch-style auxiliary loss; the default weight of load_balance 'switch'. */
  router_aux_loss_coef?: number;
  /**
   * Every other key of the source config.json (sparse_config, auto_map, quantization or generation
   * fields, ...), read once at load and written back unchanged on save; the engine never reads it.
   */
  passthrough?: Record<string, unknown>;
}

/** B sequences of T+1 token ids, row-major: inputs are [:, :T], targets [:, 1:]. */
export interface Batch { tokens: Int32Array; batch: number; seq: number }

export interface DistillWeights { task: number; attn_kl: number; logit_kl: number; hidden_mse: number; temperature: number }

export interface StepOptions {
  lr: number;
  weight_decay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Global-norm clip; 0 = off. */
  grad_clip: number;
  /** Per parameter kind, a multiplier of lr (absent kinds: 1); 0 leaves that kind's tensors unchanged. */
  lr_scale?: Partial<Record<ParamKind, number>>;
  /** null: plain next-token training, no teacher (pretraining). */
  distill: DistillWeights | null;
  /**
   * Mixture-of-experts models only (refused on a dense model): the load-balancing term added to
   * the loss, its gradient reaching every MoE layer's router. Absent or null: none.
   * Definitions: docs/metrics.md "Mixture of experts".
   */
  load_balance?: LoadBalance | null;
  /**
   * > 0: adds this weight times the mean entropy (nats) of the model's own attention to the loss,
   * its gradient reaching q and k of every dense and block-sparse layer (docs/metrics.md
   * attn_entropy). Absent, null or 0: off. The cpu backend only.
   */
  attn_entropy_weight?: number | null;
}

/**
 * 'seed': weight * mean over MoE layers of (Var(u) + mean_e |u_e - 1/E|), u_e the soft usage (the
 * mean router probability of expert e over the batch's tokens); weight defaults to 0.01.
 * 'switch': weight * transformers' load_balancing_loss_func (the aux_loss below); weight defaults
 * to the config's router_aux_loss_coef.
 */
export interface LoadBalance { kind: 'seed' | 'switch'; weight?: number }

/**
 * Routing statistics of a mixture-of-experts model (absent on dense models), keyed by the 0-based
 * index of each MoE layer. Definitions: docs/metrics.md "Mixture of experts".
 */
export interface MoeMetrics {
  /** transformers' load_balancing_loss_func over every MoE layer's router logits together (unweighted). */
  aux_loss?: number;
  /** Per MoE layer, per expert: routed token-slots / (tokens * num_experts_per_tok); sums to 1. */
  expert_usage?: Record<string, number[]>;
  /** Per MoE layer: mean over tokens of the entropy (nats) of the router's softmax over every expert. */
  routing_entropy?: Record<string, number>;
}

export interface StepResult extends MoeMetrics {
  /** The total: the weighted task and distillation losses plus load_balance_loss and attn_entropy_weight * attn_entropy. */
  loss: number; task_loss: number; attn_kl_loss: number; logit_kl_loss: number; hidden_mse_loss: number;
  /** MoE models: the step's load-balancing term as added to loss (weight included; 0 without one). */
  load_balance_loss?: number;
  /** Global gradient norm before clipping. */
  grad_norm: number;
  /** Mean density over block-sparse layers (1 when none). */
  density: number;
  /** fp16 only: a non-finite gradient skipped the update (the loss scale was halved). */
  skipped?: boolean;
  /** The loss scale the gradients were computed at (1 unless fp16). */
  loss_scale?: number;
  /** Steps that trained an indexer only: its KL (mean over those layers; inside `loss`). */
  indexer_loss?: number;
  /** With indexer_loss, per 0-based layer: 1 warm-up KL, 2 selected-set KL, null no trained indexer. */
  indexer_phase?: (1 | 2 | null)[];
  /** Steps with attn_entropy_weight > 0 only: the mean entropy (nats) of the model's attention, the term's value before its weight. */
  attn_entropy?: number;
}

export type BackendName = 'cpu' | 'cuda';
export type Precision = 'fp32' | 'bf16' | 'fp16';
export const PRECISIONS: readonly Precision[] = ['fp32', 'bf16', 'fp16'];
/** Where a model runs, and its compute precision at first (EngineModel.setPrecision changes it). The CPU computes in fp32 whatever the precision asked. */
export interface BackendChoice { backend?: BackendName; precision?: Precision }
export interface BackendInfo { name: BackendName; device: string; precision: Precision; lossScale: number }

export interface EvalResult extends MoeMetrics {
  /** Mean next-token cross-entropy (nats) of the student and of the dense teacher. */
  loss: number; loss_teacher: number;
  /** Per 0-based layer; null for dense layers. Definitions: docs/metrics.md. */
  attn_kl: (number | null)[]; attn_recall: (number | null)[]; density: (number | null)[];
  /** Per layer, the share of causal token-pair dot products its masks skip; null for dense layers. */
  flops_saved?: (number | null)[];
  logit_kl: number; out_cos: number; hidden_mse: number;
}

/**
 * Block pairs a mask keeps after its static blocks, chosen by the host (host/runner/seed-mask.ts):
 * pairs (mask heads, blocks, blocks) 0/1 for the first `blocks` query blocks; read for causal pairs.
 */
export interface SeededPairs { blocks: number; pairs: Uint8Array }

/** A MaskSpec as the engine takes it: the pipeline's fields plus host-computed seeded pairs. */
export type EngineMaskSpec = MaskSpec & { seeded?: SeededPairs };

/** Best seconds of the student's prefill (forward only) with its masks and with every layer dense. */
export interface PrefillTimes { dense_s: number; sparse_s: number }

/** Options of EngineModel.attentionProfile. */
export interface AttentionProfileOptions {
  /** Sequences per teacher forward (the tokens may hold more: they run in chunks). */
  batch: number;
  /** Block size in tokens of the pooled map and the masks. */
  block: number;
  /** One mask per KV head (a GQA group shares its blocks, their masses summed) or per query head. */
  shareGqa: boolean;
  /** Densities (ascending, in (0, 1]) at which the oracle's masks and their floors are measured. */
  densities: number[];
}

/** The dense teacher's attention profile; definitions in docs/metrics.md ("Attention profile"). */
export interface AttentionProfile {
  block: number;
  /** Blocks per sequence: ceil(seq / block). */
  n_blocks: number;
  /** Heads that own a mask: num_kv_heads with shareGqa, else num_heads. */
  mask_heads: number;
  layers: {
    /** (H, n_blocks, n_blocks) row-major: mean over sequences and the rows of query block i of the teacher's attention mass in key block j (0 for j > i). */
    mass: Float64Array;
    /** Per asked density: the oracle mask's actual density, its attention-KL floor (nats) and recall. */
    density: number[]; floor: number[]; recall: number[];
  }[];
}

export interface ParamSelection { layers: number[] | 'all'; kinds: ParamKind[] }

export interface EngineModel {
  readonly config: ModelConfig;
  readonly numParams: number;
  /** Where the model runs. */
  readonly backend: BackendInfo;
  /**
   * The compute precision of the calls that follow (a pipeline stage's). Weights and optimiser
   * state stay fp32, so it may change between any two steps; backend.precision reports it. The
   * CPU computes in fp32 whatever is asked.
   */
  setPrecision(precision: Precision): void;
  /** 0-based layer; null restores dense attention. */
  setAttention(layer: number, mask: EngineMaskSpec | null): void;
  /** Freeze (false) or unfreeze (true). Unfreezing copies the teacher's tensors first. */
  setTrainable(selection: ParamSelection, trainable: boolean): void;
  trainStep(batch: Batch, options: StepOptions): Promise<StepResult>;
  evaluate(batch: Batch): Promise<EvalResult>;
  /** The dense teacher's attention mass map and the oracle masks' attention-KL floors over `batch.batch` sequences. */
  attentionProfile?(batch: Batch, options: AttentionProfileOptions): Promise<AttentionProfile>;
  /**
   * Times the student's prefill (forward only) on `batch`, `reps` times with its masks and `reps`
   * times with every layer dense, interleaved in this process; the best of each.
   */
  timePrefill?(batch: Batch, reps: number): Promise<PrefillTimes>;
  /** Hugging Face directory: config.json + model.safetensors. */
  save(dir: string): Promise<void>;
  /** Optimiser moments and step count, for --resume. */
  saveOptimizer(file: string): Promise<void>;
  loadOptimizer(file: string): Promise<void>;
  /**
   * Overwrite the student's tensors with those of a save() directory; the teacher keeps the base
   * (tensors equal to it stay shared). The runtime uses it for stage rollback
   * and --resume, so the teacher stays the original base. (Optional: without it the runtime
   * recomputes the earlier stages instead, which is exact but slow.)
   */
  loadTrainable?(dir: string): Promise<void>;
  dispose(): void;
}

export interface EngineApi {
  loadModel(dir: string, options?: { threads?: number } & BackendChoice): Promise<EngineModel>;
  createModel(config: ModelConfig, options: { seed: number; threads?: number } & BackendChoice): EngineModel;
  /** cuda.available: the CUDA module loads and found a usable device (runs can use backend cuda). */
  info(): { version: string; threads: number; simd: string; cuda: { compiled: boolean; available: boolean; device?: string; reason?: string } };
}
