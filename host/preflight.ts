// Preflight: what can be known about a pipeline before it runs, beyond the schema — do the
// model and data sources exist, does the model's depth match the Model node, will each Train
// stage fit in memory, do the sequences hold at least one attention block.
//
// Design choices:
// - Never throws on a malformed pipeline: the schema validator reports those; here every
//   field is read defensively and only checks that can be made are made.
// - The memory estimate is deliberately simple and conservative (fp32 everything):
//   params * 4 B * (weights + grads + 2 Adam moments) + activations
//   batch * seq * hidden * layers * ~20 values * 4 B, plus the block masks of every layer any
//   Replace node makes sparse, built for the longest sequence, and with the attention-entropy term
//   on its dq/dk buffers (runMemoryRefusal also counts the
//   Export's FlexAttention arrays). It is a guide, not a promise -- but a run whose estimate
//   exceeds the machine's memory is refused before it starts (runMemoryRefusal, used by the
//   service's startRun and `sparse-studio run`).
import { realpathSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { PreflightReport, ValidationProblem } from '../core/api';
import { engineAvailable as engineLayoutAvailable } from '../native/addon';
import { expectedTensors, MAX_CONFIG_BYTES, validateModelConfig } from '../native/checkpoint/config';
import { exportPathProblems } from './runner/export';
import { MOE_GATE_METRICS } from './runner/moe';
import { BUILTIN_MODELS, type GateMetric } from '../core/schema';
import { FileRefused, readRegularFile } from './safe-read';

export interface PreflightContext {
  /** Relative model/data paths resolve against this folder (the runner uses its working directory). */
  baseDir: string;
  /** 'builtin:demo' is `${modelsDir}/demo` (each built-in a folder there). */
  modelsDir: string;
  /** Memory the CPU backend may use; a stage estimated above it is a problem. */
  totalMemoryBytes: number;
  /**
   * Set for a client of `serve`: the only folders whose files preflight describes. A model or
   * dataset path outside all of them (after symlinks) is refused by its path alone, before
   * anything is opened or stat'ed, so a client learns nothing about the rest of the disk: not
   * whether a file exists, nor its size, nor a line of its content. The service passes the
   * project, models, runs and working folders (clientPathProblems).
   */
  confineTo?: readonly string[];
}

/** The config.json fields the estimate needs (Hugging Face names). */
export interface ConfigShape {
  model_type?: string;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number;
  head_dim?: number;
  tie_word_embeddings?: boolean;
  /** Mixture of experts (qwen3_moe): every expert's weights count toward memory. */
  num_experts?: number;
  num_experts_per_tok?: number;
  moe_intermediate_size?: number;
  decoder_sparse_step?: number;
  mlp_only_layers?: number[];
}

const ACTIVATION_VALUES_PER_TOKEN_LAYER_HIDDEN = 20;
const BYTES_PER_FLOAT = 4;
/** weights + grads + Adam m + Adam v */
const PARAM_COPIES = 4;

/**
 * Parameters of the model a config.json describes: the tensors the engine's layout holds for it
 * (a mixture-of-experts model: the router and every expert, not only the k a token runs),
 * with the family's defaults (an omitted tie_word_embeddings is untied for llama). Throws a
 * one-line error naming the field of a config the engine refuses, or when the addon is not built.
 */
export function countParams(c: ConfigShape, file = 'config.json'): number {
  const layout = expectedTensors(validateModelConfig(c, file));
  return layout.reduce((sum, t) => sum + t.shape.reduce((n, d) => n * d, 1), 0);
}

export function estimateTrainMemory(c: ConfigShape, batch: number, seqLen: number): { total: number; params: number; activations: number } {
  const params = countParams(c) * BYTES_PER_FLOAT * PARAM_COPIES;
  const activations = batch * seqLen * c.hidden_size * c.num_hidden_layers * ACTIVATION_VALUES_PER_TOKEN_LAYER_HIDDEN * BYTES_PER_FLOAT;
  return { total: params + activations, params, activations };
}

/**
 * Bytes of one layer's block mask for `seqLen` tokens, as native/src/block_mask.h holds it:
 * per mask head an n x n source byte map and bitmap, plus int32 kv/q index lists that hold at
 * most every causal block pair twice.
 */
export function maskBytes(seqLen: number, blockSize: number, maskHeads: number): number {
  const n = Math.ceil(seqLen / blockSize);
  const causalPairs = (n * (n + 1)) / 2;
  return maskHeads * (n * n * (1 + 1 / 8) + causalPairs * 2 * 4 + (n + 1) * 2 * 4);
}

/** Bytes of one layer's FlexAttention arrays for `seqLen` (export.ts: kv/q indices, (1, H, n, n) int32 each). */
export function flexMaskBytes(seqLen: number, blockSize: number, heads: number): number {
  const n = Math.ceil(seqLen / blockSize);
  return heads * (2 * n * n + 2 * n) * 4;
}

type MaskShape = { block_size?: unknown; share_gqa_group?: unknown };

/** Per layer (0-based) the last mask any Replace node puts there: the layers a run may make sparse. */
function sparseLayers(nodes: AnyNode[], depth: number): Map<number, MaskShape> {
  const out = new Map<number, MaskShape>();
  for (const r of nodes.filter((n) => n.kind === 'replace')) {
    const layers = r.params?.layers;
    const mask = r.params?.mask as MaskShape | undefined;
    if (!Array.isArray(layers) || typeof mask !== 'object' || mask === null) continue;
    const [first, last] = layers as unknown[];
    if (typeof first !== 'number' || typeof last !== 'number') continue;
    for (let l = Math.max(1, first); l <= Math.min(depth, last); l++) out.set(l - 1, mask);
  }
  return out;
}

/** Mask bytes of the sparse layers at `seqLen` (mask heads: KV heads when shared per GQA group). */
function masksBytes(layers: Map<number, MaskShape>, c: ConfigShape, seqLen: number): number {
  let total = 0;
  for (const mask of layers.values()) {
    const block = typeof mask.block_size === 'number' && mask.block_size >= 1 ? mask.block_size : 16;
    const heads = mask.share_gqa_group === false ? c.num_attention_heads : (c.num_key_value_heads ?? c.num_attention_heads);
    total += maskBytes(seqLen, block, heads);
  }
  return total;
}

/**
 * Bytes of the attention-entropy term's gradient buffers (native/src/model_losses.cpp): dq and dk
 * of every layer, (batch, heads + KV heads, seq, head_dim) floats, kept between steps.
 */
export function entropyBytes(c: ConfigShape, batch: number, seqLen: number): number {
  const heads = c.num_attention_heads, kvHeads = c.num_key_value_heads ?? heads;
  const headDim = c.head_dim ?? c.hidden_size / heads;
  return c.num_hidden_layers * batch * seqLen * (heads + kvHeads) * headDim * BYTES_PER_FLOAT;
}

/** One Train node's peak estimate and its parts; null when its batch or sequence lengths are unreadable. */
interface TrainEstimate { batch: number; seq: number; params: number; activations: number; masks: number; entropy: number; total: number }

function estimateTrainNode(train: AnyNode, config: ConfigShape, layers: Map<number, MaskShape>): TrainEstimate | null {
  const batch = train.params?.batch_size;
  const curriculum = Array.isArray(train.params?.curriculum) ? (train.params!.curriculum as { seq_len?: unknown }[]) : [];
  const seq = Math.max(0, ...curriculum.map((c) => (typeof c?.seq_len === 'number' && Number.isFinite(c.seq_len) ? c.seq_len : 0)));
  if (typeof batch !== 'number' || batch < 1 || seq <= 0) return null;
  const e = estimateTrainMemory(config, batch, seq);
  const masks = masksBytes(layers, config, seq);
  const weight = train.params?.attn_entropy_weight;
  const entropy = typeof weight === 'number' && weight > 0 ? entropyBytes(config, batch, seq) : 0;
  return { batch, seq, params: e.params, activations: e.activations, masks, entropy, total: e.total + masks + entropy };
}

/** "activations X; masks Y; entropy term Z": the parts of a Train estimate after weights, grads and Adam. */
function trainParts(e: TrainEstimate, sep: string): string {
  return [`activations ${formatBytes(e.activations)}`, ...(e.masks > 0 ? [`masks ${formatBytes(e.masks)}`] : []),
    ...(e.entropy > 0 ? [`entropy term ${formatBytes(e.entropy)}`] : [])].join(sep);
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return `${value >= 100 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

type AnyNode = { id?: unknown; kind?: unknown; params?: Record<string, unknown> };

/** Runs the resource checks; `schemaProblems` (from the validator) are included first. */
export async function preflightPipeline(pipeline: unknown, schemaProblems: ValidationProblem[], ctx: PreflightContext): Promise<PreflightReport> {
  const problems: ValidationProblem[] = [...schemaProblems];
  const notes: Record<string, string> = {};
  const memoryBytes: Record<string, number> = {};
  const p = (pipeline ?? {}) as { nodes?: unknown; links?: unknown; backend?: unknown };
  const indexOf = new Map<AnyNode, number>();
  (Array.isArray(p.nodes) ? (p.nodes as unknown[]) : []).forEach((n, i) => {
    if (typeof n === 'object' && n !== null) indexOf.set(n as AnyNode, i);
  });
  const nodes = [...indexOf.keys()];
  const links = Array.isArray(p.links) ? (p.links as { from?: unknown; to?: unknown }[]) : [];
  const idOf = (n: AnyNode) => (typeof n.id === 'string' ? n.id : undefined);
  const problem = (n: AnyNode, field: string, message: string) =>
    problems.push({ path: `nodes[${indexOf.get(n)}].params.${field}`, message, ...(idOf(n) ? { node: idOf(n) } : {}) });

  // A client's paths outside its folders are refused by path alone and not looked at further.
  const confined = ctx.confineTo ? clientPathProblems(pipeline, ctx.baseDir, ctx.confineTo) : [];
  problems.push(...confined);
  const refusedNodes = new Set(confined.map((c) => c.path));
  const allowed = (n: AnyNode) => !refusedNodes.has(`nodes[${indexOf.get(n)}].params.source`);

  let config: ConfigShape | null = null;
  for (const node of nodes.filter((n) => n.kind === 'model' && allowed(n))) {
    const found = await checkModelNode(node, ctx, problem);
    if (!found) continue;
    // Without the engine addon the layout, so the size, is unknown: no size note, no memory check.
    const params = engineLayoutAvailable() ? formatCount(countParams(found)) : null;
    if (params !== null) config = config ?? found;
    if (idOf(node)) notes[idOf(node)!] = `loads: ${found.model_type ?? 'model'}, ${found.num_hidden_layers} layers${params === null ? '' : `, ${params} params`}`;
  }

  for (const node of nodes.filter((n) => n.kind === 'dataset' && allowed(n))) {
    const note = await checkDatasetNode(node, ctx, problem);
    if (note && idOf(node)) notes[idOf(node)!] = note;
  }

  if (config && !(config.num_experts! > 0)) denseModelProblems(nodes, config, problem);

  const descendants = descendantsByLinks(links);
  for (const train of nodes.filter((n) => n.kind === 'train')) {
    const params = train.params ?? {};
    const curriculum = Array.isArray(params.curriculum) ? (params.curriculum as { seq_len?: unknown }[]) : [];
    const seqLens = curriculum.map((c) => (typeof c?.seq_len === 'number' ? c.seq_len : NaN));
    // block size must fit in every sequence length of every stage after the Replace node
    for (const replace of nodes.filter((n) => n.kind === 'replace')) {
      const blockSize = (replace.params?.mask as { block_size?: unknown } | undefined)?.block_size;
      if (typeof blockSize !== 'number' || !idOf(replace) || !idOf(train)) continue;
      if (!descendants(idOf(replace)!).has(idOf(train)!)) continue;
      seqLens.forEach((seq, j) => {
        if (seq < blockSize) problem(train, `curriculum[${j}].seq_len`, `sequence length ${seq} is shorter than block size ${blockSize} of node "${idOf(replace)}"`);
      });
    }
    const estimate = config && idOf(train) ? estimateTrainNode(train, config, sparseLayers(nodes, config.num_hidden_layers)) : null;
    if (!estimate) continue;
    memoryBytes[idOf(train)!] = estimate.total;
    notes[idOf(train)!] = `~${formatBytes(estimate.total)} peak (weights, grads, Adam ${formatBytes(estimate.params)}; ${trainParts(estimate, '; ')})`;
    if (p.backend !== 'cuda' && estimate.total > ctx.totalMemoryBytes) {
      problem(train, 'batch_size', `estimated peak memory ${formatBytes(estimate.total)} exceeds this machine's ${formatBytes(ctx.totalMemoryBytes)}; lower batch_size or seq_len`);
    }
  }

  // Preflight answers the page, a client: Export paths follow the client rule (runner/export.ts).
  problems.push(...exportPathProblems(pipeline, { trusted: false }));

  return { ok: problems.length === 0, problems, notes, memoryBytes };
}

/**
 * The run-start memory check (service startRun and `sparse-studio run`): the largest estimate
 * over the Train nodes (weights, grads, Adam, activations and masks) and the Export's
 * FlexAttention arrays, against the machine's memory. Returns one line with the numbers when
 * the run cannot fit, else null. A model whose config cannot be read is left to the runner
 * (it fails there with its own line); the estimate needs the engine addon for the layout.
 */
export async function runMemoryRefusal(pipeline: unknown, ctx: PreflightContext): Promise<string | null> {
  const p = (pipeline ?? {}) as { nodes?: unknown; backend?: unknown };
  if (p.backend === 'cuda') return null; // device memory is the runner's to check
  const nodes = (Array.isArray(p.nodes) ? p.nodes : []).filter((n): n is AnyNode => typeof n === 'object' && n !== null);
  const model = nodes.find((n) => n.kind === 'model');
  if (!model || !engineLayoutAvailable()) return null;
  const config = await checkModelNode(model, ctx, () => {});
  if (!config) return null;
  let params: number;
  try { params = countParams(config); } catch { return null; }
  const layers = sparseLayers(nodes, config.num_hidden_layers);
  let worst: { bytes: number; line: string } | null = null;
  nodes.forEach((n, i) => {
    let bytes = 0;
    let what = '';
    if (n.kind === 'train') {
      const e = estimateTrainNode(n, config, layers);
      if (!e) return;
      bytes = e.total;
      what = `batch ${e.batch}, seq_len ${e.seq}: weights, grads, Adam ${formatBytes(e.params)}, ${trainParts(e, ', ')}`;
    } else if (n.kind === 'export' && n.params?.flex_masks === true && typeof n.params.mask_seq_len === 'number') {
      const seq = n.params.mask_seq_len;
      for (const mask of layers.values()) bytes += flexMaskBytes(seq, typeof mask.block_size === 'number' && mask.block_size >= 1 ? mask.block_size : 16, config.num_attention_heads);
      bytes += params * BYTES_PER_FLOAT;
      what = `mask_seq_len ${seq}: FlexAttention masks of ${layers.size} layer${layers.size === 1 ? '' : 's'} and the weights`;
    } else return;
    const id = typeof n.id === 'string' ? ` '${n.id}'` : '';
    if (!worst || bytes > worst.bytes) worst = { bytes, line: `nodes[${i}]${id} needs an estimated ${formatBytes(bytes)} (${what}); this machine has ${formatBytes(ctx.totalMemoryBytes)}` };
  });
  const found = worst as { bytes: number; line: string } | null;
  return found && found.bytes > ctx.totalMemoryBytes ? `not enough memory: ${found.line}` : null;
}

type Report = (node: AnyNode, field: string, message: string) => void;

/** Mixture-of-experts settings on a dense model: a load-balancing term, or a gate check of an MoE metric. */
function denseModelProblems(nodes: AnyNode[], config: ConfigShape, problem: Report): void {
  const dense = `this ${config.model_type ?? 'model'} model is dense`;
  for (const n of nodes) {
    const lb = n.params?.load_balance;
    if (n.kind === 'train' && (lb === 'seed' || lb === 'switch')) problem(n, 'load_balance', `'${lb}' needs a mixture-of-experts model, but ${dense} (set it to 'none')`);
    if (n.kind !== 'gate' || !Array.isArray(n.params?.checks)) continue;
    (n.params!.checks as { metric?: unknown }[]).forEach((c, i) => {
      if (MOE_GATE_METRICS.includes(c?.metric as GateMetric)) problem(n, `checks[${i}].metric`, `${String(c.metric)} needs a mixture-of-experts model, but ${dense}`);
    });
  }
}

/** The file or folder a model/dataset source names, or null for a built-in. */
function sourcePath(kind: 'model' | 'dataset', source: string, baseDir: string): string | null {
  if (source.startsWith('builtin:')) return null;
  if (kind === 'model' && source.startsWith('init:')) return resolvePath(baseDir, source.slice('init:'.length));
  return resolvePath(baseDir, source);
}

/**
 * Model and dataset sources outside `roots` (lexically, then after symlinks): the paths a
 * client of `serve` may not have described or read (PreflightContext.confineTo).
 */
export function clientPathProblems(pipeline: unknown, baseDir: string, roots: readonly string[]): ValidationProblem[] {
  const nodes = (pipeline as { nodes?: unknown })?.nodes;
  if (!Array.isArray(nodes)) return [];
  const out: ValidationProblem[] = [];
  nodes.forEach((n: AnyNode, i) => {
    if ((n?.kind !== 'model' && n?.kind !== 'dataset') || typeof n.params?.source !== 'string') return;
    const path = sourcePath(n.kind, n.params.source, baseDir);
    if (path === null || insideRoots(path, roots)) return;
    out.push({
      path: `nodes[${i}].params.source`, ...(typeof n.id === 'string' ? { node: n.id } : {}),
      message: `${path} is outside the folders this studio reads for its clients (the project, models, runs and working folders)`,
    });
  });
  return out;
}

/** `path` lies inside one of `roots`, lexically and after symlinks. */
export function insideRoots(path: string, roots: readonly string[]): boolean {
  const under = (p: string, root: string) => { const rel = relative(root, p); return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel)); };
  const lexical = roots.map((r) => resolve(r));
  if (!lexical.some((root) => under(resolve(path), root))) return false; // nothing on disk is touched
  const real = realOfDeepest(path);
  return lexical.some((root) => under(real, realOfDeepest(root)));
}

function realOfDeepest(path: string): string {
  let existing = resolve(path);
  const rest: string[] = [];
  for (;;) {
    try { return join(realpathSync(existing), ...rest); } catch { /* climb */ }
    const parent = dirname(existing);
    if (parent === existing) return resolve(path);
    rest.unshift(basename(existing));
    existing = parent;
  }
}

/** Resolves the Model node's source to a config.json and checks it; returns the config or null. */
async function checkModelNode(node: AnyNode, ctx: PreflightContext, problem: Report): Promise<ConfigShape | null> {
  const source = node.params?.source;
  if (typeof source !== 'string' || source === '') return null;
  let dir: string | null;
  let configPath: string;
  if (source.startsWith('builtin:')) {
    const name = source.slice('builtin:'.length);
    if (!BUILTIN_MODELS.includes(name)) { problem(node, 'source', `unknown built-in model "${name}" (this build ships ${BUILTIN_MODELS.map((m) => `builtin:${m}`).join(', ')})`); return null; }
    dir = join(ctx.modelsDir, name);
    configPath = join(dir, 'config.json');
  } else if (source.startsWith('init:')) {
    dir = null; // random initialisation: only the config is needed
    configPath = resolvePath(ctx.baseDir, source.slice('init:'.length));
  } else {
    dir = resolvePath(ctx.baseDir, source);
    if (!(await isDirectory(dir))) { problem(node, 'source', `model directory not found: ${dir}`); return null; }
    configPath = join(dir, 'config.json');
  }

  let config: ConfigShape;
  try {
    // Non-blocking, regular files only, bounded: a FIFO or a device named as config cannot hang or flood the server.
    config = parseConfig(readRegularFile(configPath, MAX_CONFIG_BYTES).toString('utf8'));
  } catch (error) {
    const refused = error instanceof FileRefused ? error : null;
    problem(node, 'source', refused?.code === 'not_found' ? `no config.json at ${configPath}` : refused ? refused.message : `${configPath}: ${(error as Error).message}`);
    return null;
  }
  try {
    validateModelConfig(config, configPath);
  } catch (error) {
    problem(node, 'source', (error as Error).message); // names the file and the field
    return null;
  }
  const declared = node.params?.num_layers;
  if (typeof declared === 'number' && declared !== config.num_hidden_layers) {
    problem(node, 'num_layers', `model has ${config.num_hidden_layers} layers (num_hidden_layers in ${configPath}), node says ${declared}`);
  }
  // the runner also needs the tokenizer: next to the config for init:, in the directory otherwise
  const tokenizer = join(dirname(configPath), 'tokenizer.json');
  if (!(await exists(tokenizer))) problem(node, 'source', `no tokenizer.json at ${tokenizer}`);
  if (dir && !(await hasWeights(dir))) problem(node, 'source', `no *.safetensors weights in ${dir}`);
  return config;
}

function parseConfig(text: string): ConfigShape {
  let value: Record<string, unknown>;
  try { value = JSON.parse(text); } catch { throw new Error('config.json is not valid JSON'); }
  if (typeof value !== 'object' || value === null) throw new Error('config.json is not an object');
  for (const field of ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads']) {
    const v = value[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`${field} must be a positive integer`);
  }
  return value as unknown as ConfigShape;
}

async function checkDatasetNode(node: AnyNode, ctx: PreflightContext, problem: Report): Promise<string | null> {
  const source = node.params?.source;
  if (typeof source !== 'string' || source === '') return null;
  if (source.startsWith('builtin:')) {
    if (source === 'builtin:brown') return 'Brown Corpus (built-in)';
    problem(node, 'source', `unknown built-in dataset "${source.slice('builtin:'.length)}" (this build ships builtin:brown)`);
    return null;
  }
  const path = resolvePath(ctx.baseDir, source);
  try {
    const s = await stat(path);
    if (s.isFile()) return `${formatBytes(s.size)} of text`;
    if (!s.isDirectory()) { problem(node, 'source', `${path}: not a regular file or folder`); return null; }
    const files = (await readdir(path)).filter((f) => /\.(txt|jsonl)$/.test(f));
    if (files.length === 0) { problem(node, 'source', `no .txt or .jsonl files in ${path}`); return null; }
    return `${files.length} file${files.length === 1 ? '' : 's'}`;
  } catch {
    problem(node, 'source', `dataset not found: ${path}`);
    return null;
  }
}

function resolvePath(baseDir: string, path: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

async function isDirectory(path: string): Promise<boolean> {
  try { return (await stat(path)).isDirectory(); } catch { return false; }
}

async function exists(path: string): Promise<boolean> {
  try { await stat(path); return true; } catch { return false; }
}

async function hasWeights(dir: string): Promise<boolean> {
  try { return (await readdir(dir)).some((f) => f.endsWith('.safetensors')); } catch { return false; }
}

/** Node ids reachable from a node along links (the stages that run after it). */
function descendantsByLinks(links: { from?: unknown; to?: unknown }[]): (id: string) => Set<string> {
  const next = new Map<string, string[]>();
  for (const l of links) {
    if (typeof l?.from !== 'string' || typeof l?.to !== 'string') continue;
    next.set(l.from, [...(next.get(l.from) ?? []), l.to]);
  }
  return (start) => {
    const seen = new Set<string>();
    const stack = [...(next.get(start) ?? [])];
    while (stack.length) {
      const id = stack.pop()!;
      if (seen.has(id)) continue;
      seen.add(id);
      stack.push(...(next.get(id) ?? []));
    }
    return seen;
  };
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}
