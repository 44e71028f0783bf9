// Export: the source config's keys (auto_map, sparse_config, ...) survive, sparse_config carries the
// infllm_v2 mask the run trained with, and the FlexAttention mask file carries its BLOCK_SIZE.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { MaskSpec } from '../../core/schema';
import { initialModelState } from '../../core/model-state';
import type { EngineModel } from '../../native/engine-api';
import { writeSafetensors } from '../../native/checkpoint/safetensors';
import { BITMAPS_FILE, describeExportLayers, exportModel, infllmV2SparseConfig, maskBlockSize, MODULE_FILE, tokenBitmap } from './export';

const root = mkdtempSync(join(tmpdir(), 'export-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const INFLLM: MaskSpec = {
  block_size: 64, global_blocks: 1, global_rows: 0, window_blocks: 31, random_blocks: 0, random_seed: 0,
  topk_blocks: 31, selector: 'infllm_v2', dense_below: 8192, share_gqa_group: true,
};
const SOURCE = {
  model_type: 'minicpm', num_attention_heads: 4, num_key_value_heads: 2,
  auto_map: { AutoModelForCausalLM: 'modeling_minicpm.MiniCPMForCausalLM' },
  sparse_config: { kernel_size: 32, kernel_stride: 16, init_blocks: 1, block_size: 64, window_size: 2048, topk: 64, use_nope: false, dense_len: 8192 },
};

/** An engine model whose save writes the config.json the engine would (passthrough included). */
function fakeModel(): EngineModel {
  return {
    config: { num_attention_heads: 4, num_key_value_heads: 2 },
    save: async (dir: string) => writeFileSync(join(dir, 'config.json'), JSON.stringify(SOURCE)),
  } as unknown as EngineModel;
}

describe('export', () => {
  it('keeps auto_map and writes the trained infllm_v2 mask as sparse_config; the mask file carries BLOCK_SIZE', async () => {
    const state = initialModelState(2);
    state.layers[0].mask = { ...INFLLM, topk_blocks: 15, window_blocks: 15 };
    state.layers[1].mask = { ...INFLLM, topk_blocks: 15, window_blocks: 15 };
    writeFileSync(join(root, 'tokenizer.json'), '{}');
    const maskArrays = () => ({ heads: 4, qBlocks: 1, kvBlocks: 1, kv_num_blocks: new Int32Array(4), kv_indices: new Int32Array(4), q_num_blocks: new Int32Array(4), q_indices: new Int32Array(4) });
    const dir = await exportModel(fakeModel(), state, { path: 'out', flex_masks: true, mask_seq_len: 64 }, { runDir: root, tokenizer: join(root, 'tokenizer.json'), maskArrays });
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(config.auto_map).toEqual(SOURCE.auto_map);
    expect(config.sparse_config).toEqual({ ...SOURCE.sparse_config, window_size: 1024, topk: 32 });
    expect(config.sparse_attention.flex_masks.block_size).toBe(64);
    const file = readFileSync(join(dir, 'sparse_masks.safetensors'));
    const header = JSON.parse(file.subarray(8, 8 + Number(file.readBigUInt64LE(0))).toString());
    expect(header.__metadata__).toEqual({ mask_seq_len: '64', block_size: '64' });
  });

  it('leaves sparse_config alone unless every sparse layer has one infllm_v2 mask; names per-layer block sizes', () => {
    expect(infllmV2SparseConfig([INFLLM, null, INFLLM])).toEqual({ block_size: 64, kernel_size: 32, kernel_stride: 16, init_blocks: 1, window_size: 2048, topk: 64, dense_len: 8192 });
    expect(infllmV2SparseConfig([INFLLM, { ...INFLLM, topk_blocks: 3 }])).toBeNull();
    expect(infllmV2SparseConfig([{ ...INFLLM, selector: 'pooled' }])).toBeNull();
    expect(infllmV2SparseConfig([null])).toBeNull();
    expect(maskBlockSize([INFLLM, null, { ...INFLLM, block_size: 128 }])).toEqual({ 0: 64, 2: 128 });
  });

  it('a conversion with an indexer exports dynamic masks: selector weights named, the module copied, not static_only', async () => {
    const INDEXER: MaskSpec = { ...INFLLM, selector: 'indexer', topk_blocks: 2, window_blocks: 1, dense_below: 0 };
    const state = initialModelState(3);
    state.layers[1].mask = INDEXER;
    state.layers[2].mask = { ...INDEXER, selector: 'none', topk_blocks: 0 };
    const p = 'model.layers.1.self_attn.indexer.';
    const model = {
      config: { num_attention_heads: 4, num_key_value_heads: 2 },
      save: async (dir: string) => {
        writeFileSync(join(dir, 'config.json'), JSON.stringify(SOURCE));
        writeSafetensors(join(dir, 'selector.safetensors'), [
          { name: `${p}wq.weight`, shape: [2, 2], data: new Float32Array(4) }, { name: `${p}wk.weight`, shape: [1, 2], data: new Float32Array(2) },
          { name: `${p}weights_proj.weight`, shape: [2], data: new Float32Array(2) }]);
      },
    } as unknown as EngineModel;
    // 2 mask heads, 2 query blocks of 64 tokens: a lower-triangular bitmap per block row.
    const maskArrays = () => ({ heads: 4, qBlocks: 2, kvBlocks: 2, kv_num_blocks: new Int32Array(8), kv_indices: new Int32Array(16), q_num_blocks: new Int32Array(8), q_indices: new Int32Array(16),
      bitmap: { nMaskHeads: 2, words: 1, bits: BigUint64Array.from([1n, 3n, 1n, 3n]) } });
    const dir = await exportModel(model, state, { path: 'indexer', flex_masks: true, mask_seq_len: 100 },
      { runDir: root, tokenizer: join(root, 'tokenizer.json'), maskArrays, validationDensity: [null, 0.625, 0.5] });
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const sa = config.sparse_attention;
    expect(sa.flex_masks.static_only).toBe(false);
    expect(sa.flex_masks.dynamic_layers).toEqual([1]);
    expect(sa.module.file).toBe(MODULE_FILE);
    expect(readFileSync(join(dir, MODULE_FILE), 'utf8')).toContain('def load_selectors(');
    expect(sa.layers[0]).toEqual({ layer: 0, attention: 'dense', validation_density: null });
    expect(sa.layers[1]).toMatchObject({ attention: 'block_sparse', blocks: 'dynamic', validation_density: 0.625,
      selector: { type: 'indexer', file: 'selector.safetensors', tensors: { wq: `${p}wq.weight`, wk: `${p}wk.weight`, weights_proj: `${p}weights_proj.weight` } } });
    expect(sa.layers[2]).toMatchObject({ blocks: 'static', selector: { type: 'none' }, validation_density: 0.5 });
    expect(describeExportLayers(sa.layers)).toBe('layer 2: indexer top-2 (dynamic), validation density 62.5%; layer 3: none (static), validation density 50.0%');
    // InfLLM-style bitmaps: rows per mask head and query token (100 tokens: 64 of block 0, 36 of block 1).
    const file = readFileSync(join(dir, BITMAPS_FILE));
    const n = Number(file.readBigUInt64LE(0));
    const header = JSON.parse(file.subarray(8, 8 + n).toString());
    expect(header['layers.1.bitmap']).toEqual({ dtype: 'U64', shape: [2, 100, 1], data_offsets: [0, 1600] });
    const bits = new BigUint64Array(file.buffer.slice(file.byteOffset + 8 + n, file.byteOffset + 8 + n + 1600));
    expect([bits[0], bits[63], bits[64], bits[99], bits[100], bits[164]]).toEqual([1n, 1n, 3n, 3n, 1n, 3n]);
  });

  it('refuses to export an indexer layer whose weights were not saved', async () => {
    const state = initialModelState(1);
    state.layers[0].mask = { ...INFLLM, selector: 'indexer', topk_blocks: 1 };
    await expect(exportModel(fakeModel(), state, { path: 'nosel', flex_masks: false, mask_seq_len: 64 }, { runDir: root, tokenizer: join(root, 'tokenizer.json') }))
      .rejects.toThrow(/selector\.safetensors was not written/);
  });

  it('expands block-row bitmaps to token rows, the tail block included', () => {
    const t = tokenBitmap({ nMaskHeads: 1, words: 1, bits: BigUint64Array.from([1n, 3n, 5n]) }, 3, 16, 40);
    expect(t.shape).toEqual([1, 40, 1]);
    expect([t.data[15], t.data[16], t.data[31], t.data[32], t.data[39]]).toEqual([1n, 3n, 3n, 5n, 5n]);
  });
});
