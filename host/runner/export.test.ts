// Export: the source config's keys (auto_map, sparse_config, ...) survive, sparse_config carries the
// infllm_v2 mask the run trained with, and the FlexAttention mask file carries its BLOCK_SIZE.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { MaskSpec } from '../../core/schema';
import { initialModelState } from '../../core/model-state';
import type { EngineModel } from '../../native/engine-api';
import { exportModel, infllmV2SparseConfig, maskBlockSize } from './export';

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
});
