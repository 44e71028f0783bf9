// Pipeline schema, version 1: the one file format (semantic pipeline + optional layout).
//
// Design choices:
// - Nodes are operations on a model state; links fix the order. A link from a Dataset node
//   carries data (it must end at a Train or Gate node); every other link carries the model state.
// - Layer ranges are 1-based and inclusive, as the seed plan writes them (docs/method.md) ("layers 4-6 of 12").
//   The engine converts to 0-based Hugging Face indices (model.layers.3 ... model.layers.5).
// - Every hyper-parameter is explicit in the file so a run is reproducible from it alone.
// - Defaults are the seed plan's (docs/method.md); they live in `defaultParams` and nowhere else.
//
// Owned by core/: no Node, DOM or Electron imports here.

export const PIPELINE_VERSION = 1;

export type NodeKind = 'model' | 'dataset' | 'freeze' | 'replace' | 'distill' | 'unfreeze' | 'train' | 'gate' | 'export';
export const NODE_KINDS: readonly NodeKind[] = ['model', 'dataset', 'freeze', 'replace', 'distill', 'unfreeze', 'train', 'gate', 'export'];

/** Parameter kinds a Freeze/Unfreeze node can select. */
export type ParamKind = 'q' | 'k' | 'v' | 'o' | 'mlp' | 'norms' | 'embeddings' | 'selector' | 'router' | 'experts';
export const PARAM_KINDS: readonly ParamKind[] = ['q', 'k', 'v', 'o', 'mlp', 'norms', 'embeddings', 'selector', 'router', 'experts'];

/** Inclusive 1-based layer range [first, last]. */
export type LayerRange = [number, number];

/** Built-in models a Model node names as 'builtin:<name>' (models/<name> in the studio's folder). */
export const BUILTIN_MODELS: readonly string[] = ['demo', 'demo-moe'];

export interface ModelParams {
  /** 'builtin:demo' (the 12-layer demo), 'builtin:demo-moe' (its mixture-of-experts upcycle), else a Hugging Face directory path. */
  source: string;
  /** Depth of the model (num_hidden_layers in config.json); layer ranges are checked against it. */
  num_layers: number;
  /** sha256 of the weights (hex), filled when the pipeline is exported; '' when unknown. */
  content_hash: string;
}

export interface DatasetParams {
  /** 'builtin:brown' for the Brown Corpus, else a .txt/.jsonl file or a folder of them. */
  source: string;
  /** How to read `source`: by extension ('auto'), plain text, or JSON lines. */
  format: 'auto' | 'txt' | 'jsonl';
  /** JSONL only: the field that holds the text. */
  text_field: string;
  /** Share of documents held out for validation (0 < x < 0.5). */
  validation_fraction: number;
  /** Seed of the document split and the batch shuffle. */
  seed: number;
  /** sha256 of the text (hex), filled when exported; '' when unknown. */
  content_hash: string;
}

export interface FreezeParams {
  /** 'all' or an inclusive 1-based range. Embeddings and final norm count as outside any layer. */
  layers: 'all' | LayerRange;
  /** Parameter kinds to freeze. */
  kinds: ParamKind[];
}

export type SelectorKind = 'none' | 'pooled' | 'indexer' | 'infllm_v2';

export interface MaskSpec {
  /** Tokens per block; a power of two in [16, 256]. */
  block_size: number;
  /** First N key blocks every query block sees ("attention sinks"/global tokens). */
  global_blocks: number;
  /** First N query blocks see every earlier key block (BigBird global rows). */
  global_rows: number;
  /** Key blocks before the diagonal that each query block sees (the diagonal is always kept). */
  window_blocks: number;
  /** Extra causal key blocks per query block drawn at random (seeded per layer and head). */
  random_blocks: number;
  /** Seed of the random blocks. */
  random_seed: number;
  /** Key blocks per query block chosen by the block selector (0 = no dynamic blocks). */
  topk_blocks: number;
  /**
   * How top-k blocks are scored: none, parameter-free pooled keys per query block, a trainable
   * indexer, or infllm_v2 (InfLLM-V2 as published with MiniCPM 4.1: compressed keys, per query
   * token, top-k per KV group; global/window blocks forced in, top-k blocks extra).
   */
  selector: SelectorKind;
  /** Sequences shorter than this many tokens use dense attention (short/long switch). */
  dense_below: number;
  /** One mask per GQA group (true) or per query head (false). */
  share_gqa_group: boolean;
  /** Optional: also keep the block pairs the base model attends to (see SeedFromTeacher). */
  seed_from_teacher?: SeedFromTeacher | null;
  /**
   * Optional, `indexer` selector only: the indexer's own optimiser steps that train on the warm-up
   * KL over every causal key block; after them its KL runs over the blocks the mask keeps
   * (DeepSeek DSA's second phase). Absent or null: the warm-up KL throughout.
   */
  indexer_warmup_steps?: number | null;
}

/**
 * Mask seeded from the base model's attention: at the start of the stage that applies the mask,
 * the dense teacher runs on calibration batches of the stage's data and each layer keeps the
 * causal block pairs whose block-pooled attention mass (docs/metrics.md, "Attention profile")
 * exceeds `threshold` for some head its mask serves. The run records what it chose
 * (`blocks`, `pairs`) in the mask it keeps, so retries, resumes and exports reuse the pairs.
 */
export interface SeedFromTeacher {
  /** Pooled mass share above which a pair is kept, in (0, 1). */
  threshold: number;
  /** Recorded by the run: blocks per side of the seeded map (the longest sequence's blocks). */
  blocks?: number;
  /** Recorded by the run: kept pairs as flat indices mask_head * blocks^2 + i * blocks + j. */
  pairs?: number[];
}

export interface ReplaceParams {
  /** Layers that become block-sparse. */
  layers: LayerRange;
  mask: MaskSpec;
}

export interface DistillParams {
  /** Weight of the next-token cross-entropy (task loss). */
  task_weight: number;
  /** Weight of attention-distribution KL(student || teacher), mean over layers/heads/queries. */
  attn_kl_weight: number;
  /** Weight of logit KL(teacher || student). */
  logit_kl_weight: number;
  /** Weight of the final hidden-state MSE. */
  hidden_mse_weight: number;
  /** Softmax temperature of the logit KL. */
  temperature: number;
}

export interface UnfreezeParams {
  layers: LayerRange;
  kinds: ParamKind[];
  /** Only layers already replaced by block-sparse attention (the seed plan's rule). */
  replaced_only: boolean;
}

export type LrSchedule = 'constant' | 'cosine' | 'warmup_cosine';
export type Precision = 'fp32' | 'bf16' | 'fp16';

export interface CurriculumStep {
  /** This sequence length applies from this step (0-based) on. */
  from_step: number;
  /** Tokens per sequence; a multiple of the block size is preferred. */
  seq_len: number;
}

export interface TrainParams {
  /** Optimiser steps in this stage (>= 1). */
  steps: number;
  /** Sequences per step. */
  batch_size: number;
  /** Sequence-length curriculum, sorted by from_step, first entry from_step 0. */
  curriculum: CurriculumStep[];
  /** Peak learning rate of the trainable parameters (> 0); of every kind without its own below. */
  lr: number;
  /**
   * Optional peak learning rates per kind of parameter, following the same schedule and
   * multipliers as `lr` (absent: `lr`). The seed plan trains the scorer at 1e-4 and Q/K/V at
   * 1e-5-class rates. lr_selector: block selectors (a trainable indexer); lr_attention: the
   * attention projections q, k, v, o.
   */
  lr_selector?: number;
  lr_attention?: number;
  schedule: LrSchedule;
  warmup_steps: number;
  weight_decay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Global gradient-norm clip (0 = off). */
  grad_clip: number;
  precision: Precision;
  /** Evaluate on the validation split every N steps (0 = only at the end). */
  eval_every: number;
  /** Validation batches per evaluation. */
  eval_batches: number;
  /** Plateau rule: evaluations without improvement before acting (0 = off). */
  plateau_patience: number;
  plateau_action: 'decay_lr' | 'step_back_sparsity';
  /** LR multiplier applied by the plateau rule. */
  plateau_factor: number;
  /**
   * Mixture-of-experts models only: the load-balancing term added to this stage's loss
   * (docs/metrics.md "Mixture of experts"): 'seed' = weight * (Var(usage) + mean |usage - 1/E|),
   * 'switch' = weight * transformers' auxiliary loss. Absent = 'none' (files before MoE support).
   */
  load_balance?: LoadBalanceKind;
  /** Weight of the load-balancing term; absent = its default (seed 0.01, switch the config's router_aux_loss_coef). */
  load_balance_weight?: number;
  /**
   * Weight of the attention-entropy term (docs/metrics.md attn_entropy): this weight times the mean
   * entropy of the model's own attention over every dense and block-sparse layer is added to the
   * loss, so training concentrates attention. Absent or 0 = off. The cpu backend only.
   */
  attn_entropy_weight?: number;
}

export type LoadBalanceKind = 'none' | 'seed' | 'switch';
export const LOAD_BALANCE_KINDS: readonly LoadBalanceKind[] = ['none', 'seed', 'switch'];

export type GateMetric = 'attn_kl' | 'attn_recall' | 'out_cos' | 'logit_kl' | 'ppl_ratio' | 'density' | 'loss_increase' | 'flops_saved' | 'speedup'
  | 'expert_usage_min' | 'expert_usage_max' | 'aux_loss';
export const GATE_METRICS: readonly GateMetric[] = ['attn_kl', 'attn_recall', 'out_cos', 'logit_kl', 'ppl_ratio', 'density', 'loss_increase', 'flops_saved', 'speedup',
  'expert_usage_min', 'expert_usage_max', 'aux_loss'];

export interface GateCheck {
  metric: GateMetric;
  op: '<' | '<=' | '>' | '>=';
  threshold: number;
}

export type OnFailPolicy = 'rollback_sparsity' | 'decay_lr_retry' | 'refreeze' | 'stop' | 'continue';

export interface GateParams {
  checks: GateCheck[];
  on_fail: OnFailPolicy;
  /**
   * Retries for decay_lr_retry / refreeze before the run stops; for rollback_sparsity, the
   * retries with denser masks before the stage returns to its previous masks.
   */
  max_retries: number;
  /** LR multiplier for decay_lr_retry. */
  lr_factor: number;
  /** Validation batches the gate evaluates. */
  eval_batches: number;
}

export interface ExportParams {
  /** Output directory (relative paths resolve inside the run directory). */
  path: string;
  /** Also write the masks as FlexAttention BlockMask arrays. */
  flex_masks: boolean;
  /** Sequence length the exported masks are built for. */
  mask_seq_len: number;
}

export interface ParamsByKind {
  model: ModelParams;
  dataset: DatasetParams;
  freeze: FreezeParams;
  replace: ReplaceParams;
  distill: DistillParams;
  unfreeze: UnfreezeParams;
  train: TrainParams;
  gate: GateParams;
  export: ExportParams;
}

export type PipelineNode = { [K in NodeKind]: { id: string; kind: K; label?: string; params: ParamsByKind[K] } }[NodeKind];
export type NodeOf<K extends NodeKind> = Extract<PipelineNode, { kind: K }>;

export interface PipelineLink {
  from: string;
  to: string;
}

export interface PipelineLayout {
  nodes: Record<string, { x: number; y: number }>;
  viewport?: { x: number; y: number; zoom: number };
}

export interface Pipeline {
  /** JSON Schema of the file, for editors (schema/pipeline.schema.json); the runner ignores it. */
  $schema?: string;
  version: number;
  info: { name: string; author: string; description: string };
  /** Seed of initialisation, data order and random mask blocks. */
  seed: number;
  /** Preferred backend; the CLI's --backend overrides it. */
  backend: 'auto' | 'cpu' | 'cuda';
  nodes: PipelineNode[];
  links: PipelineLink[];
  /** Editor-only; the runner ignores it. */
  layout?: PipelineLayout;
}
