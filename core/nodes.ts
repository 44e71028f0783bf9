// The node-kind registry: one entry per NodeKind with its ports, defaults and per-field
// description. The renderer's palette and inspector and the validator all read this one table.
//
// Design choices:
// - Defaults are the seed plan's numbers (docs/method.md) (stage 1 of the progressive schedule where a node
//   belongs to a stage); templates copy and change them, code never hard-codes them elsewhere.
// - A field's spec is both a UI hint (label, unit, step, help) and a validation rule (type,
//   bounds, options): the inspector can never offer a value the validator rejects.
// - Ports are typed: 'model' carries the model state, 'data' carries batches from a Dataset.
//
// Owned by core/: no Node, DOM or Electron imports here.
import type { GateMetric, MaskSpec, NodeKind, ParamKind, ParamsByKind } from './schema';
import { GATE_METRICS, LOAD_BALANCE_KINDS, NODE_KINDS, PARAM_KINDS } from './schema';

export type PortType = 'model' | 'data';

/**
 * A kind's part in a stage: 'source' nodes start the graph and belong to no stage, an
 * 'operation' runs before its stage's training (or after the last stage), 'train' closes a
 * stage and 'gate' judges the stage of the Train node it follows.
 */
export type StageRole = 'source' | 'operation' | 'train' | 'gate';

/** What a field holds; the validator checks the type, the inspector picks its widget by it. */
export type FieldType =
  | 'number'        // finite float, bounded by min/max
  | 'integer'       // whole number, bounded by min/max
  | 'string'
  | 'boolean'
  | 'enum'          // one of `options`
  | 'layers'        // inclusive 1-based [first, last]
  | 'layers_or_all' // 'all' or [first, last]
  | 'kinds'         // non-empty ParamKind[] without repeats
  | 'mask'          // nested MaskSpec, described by MASK_FIELDS
  | 'curriculum'    // CurriculumStep[]
  | 'checks'        // GateCheck[]
  | 'model_source'  // 'builtin:demo' | 'init:<config.json>' | directory
  | 'dataset_source'// 'builtin:brown' | file or folder
  | 'hash';         // '' or 64 hex digits (sha256)

export interface FieldSpec {
  type: FieldType;
  label: string;
  /** One sentence for the inspector's tooltip. */
  help: string;
  unit?: string;
  min?: number;
  max?: number;
  /** true: the bound itself is not allowed (lr > 0, fractions in (0, 1)). */
  minExclusive?: boolean;
  maxExclusive?: boolean;
  /** Inspector spin step. */
  step?: number;
  options?: readonly string[];
  /** Integers only: must be a power of two. */
  powerOfTwo?: boolean;
  /** Strings only: may be empty. */
  allowEmpty?: boolean;
  /** The field may be left out of a file (fields added after version 1; absent = the help's default). */
  optional?: boolean;
}

export type FieldSpecs<P> = { [K in keyof P]: FieldSpec };

export interface NodeSpec<K extends NodeKind = NodeKind> {
  kind: K;
  label: string;
  /** One line: what the node does to the model. */
  description: string;
  /** Input ports in the order the editor draws them. */
  inputs: readonly PortType[];
  /** Output port type; null for a terminal node. */
  output: PortType | null;
  /** Its part in a stage (core/order.ts stagesOf). */
  role: StageRole;
  defaults: ParamsByKind[K];
  fields: FieldSpecs<ParamsByKind[K]>;
}

/** Ranges of the gate metrics, used to reject thresholds no run could ever produce. */
export interface MetricSpec {
  label: string;
  help: string;
  min: number;
  max: number;
  /** Which direction is good, so the inspector can suggest the usual operator. */
  better: 'lower' | 'higher';
}

export const GATE_METRIC_SPECS: Record<GateMetric, MetricSpec> = {
  attn_kl: { label: 'Attention KL', help: 'KL(student || teacher) of attention rows, mean over replaced layers, heads and queries.', min: 0, max: Infinity, better: 'lower' },
  attn_recall: { label: 'Attention recall', help: "Share of the teacher's attention mass inside the student's mask.", min: 0, max: 1, better: 'higher' },
  out_cos: { label: 'Output cosine', help: 'Mean cosine of final hidden states, student vs teacher.', min: -1, max: 1, better: 'higher' },
  logit_kl: { label: 'Logit KL', help: 'KL(teacher || student) over next-token distributions.', min: 0, max: Infinity, better: 'lower' },
  ppl_ratio: { label: 'Perplexity ratio', help: 'ppl_teacher / ppl_student; 0.95 keeps 95% of the base quality.', min: 0, max: Infinity, better: 'higher' },
  density: { label: 'Density', help: 'Kept causal block pairs / all causal block pairs; 0.6 means attention compute down 40%.', min: 0, max: 1, better: 'lower' },
  loss_increase: { label: 'Loss increase', help: 'Relative change of validation loss over the stage: 0.05 = 5% worse.', min: -1, max: Infinity, better: 'lower' },
  flops_saved: { label: 'Attention FLOPs saved', help: "Whole model: share of causal attention token-pair dot products the masks skip (dense layers skip none).", min: 0, max: 1, better: 'higher' },
  speedup: { label: 'Measured speed-up', help: 'Dense / sparse prefill time of the student at the stage\'s longest sequence, timed one after the other in the same run.', min: 0, max: Infinity, better: 'higher' },
  expert_usage_min: { label: 'Least-used expert', help: 'Mixture of experts: lowest expert load over MoE layers, as E x usage share (1 = uniform, 0 = an unused expert).', min: 0, max: Infinity, better: 'higher' },
  expert_usage_max: { label: 'Most-used expert', help: 'Mixture of experts: highest expert load over MoE layers, as E x usage share (1 = uniform, E = one expert takes all).', min: 0, max: Infinity, better: 'lower' },
  aux_loss: { label: 'Load-balance aux loss', help: "Mixture of experts: transformers' auxiliary loss over all MoE layers, unweighted (top-k at uniform routing, up to E).", min: 0, max: Infinity, better: 'lower' },
};

/** Parameter kinds that live inside a decoder layer (embeddings live outside every layer). */
export const LAYER_PARAM_KINDS: readonly ParamKind[] = PARAM_KINDS.filter((k) => k !== 'embeddings');
/** Kinds only a mixture-of-experts model has (its routers and experts' MLPs). */
export const MOE_PARAM_KINDS: readonly ParamKind[] = ['router', 'experts'];
/** Base-model parameters of a dense model: everything but the block selector, which the conversion adds, and the MoE kinds. */
export const BASE_PARAM_KINDS: readonly ParamKind[] = PARAM_KINDS.filter((k) => k !== 'selector' && !MOE_PARAM_KINDS.includes(k));

/** Why a pipeline with the Train node's attention-entropy term cannot run on CUDA (the validator, the placement). */
export const ATTN_ENTROPY_CPU_ONLY = 'The attention-entropy term runs on the cpu backend only';

/**
 * Upper bounds of the numeric fields, sized for the largest real use with room to spare:
 * a 10M-step stage, 4096 sequences a step, 1M-token sequences (2^20), 10k evaluation batches.
 * Past them a value is a typo (1e15 steps, a 2^40 mask) that would only hang or exhaust a run.
 */
export const LIMITS = {
  /** steps, warmup_steps, eval_every, curriculum from_step. */
  steps: 10_000_000,
  /** batch_size, sequences per step. */
  batch: 4096,
  /** curriculum seq_len, export mask_seq_len, mask dense_below, in tokens. */
  seqLen: 1 << 20,
  /** Blocks of a mask (window, global, random, top-k): a 2^20 sequence holds 2^16 blocks of 16. */
  blocks: 1 << 16,
  /** eval_batches of Train and Gate. */
  evalBatches: 10_000,
  /** plateau_patience, in evaluations. */
  patience: 10_000,
  /** Gate max_retries. */
  retries: 100,
  /** Loss weights, temperature and gradient clip. */
  weight: 1e6,
  /**
   * Weight decay and Adam epsilon. The learning rate has no bound: a huge one costs nothing
   * but a diverged stage, which the runner's NaN guard stops (and tests rely on).
   */
  rate: 10,
  /** Entries of a curriculum or of a Gate's checks. */
  listEntries: 256,
} as const;

export const MASK_FIELDS: FieldSpecs<MaskSpec> = {
  block_size: { type: 'integer', label: 'Block size', unit: 'tokens', min: 16, max: 256, powerOfTwo: true, options: ['16', '32', '64', '128', '256'], help: 'Tokens per block; a power of two in [16, 256].' },
  global_blocks: { type: 'integer', label: 'Global blocks', unit: 'blocks', min: 0, max: LIMITS.blocks, step: 1, help: 'First N key blocks every query block sees (attention sinks).' },
  global_rows: { type: 'integer', label: 'Global rows', unit: 'blocks', min: 0, max: LIMITS.blocks, step: 1, help: 'First N query blocks see every earlier key block (BigBird global rows).' },
  window_blocks: { type: 'integer', label: 'Window', unit: 'blocks', min: 0, max: LIMITS.blocks, step: 1, help: 'Key blocks before the diagonal each query block sees; the diagonal is always kept.' },
  random_blocks: { type: 'integer', label: 'Random blocks', unit: 'blocks', min: 0, max: LIMITS.blocks, step: 1, help: 'Extra causal key blocks per query block drawn at random (seeded).' },
  random_seed: { type: 'integer', label: 'Random seed', min: 0, max: 4294967295, step: 1, help: 'Seed of the random blocks (per layer and head).' },
  topk_blocks: { type: 'integer', label: 'Top-k blocks', unit: 'blocks', min: 0, max: LIMITS.blocks, step: 1, help: 'Key blocks per query block picked by the block selector; 0 = none.' },
  selector: { type: 'enum', label: 'Selector', options: ['none', 'pooled', 'indexer', 'infllm_v2'], help: 'none; pooled = parameter-free mean-pooled keys per query block; indexer = trainable scorer (DSA); infllm_v2 = InfLLM-V2 as published (compressed keys, per query token, CPU only).' },
  dense_below: { type: 'integer', label: 'Dense below', unit: 'tokens', min: 0, max: LIMITS.seqLen, step: 64, help: 'Sequences shorter than this stay dense (short/long switch).' },
  share_gqa_group: { type: 'boolean', label: 'Share per GQA group', help: 'One mask per key/value group (true) or per query head (false).' },
};

/**
 * MaskSpec.indexer_warmup_steps, optional and only for the `indexer` selector (so not in
 * MASK_FIELDS, whose fields every mask has): validator bounds and inspector widget.
 */
export const INDEXER_WARMUP_FIELD: FieldSpec = {
  type: 'integer', label: 'Indexer warm-up', unit: 'steps', min: 0, max: LIMITS.steps, step: 1,
  help: "The indexer's own trained steps on the KL over every causal block; then its KL runs over the kept blocks only. Empty: warm-up throughout.",
};

const LAYERS_HELP = 'Inclusive 1-based layer range, as the seed plan writes it ("layers 4-6").';

export const NODE_SPECS: { [K in NodeKind]: NodeSpec<K> } = {
  model: {
    kind: 'model',
    label: 'Model',
    description: 'Loads the base model; it is also the frozen dense teacher.',
    inputs: [],
    output: 'model',
    role: 'source',
    defaults: { source: 'builtin:demo', num_layers: 12, content_hash: '' },
    fields: {
      source: { type: 'model_source', label: 'Source', help: "'builtin:demo', 'builtin:demo-moe', 'init:<config.json>' (random init, seeded by the pipeline seed) or a Hugging Face directory." },
      num_layers: { type: 'integer', label: 'Layers', min: 1, max: 1024, step: 1, help: 'num_hidden_layers of the model; layer ranges are checked against it.' },
      content_hash: { type: 'hash', label: 'Weights sha256', allowEmpty: true, help: 'Filled on export; empty when unknown.' },
    },
  },
  dataset: {
    kind: 'dataset',
    label: 'Dataset',
    description: 'Supplies training and validation batches to Train and Gate nodes.',
    inputs: [],
    output: 'data',
    role: 'source',
    defaults: { source: 'builtin:brown', format: 'auto', text_field: 'text', validation_fraction: 0.05, seed: 0, content_hash: '' },
    fields: {
      source: { type: 'dataset_source', label: 'Source', help: "'builtin:brown' or a .txt/.jsonl file or a folder of them." },
      format: { type: 'enum', label: 'Format', options: ['auto', 'txt', 'jsonl'], help: 'How to read the source; auto goes by file extension.' },
      text_field: { type: 'string', label: 'Text field', help: 'JSONL only: the field that holds the text.' },
      validation_fraction: { type: 'number', label: 'Validation share', min: 0, max: 0.5, minExclusive: true, maxExclusive: true, step: 0.01, help: 'Share of documents held out for validation.' },
      seed: { type: 'integer', label: 'Seed', min: 0, max: 4294967295, step: 1, help: 'Seed of the document split and batch shuffle.' },
      content_hash: { type: 'hash', label: 'Text sha256', allowEmpty: true, help: 'Filled on export; empty when unknown.' },
    },
  },
  freeze: {
    kind: 'freeze',
    label: 'Freeze',
    description: 'Stops gradient updates for the chosen parameter kinds.',
    inputs: ['model'],
    output: 'model',
    role: 'operation',
    // Every base kind, MoE routers and experts included (a kind the model lacks freezes nothing),
    // so a default Freeze on a mixture-of-experts model freezes all of it.
    defaults: { layers: 'all', kinds: [...BASE_PARAM_KINDS, ...MOE_PARAM_KINDS] },
    fields: {
      layers: { type: 'layers_or_all', label: 'Layers', help: `'all' (also embeddings and final norm) or an ${LAYERS_HELP.toLowerCase()}` },
      kinds: { type: 'kinds', label: 'Parameters', options: PARAM_KINDS, help: 'Parameter kinds to freeze (router and experts exist on mixture-of-experts models only).' },
    },
  },
  replace: {
    kind: 'replace',
    label: 'Replace attention',
    description: 'Switches a layer range from dense to block-sparse attention with the given mask.',
    inputs: ['model'],
    output: 'model',
    role: 'operation',
    defaults: {
      layers: [4, 6],
      mask: { block_size: 64, global_blocks: 2, global_rows: 0, window_blocks: 0, random_blocks: 8, random_seed: 0, topk_blocks: 4, selector: 'indexer', dense_below: 0, share_gqa_group: true },
    },
    fields: {
      layers: { type: 'layers', label: 'Layers', help: LAYERS_HELP },
      mask: { type: 'mask', label: 'Mask', help: 'Which (query block, key block) pairs are computed.' },
    },
  },
  distill: {
    kind: 'distill',
    label: 'Distill',
    description: 'Sets the loss: task loss plus weighted distillation terms from the dense teacher.',
    inputs: ['model'],
    output: 'model',
    role: 'operation',
    defaults: { task_weight: 1, attn_kl_weight: 0.2, logit_kl_weight: 0.2, hidden_mse_weight: 0.1, temperature: 1 },
    fields: {
      task_weight: { type: 'number', label: 'Task weight', min: 0, max: LIMITS.weight, step: 0.05, help: 'Weight of next-token cross-entropy.' },
      attn_kl_weight: { type: 'number', label: 'Attention KL weight', min: 0, max: LIMITS.weight, step: 0.05, help: 'Weight of KL(student || teacher) of attention rows; the plan uses 0.1-0.3.' },
      logit_kl_weight: { type: 'number', label: 'Logit KL weight', min: 0, max: LIMITS.weight, step: 0.05, help: 'Weight of KL(teacher || student) of next-token distributions; the plan uses 0.1-0.3.' },
      hidden_mse_weight: { type: 'number', label: 'Hidden MSE weight', min: 0, max: LIMITS.weight, step: 0.05, help: 'Weight of the final hidden-state MSE.' },
      temperature: { type: 'number', label: 'Temperature', min: 0, minExclusive: true, max: LIMITS.weight, step: 0.1, help: 'Softmax temperature of the logit KL.' },
    },
  },
  unfreeze: {
    kind: 'unfreeze',
    label: 'Unfreeze',
    description: 'Lets the chosen parameter kinds of a layer range train again.',
    inputs: ['model'],
    output: 'model',
    role: 'operation',
    defaults: { layers: [4, 6], kinds: ['q', 'k', 'v'], replaced_only: true },
    fields: {
      layers: { type: 'layers', label: 'Layers', help: LAYERS_HELP },
      kinds: { type: 'kinds', label: 'Parameters', options: PARAM_KINDS.filter((k) => k !== 'embeddings'), help: 'Parameter kinds to train again (the plan: Q/K/V only).' },
      replaced_only: { type: 'boolean', label: 'Replaced layers only', help: 'Every layer in the range must already be block-sparse.' },
    },
  },
  train: {
    kind: 'train',
    label: 'Train',
    description: 'Runs one stage of optimiser steps on the trainable parameters.',
    inputs: ['model', 'data'],
    output: 'model',
    role: 'train',
    defaults: {
      steps: 1000, batch_size: 8, curriculum: [{ from_step: 0, seq_len: 1024 }, { from_step: 500, seq_len: 2048 }],
      lr: 1e-4, schedule: 'warmup_cosine', warmup_steps: 50, weight_decay: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8,
      grad_clip: 1, precision: 'fp32', eval_every: 100, eval_batches: 8,
      plateau_patience: 3, plateau_action: 'decay_lr', plateau_factor: 0.7,
    },
    fields: {
      steps: { type: 'integer', label: 'Steps', min: 1, max: LIMITS.steps, step: 10, help: 'Optimiser steps in this stage.' },
      batch_size: { type: 'integer', label: 'Batch size', unit: 'sequences', min: 1, max: LIMITS.batch, step: 1, help: 'Sequences per step.' },
      curriculum: { type: 'curriculum', label: 'Sequence length', help: 'Short sequences first: each entry applies from its step on; the first starts at step 0.' },
      lr: { type: 'number', label: 'Learning rate', min: 0, minExclusive: true, step: 1e-5, help: 'Peak learning rate (of every kind without its own below); the plan decays it about 20% per stage.' },
      lr_selector: { type: 'number', label: 'Selector LR', optional: true, min: 0, step: 1e-5, help: 'Optional peak learning rate of the block selectors (trainable indexer), same schedule; empty = the learning rate. The plan: 1e-4.' },
      lr_attention: { type: 'number', label: 'Attention LR', optional: true, min: 0, step: 1e-6, help: 'Optional peak learning rate of the attention projections q, k, v, o, same schedule; empty = the learning rate. The plan: 1e-5-class.' },
      schedule: { type: 'enum', label: 'Schedule', options: ['constant', 'cosine', 'warmup_cosine'], help: 'Learning-rate schedule within the stage.' },
      warmup_steps: { type: 'integer', label: 'Warm-up steps', min: 0, max: LIMITS.steps, step: 10, help: 'Linear warm-up (warmup_cosine only); at most the stage steps.' },
      weight_decay: { type: 'number', label: 'Weight decay', min: 0, max: LIMITS.rate, step: 0.01, help: 'AdamW decoupled weight decay.' },
      beta1: { type: 'number', label: 'Beta 1', min: 0, max: 1, maxExclusive: true, step: 0.01, help: 'AdamW first-moment decay.' },
      beta2: { type: 'number', label: 'Beta 2', min: 0, max: 1, maxExclusive: true, step: 0.001, help: 'AdamW second-moment decay.' },
      eps: { type: 'number', label: 'Epsilon', min: 0, minExclusive: true, max: LIMITS.rate, help: 'AdamW denominator epsilon.' },
      grad_clip: { type: 'number', label: 'Gradient clip', min: 0, max: LIMITS.weight, step: 0.1, help: 'Global gradient-norm clip; 0 = off.' },
      precision: { type: 'enum', label: 'Precision', options: ['fp32', 'bf16', 'fp16'], help: 'Compute precision; bf16/fp16 keep fp32 master weights.' },
      eval_every: { type: 'integer', label: 'Evaluate every', unit: 'steps', min: 0, max: LIMITS.steps, step: 10, help: 'Validation every N steps; 0 = only at the end.' },
      eval_batches: { type: 'integer', label: 'Eval batches', min: 1, max: LIMITS.evalBatches, step: 1, help: 'Validation batches per evaluation.' },
      plateau_patience: { type: 'integer', label: 'Plateau patience', unit: 'evals', min: 0, max: LIMITS.patience, step: 1, help: 'Evaluations without improvement before the plateau rule acts; 0 = off.' },
      plateau_action: { type: 'enum', label: 'Plateau action', options: ['decay_lr', 'step_back_sparsity'], help: 'Decay the learning rate, or step the sparsity back.' },
      plateau_factor: { type: 'number', label: 'Plateau LR factor', min: 0, max: 1, minExclusive: true, maxExclusive: true, step: 0.05, help: 'LR multiplier of the plateau rule (the plan: 0.7).' },
      load_balance: { type: 'enum', label: 'Load balancing', options: LOAD_BALANCE_KINDS, optional: true, help: "Mixture-of-experts models only: 'seed' (Var + mean |usage - 1/E|), 'switch' (transformers' aux loss) or 'none' (absent = none)." },
      load_balance_weight: { type: 'number', label: 'Load-balance weight', min: 0, max: LIMITS.weight, step: 0.001, optional: true, help: "Weight of the load-balancing term; absent = seed 0.01, switch the model's router_aux_loss_coef." },
      attn_entropy_weight: { type: 'number', label: 'Attention-entropy weight', min: 0, max: LIMITS.weight, step: 0.01, optional: true, help: `Adds this weight x the mean entropy (nats) of the model's own attention to the loss, which concentrates attention (pretraining, or before sparsifying). Dense layers over their causal keys, block-sparse ones over their kept blocks; infllm_v2 layers are left out. Empty or 0 = off. Step metric attn_entropy. ${ATTN_ENTROPY_CPU_ONLY}.` },
    },
  },
  gate: {
    kind: 'gate',
    label: 'Gate',
    description: 'Evaluates the stage and passes the model on only if every check holds.',
    inputs: ['model', 'data'],
    output: 'model',
    role: 'gate',
    defaults: {
      checks: [{ metric: 'attn_kl', op: '<', threshold: 0.1 }, { metric: 'out_cos', op: '>', threshold: 0.95 }],
      on_fail: 'decay_lr_retry', max_retries: 2, lr_factor: 0.7, eval_batches: 8,
    },
    fields: {
      checks: { type: 'checks', label: 'Checks', options: GATE_METRICS, help: 'Every check must hold for the gate to pass.' },
      on_fail: { type: 'enum', label: 'On fail', options: ['rollback_sparsity', 'decay_lr_retry', 'refreeze', 'stop', 'continue'], help: 'What to do when a check fails.' },
      max_retries: { type: 'integer', label: 'Max retries', min: 0, max: LIMITS.retries, step: 1, help: 'Retries before the run stops; rollback_sparsity: retries with one more level of denser masks each, then the stage returns to its previous masks and the run goes on.' },
      lr_factor: { type: 'number', label: 'Retry LR factor', min: 0, max: 1, minExclusive: true, maxExclusive: true, step: 0.05, help: 'LR multiplier for decay_lr_retry.' },
      eval_batches: { type: 'integer', label: 'Eval batches', min: 1, max: LIMITS.evalBatches, step: 1, help: 'Validation batches the gate evaluates.' },
    },
  },
  export: {
    kind: 'export',
    label: 'Export',
    description: 'Writes a Hugging Face directory with the sparse-attention config and masks.',
    inputs: ['model'],
    output: null,
    role: 'operation',
    defaults: { path: 'export', flex_masks: true, mask_seq_len: 2048 },
    fields: {
      path: { type: 'string', label: 'Directory', help: 'Output directory; relative paths resolve inside the run directory.' },
      flex_masks: { type: 'boolean', label: 'FlexAttention masks', help: 'Also write the masks as FlexAttention BlockMask arrays.' },
      mask_seq_len: { type: 'integer', label: 'Mask length', unit: 'tokens', min: 1, max: LIMITS.seqLen, step: 64, help: 'Sequence length the exported masks are built for.' },
    },
  },
};

/** Why no link can go from a `from` node to a `to` node, judged by their kinds' ports alone. */
export type PortRefusal =
  | { end: 'from'; problem: 'no_output' }
  | { end: 'to'; problem: 'no_input' }
  | { end: 'to'; problem: 'wrong_port'; port: PortType };

/**
 * The port rule of a link, for the editor's connection check and the validator alike: the
 * source's output type must be one of the target's inputs. Returns the port the link carries.
 */
export function linkPort(fromKind: NodeKind, toKind: NodeKind): { ok: true; port: PortType } | ({ ok: false } & PortRefusal) {
  const port = NODE_SPECS[fromKind].output;
  if (port === null) return { ok: false, end: 'from', problem: 'no_output' };
  const inputs = NODE_SPECS[toKind].inputs;
  if (inputs.length === 0) return { ok: false, end: 'to', problem: 'no_input' };
  if (!inputs.includes(port)) return { ok: false, end: 'to', problem: 'wrong_port', port };
  return { ok: true, port };
}

/** Kinds with an input of this type, in NODE_KINDS order (for messages: "only train and gate do"). */
export function kindsTaking(port: PortType): NodeKind[] {
  return NODE_KINDS.filter((k) => NODE_SPECS[k].inputs.includes(port));
}

/** A deep copy of a kind's defaults, safe to edit. */
export function defaultParams<K extends NodeKind>(kind: K): ParamsByKind[K] {
  return structuredClone(NODE_SPECS[kind].defaults);
}

export function isNodeKind(value: unknown): value is NodeKind {
  return typeof value === 'string' && (NODE_KINDS as readonly string[]).includes(value);
}
