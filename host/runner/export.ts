// Export node: a Hugging Face directory of the current student.
//   config.json         the engine's config (with the source's other keys: auto_map, ...) plus a
//                       `sparse_attention` block (per layer: dense, or block-sparse with its mask
//                       spec); when every sparse layer uses one infllm_v2 mask, `sparse_config`
//                       (InfLLM-V2 / MiniCPM 4.1 format) is rewritten from that mask
//   model.safetensors   the weights (engine.save)
//   tokenizer.json      copied from the base model
//   sparse_masks.safetensors   (flex_masks) int32 FlexAttention BlockMask arrays per sparse
//                       layer for `mask_seq_len` tokens, shaped as BlockMask.from_kv_blocks
//                       takes them: layers.<i>.kv_num_blocks (1, H, Q), layers.<i>.kv_indices
//                       (1, H, Q, K), layers.<i>.q_num_blocks (1, H, K), layers.<i>.q_indices (1, H, K, Q);
//                       metadata mask_seq_len and block_size (BlockMask's BLOCK_SIZE; a JSON
//                       {layer: size} object when layers differ)
//   sparse_bitmaps.safetensors  (flex_masks) InfLLM-style uint64 bitmaps of the same static blocks:
//                       layers.<i>.bitmap (mask heads, mask_seq_len, words), one row per mask head
//                       (KV head when the GQA group shares) and query token, key block j in bit
//                       j % 64 of word j / 64 (lowest block in the lowest bit)
//   sparse_attention.py the PyTorch module that computes every layer's blocks (static + top-k of its
//                       selector: pooled, indexer with selector.safetensors, infllm_v2) for any
//                       input exactly as the engine does, and attends over them (FlexAttention
//                       BlockMask, or a masked softmax where torch has no flex_attention)
// Per layer the config says which selector and mask the exported model uses, whether its blocks
// are dynamic (computed per input by sparse_attention.py), and the density it had on the
// validation data (the run's last evaluation).
import { copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { ExportParams, MaskSpec } from '../../core/schema';
import type { EngineModel } from '../../native/engine-api';
import { masksOf, type ModelState } from '../../core/model-state';
import { SafetensorsFile } from '../../native/checkpoint/safetensors';

/** FlexAttention BlockMask arrays of one layer's mask (row-major int32), with its bitmap when the builder gives it. */
export interface FlexBlockMask {
  /** The mask's InfLLM-style bitmap per query block: (nMaskHeads, qBlocks, words) uint64. */
  bitmap?: { nMaskHeads: number; words: number; bits: BigUint64Array };
  heads: number;
  qBlocks: number;
  kvBlocks: number;
  kv_num_blocks: Int32Array;  // (1, heads, qBlocks)
  kv_indices: Int32Array;     // (1, heads, qBlocks, kvBlocks), padded
  q_num_blocks: Int32Array;   // (1, heads, kvBlocks)
  q_indices: Int32Array;      // (1, heads, kvBlocks, qBlocks), padded
}

/** Builds a layer's FlexAttention arrays (native/mask.ts supplies the real one). */
export type MaskArrays = (mask: MaskSpec, where: { layer: number; seqLen: number; heads: number; kvHeads: number }) => FlexBlockMask;

export const MASKS_FILE = 'sparse_masks.safetensors';
export const BITMAPS_FILE = 'sparse_bitmaps.safetensors';
export const MODULE_FILE = 'sparse_attention.py';
export const SELECTOR_FILE = 'selector.safetensors';
/** The module's source, copied into every export. */
export const MODULE_SOURCE = new URL('../export-python/sparse_attention.py', import.meta.url).pathname;

/** What the exported model does in one layer (config.json sparse_attention.layers[i], the run's summary). */
export interface ExportLayer {
  layer: number;
  attention: 'dense' | 'block_sparse';
  mask?: MaskSpec;
  /** The selector of the dynamic blocks and where its parameters are. */
  selector?: SelectorExport;
  /** static: the same blocks for every input (the mask files hold them all); dynamic: top-k blocks per input (sparse_attention.py). */
  blocks?: 'static' | 'dynamic';
  /** Density on the validation data at the run's last evaluation (null: dense, or never evaluated). */
  validation_density: number | null;
}

export type SelectorExport =
  | { type: 'none' }
  | { type: 'pooled'; input: 'q, k after RoPE'; parameters: 'none' }
  | { type: 'indexer'; input: 'normed layer input'; file: string; tensors: { wq: string; wk: string; weights_proj: string } }
  | { type: 'infllm_v2'; input: 'q, k after RoPE'; kernel_size: number; kernel_stride: number; init_blocks: number; local_blocks: number; topk: number; dense_len: number };

/** Per-layer description of the exported model; `density` is the last evaluation's per-layer density. */
export function exportLayers(masks: (MaskSpec | null)[], density?: (number | null)[]): ExportLayer[] {
  return masks.map((mask, layer) => {
    const validation_density = mask ? density?.[layer] ?? null : null;
    if (!mask) return { layer, attention: 'dense', validation_density };
    const dynamic = mask.selector === 'infllm_v2' || (mask.selector !== 'none' && mask.topk_blocks > 0);
    return { layer, attention: 'block_sparse', mask, selector: selectorExport(mask, layer), blocks: dynamic ? 'dynamic' : 'static', validation_density };
  });
}

/** The names of a layer's indexer tensors in selector.safetensors (0-based layer). */
export function indexerTensorNames(layer: number): { wq: string; wk: string; weights_proj: string } {
  const p = `model.layers.${layer}.self_attn.indexer.`;
  return { wq: `${p}wq.weight`, wk: `${p}wk.weight`, weights_proj: `${p}weights_proj.weight` };
}

function selectorExport(mask: MaskSpec, layer: number): SelectorExport {
  switch (mask.selector) {
    case 'pooled': return { type: 'pooled', input: 'q, k after RoPE', parameters: 'none' };
    case 'indexer': return { type: 'indexer', input: 'normed layer input', file: SELECTOR_FILE, tensors: indexerTensorNames(layer) };
    case 'infllm_v2': {
      const local = mask.window_blocks + 1;
      return { type: 'infllm_v2', input: 'q, k after RoPE', kernel_size: mask.block_size / 2, kernel_stride: mask.block_size / 4, init_blocks: mask.global_blocks,
        local_blocks: local, topk: mask.global_blocks + local + mask.topk_blocks, dense_len: mask.dense_below };
    }
    default: return { type: 'none' };
  }
}

/** One line per sparse layer: selector, blocks, validation density (for the run's log). */
export function describeExportLayers(layers: ExportLayer[]): string {
  const sparse = layers.filter((l) => l.attention === 'block_sparse');
  if (sparse.length === 0) return 'every layer dense';
  const pct = (d: number | null) => (d === null ? 'not evaluated' : `${(d * 100).toFixed(1)}%`);
  return sparse.map((l) => `layer ${l.layer + 1}: ${l.selector!.type}${l.mask!.topk_blocks > 0 || l.selector!.type === 'infllm_v2' ? ` top-${l.mask!.topk_blocks}` : ''} (${l.blocks}), validation density ${pct(l.validation_density)}`).join('; ');
}

/**
 * Where an Export node may write. The rule:
 * - a relative path resolves against the run folder and must stay inside it, also after
 *   symlinks are resolved (realpath of the deepest folder that exists), whoever started the run;
 * - an absolute path outside the run folder only when the run's origin is trusted: the user
 *   typed it (`sparse-studio run`) or picked it in a native dialog. A client of the studio
 *   service (`serve`, the page) never writes outside the run folder: its path would replace
 *   files (and delete sparse_masks.safetensors) in any folder the studio can write.
 * Returns the folder, or throws one line naming the field, the node and why.
 */
export function resolveExportDir(runDir: string, path: string, opts: { trusted: boolean; where?: string }): string {
  const where = opts.where ?? 'export.path';
  const target = isAbsolute(path) ? resolve(path) : resolve(runDir, path);
  const inside = within(realOfDeepest(runDir), realOfDeepest(target));
  if (inside) return target;
  if (isAbsolute(path) && opts.trusted) return target;
  const why = isAbsolute(path)
    ? 'an absolute path outside the run folder is only taken from the command line (sparse-studio run); give a path relative to the run folder'
    : `it leads outside the run folder (to ${target}${realOfDeepest(target) !== target ? `, ${realOfDeepest(target)} after symlinks` : ''}); relative paths must stay inside it`;
  throw new Error(`${where}: ${JSON.stringify(path)} is refused: ${why}`);
}

/** Where `path` really is: realpath of its deepest existing ancestor, plus the rest. */
function realOfDeepest(path: string): string {
  let existing = resolve(path);
  const rest: string[] = [];
  while (!existsSync(existing)) {
    const parent = dirname(existing);
    if (parent === existing) break;
    rest.unshift(existing.slice(parent.length).replace(/^[\\/]+/, ''));
    existing = parent;
  }
  let real: string;
  try { real = realpathSync(existing); } catch { real = existing; }
  return rest.length ? join(real, ...rest) : real;
}

function within(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel));
}

/**
 * Export paths a run may not take, checked before any work: `nodes[i].params.path` and why.
 * Without a run folder yet (a new run) relative paths are checked against a stand-in folder:
 * a fresh folder holds no symlinks, so only `..` can lead out of it.
 */
export function exportPathProblems(pipeline: unknown, opts: { runDir?: string; trusted: boolean }): { path: string; message: string; node?: string }[] {
  const nodes = (pipeline as { nodes?: unknown })?.nodes;
  if (!Array.isArray(nodes)) return [];
  const runDir = opts.runDir ?? resolve(sep, 'sparse-studio-new-run');
  const out: { path: string; message: string; node?: string }[] = [];
  nodes.forEach((node: { id?: unknown; kind?: unknown; params?: { path?: unknown } }, i) => {
    if (node?.kind !== 'export' || typeof node.params?.path !== 'string') return;
    const where = `nodes[${i}].params.path`;
    try {
      resolveExportDir(runDir, node.params.path, { trusted: opts.trusted, where });
    } catch (e) {
      const id = typeof node.id === 'string' ? node.id : undefined;
      const message = (e as Error).message.slice(where.length + 2);
      out.push({ path: where, message: id ? `Export '${id}': ${message}` : message, ...(id ? { node: id } : {}) });
    }
  });
  return out;
}

export async function exportModel(model: EngineModel, state: ModelState, params: ExportParams,
  ctx: { runDir: string; tokenizer: string; maskArrays?: MaskArrays; trustedPaths?: boolean; where?: string; validationDensity?: (number | null)[] }): Promise<string> {
  const dir = resolveExportDir(ctx.runDir, params.path, { trusted: ctx.trustedPaths ?? false, where: ctx.where });
  // Never clear the folder (it may be a user's model directory); replace only the files we write.
  mkdirSync(dir, { recursive: true });
  rmSync(join(dir, MASKS_FILE), { force: true });
  rmSync(join(dir, BITMAPS_FILE), { force: true });
  await model.save(dir);
  if (resolve(ctx.tokenizer) !== resolve(dir, 'tokenizer.json')) copyFileSync(ctx.tokenizer, join(dir, 'tokenizer.json'));

  const configFile = join(dir, 'config.json');
  const config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  const masks = masksOf(state);
  const layers = exportLayers(masks, ctx.validationDensity);
  checkSelectorWeights(dir, layers);
  const sparse: Record<string, unknown> = { format: 'sparse-studio/1', layers };
  if (masks.some((m) => m)) {
    copyFileSync(MODULE_SOURCE, join(dir, MODULE_FILE));
    sparse.module = { file: MODULE_FILE, load: 'load_selectors(export_dir)', requires: 'torch' };
  }
  if (params.flex_masks && masks.some((m) => m)) {
    if (!ctx.maskArrays) throw new Error('export.flex_masks: this engine build cannot produce FlexAttention mask arrays');
    const heads = model.config.num_attention_heads;
    const kvHeads = model.config.num_key_value_heads;
    const tensors: { name: string; shape: number[]; data: Int32Array }[] = [];
    const bitmaps: { name: string; shape: number[]; data: BigUint64Array }[] = [];
    masks.forEach((mask, layer) => {
      if (!mask) return;
      const m = ctx.maskArrays!(mask, { layer, seqLen: params.mask_seq_len, heads, kvHeads });
      tensors.push(
        { name: `layers.${layer}.kv_num_blocks`, shape: [1, m.heads, m.qBlocks], data: m.kv_num_blocks },
        { name: `layers.${layer}.kv_indices`, shape: [1, m.heads, m.qBlocks, m.kvBlocks], data: m.kv_indices },
        { name: `layers.${layer}.q_num_blocks`, shape: [1, m.heads, m.kvBlocks], data: m.q_num_blocks },
        { name: `layers.${layer}.q_indices`, shape: [1, m.heads, m.kvBlocks, m.qBlocks], data: m.q_indices },
      );
      if (m.bitmap) bitmaps.push({ name: `layers.${layer}.bitmap`, ...tokenBitmap(m.bitmap, m.qBlocks, mask.block_size, params.mask_seq_len) });
    });
    const blockSize = maskBlockSize(masks);
    writeFileSync(join(dir, MASKS_FILE), encodeInt32Safetensors(tensors, { mask_seq_len: String(params.mask_seq_len), block_size: typeof blockSize === 'number' ? String(blockSize) : JSON.stringify(blockSize) }));
    const dynamic = layers.filter((l) => l.blocks === 'dynamic').map((l) => l.layer);
    // The files hold the static blocks; dynamic layers' top-k blocks come from sparse_attention.py
    // for each input, so the exported masks are complete (not static only).
    sparse.flex_masks = {
      file: MASKS_FILE, mask_seq_len: params.mask_seq_len, block_size: blockSize, layout: 'torch.nn.attention.flex_attention.BlockMask.from_kv_blocks',
      mask_mod: 'causal', static_only: false, ...(dynamic.length ? { dynamic_layers: dynamic, dynamic_blocks: MODULE_FILE } : {}),
    };
    if (bitmaps.length) {
      writeFileSync(join(dir, BITMAPS_FILE), encodeSafetensors(bitmaps, { mask_seq_len: String(params.mask_seq_len), format: 'infllm-bitmap/uint64-lsb-first' }));
      sparse.bitmaps = { file: BITMAPS_FILE, mask_seq_len: params.mask_seq_len, rows: 'mask head (KV head when the GQA group shares), query token', bit_order: 'key block j = bit j % 64 of word j / 64', blocks: 'static', ...(dynamic.length ? { dynamic_layers: dynamic, dynamic_blocks: MODULE_FILE } : {}) };
    }
  }
  config.sparse_attention = sparse;
  const infllm = infllmV2SparseConfig(masks);
  if (infllm) config.sparse_config = { ...(config.sparse_config as Record<string, unknown> | undefined), ...infllm };
  writeFileSync(configFile, JSON.stringify(config, null, 2) + '\n');
  return dir;
}

/** Block-row bitmaps (heads, qBlocks, words) as token rows (heads, seq, words). */
export function tokenBitmap(b: { nMaskHeads: number; words: number; bits: BigUint64Array }, qBlocks: number, blockSize: number, seq: number): { shape: number[]; data: BigUint64Array } {
  const data = new BigUint64Array(b.nMaskHeads * seq * b.words);
  for (let h = 0; h < b.nMaskHeads; h++)
    for (let t = 0; t < seq; t++) {
      const from = (h * qBlocks + Math.floor(t / blockSize)) * b.words;
      data.set(b.bits.subarray(from, from + b.words), (h * seq + t) * b.words);
    }
  return { shape: [b.nMaskHeads, seq, b.words], data };
}

/** An indexer layer's weights must be in selector.safetensors (never exported without them). */
function checkSelectorWeights(dir: string, layers: ExportLayer[]): void {
  const needed = layers.flatMap((l) => (l.selector?.type === 'indexer' ? Object.values(l.selector.tensors) : []));
  const missing = missingSelectorTensors(dir, needed);
  if (missing === 'no file') throw new Error(`export: ${SELECTOR_FILE} was not written, but layers use the indexer selector (${needed[0]})`);
  if (missing.length) throw new Error(`export: ${SELECTOR_FILE} lacks ${missing.join(', ')}`);
}

/** Which of `names` dir/selector.safetensors lacks (reading its header only); 'no file' when it is absent and names are needed. */
export function missingSelectorTensors(dir: string, names: string[]): string[] | 'no file' {
  if (names.length === 0) return [];
  const file = join(dir, SELECTOR_FILE);
  if (!existsSync(file)) return 'no file';
  const st = SafetensorsFile.open(file);
  try {
    return names.filter((n) => !st.tensors.has(n));
  } finally {
    st.close();
  }
}

/** The sparse layers' block size, or {layer: size} when they differ. */
export function maskBlockSize(masks: (MaskSpec | null)[]): number | Record<string, number> {
  const sizes = new Map(masks.flatMap((m, layer) => (m ? [[layer, m.block_size] as const] : [])));
  const distinct = new Set(sizes.values());
  if (distinct.size === 1) return [...distinct][0];
  return Object.fromEntries([...sizes].map(([layer, size]) => [String(layer), size]));
}

/**
 * InfLLM-V2's sparse_config (MiniCPM 4.1 format) for the mask the run trained with, when every
 * sparse layer uses one infllm_v2 mask; null otherwise. The inverse of infllmV2MaskOf
 * (native/checkpoint/config.ts): topk counts the init and window blocks.
 */
export function infllmV2SparseConfig(masks: (MaskSpec | null)[]): Record<string, number> | null {
  const sparse = masks.filter((m): m is MaskSpec => m !== null);
  if (sparse.length === 0 || sparse.some((m) => m.selector !== 'infllm_v2' || JSON.stringify(m) !== JSON.stringify(sparse[0]))) return null;
  const m = sparse[0];
  const local = m.window_blocks + 1;
  return {
    block_size: m.block_size, kernel_size: m.block_size / 2, kernel_stride: m.block_size / 4, init_blocks: m.global_blocks,
    window_size: local * m.block_size, topk: m.global_blocks + local + m.topk_blocks, dense_len: m.dense_below,
  };
}

/** safetensors with int32 tensors: 8-byte little-endian header length, JSON header, raw data. */
export function encodeInt32Safetensors(tensors: { name: string; shape: number[]; data: Int32Array }[], metadata?: Record<string, string>): Buffer {
  return encodeSafetensors(tensors, metadata);
}

/** safetensors of int32 (I32) or uint64 (U64) tensors. */
export function encodeSafetensors(tensors: { name: string; shape: number[]; data: Int32Array | BigUint64Array }[], metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const expected = t.shape.reduce((a, b) => a * b, 1);
    if (expected !== t.data.length) throw new Error(`${t.name}: shape [${t.shape}] needs ${expected} values, has ${t.data.length}`);
    header[t.name] = { dtype: t.data instanceof BigUint64Array ? 'U64' : 'I32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // keep the data 8-byte aligned
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([head, Buffer.from(json), ...tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))]);
}
