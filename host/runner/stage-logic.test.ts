import { describe, expect, it } from 'vitest';
import { stepBackSparsity } from '../../core/sparsity-step';
import { describeLayers, layerIndices } from '../../core/model-state';
import { aggregateEval } from './eval-metrics';
import { encodeInt32Safetensors } from './export';
import type { MaskSpec, ParamKind } from '../../core/schema';
import { fromLegacyModelState } from './model-state';
import { readCheckpointState, STATE_FILE } from './checkpoint';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EvalResult } from '../../native/engine-api';

const mask: MaskSpec = { block_size: 16, global_blocks: 1, global_rows: 0, window_blocks: 1, random_blocks: 4, random_seed: 7, topk_blocks: 0, selector: 'none', dense_below: 0, share_gqa_group: true };

describe('layer ranges', () => {
  it('turn 1-based inclusive ranges into 0-based indices', () => {
    expect(layerIndices([4, 6], 12)).toEqual([3, 4, 5]);
    expect(layerIndices([1, 1], 1)).toEqual([0]);
  });
  it('reject ranges outside the model, naming the field', () => {
    expect(() => layerIndices([11, 13], 12, 'r1.layers')).toThrow('r1.layers: range [11, 13] is outside the model\'s layers 1-12');
    expect(() => layerIndices([0, 2], 12)).toThrow(/outside/);
    expect(() => layerIndices([5, 4], 12)).toThrow(/outside/);
  });
  it('are described in the schema\'s numbering', () => {
    expect(describeLayers([3, 4, 5])).toBe('layers 4-6');
    expect(describeLayers([0])).toBe('layer 1');
    expect(describeLayers([0, 2])).toBe('layers 1,3');
    expect(describeLayers('all')).toBe('all layers');
  });
});

describe('stepBackSparsity', () => {
  it('adds random blocks when the mask has them, else widens the window', () => {
    expect(stepBackSparsity(mask)).toEqual({ mask: { ...mask, random_blocks: 6 }, change: 'random_blocks 4 -> 6' });
    const windowOnly = { ...mask, random_blocks: 0, window_blocks: 2 };
    expect(stepBackSparsity(windowOnly)).toEqual({ mask: { ...windowOnly, window_blocks: 3 }, change: 'window_blocks 2 -> 3' });
  });
});

describe('aggregateEval', () => {
  const result = (loss: number, kl: number | null): EvalResult => ({
    loss, loss_teacher: 2, attn_kl: [null, kl, kl], attn_recall: [null, 0.9, 0.8], density: [null, 0.5, 0.25],
    flops_saved: [null, 0.6, 0.8], logit_kl: 0.1, out_cos: 0.99, hidden_mse: 0.01,
  });
  it('averages batches, derives perplexities and means over replaced layers only', () => {
    const m = aggregateEval([result(2.2, 0.1), result(2.4, 0.3)], { stage: 1, step: 20 });
    expect(m.loss).toBeCloseTo(2.3, 12);
    expect(m.ppl).toBeCloseTo(Math.exp(2.3), 9);
    expect(m.ppl_ratio).toBeCloseTo(Math.exp(2 - 2.3), 9);
    expect(m.attn_kl).toBeCloseTo(0.2, 12);
    expect(m.attn_recall).toBeCloseTo(0.85, 12);
    expect(m.density).toBeCloseTo(0.375, 12);
    expect(m.sparsity).toBeCloseTo(0.625, 12);
    expect(m.attn_flops_saved).toBeCloseTo((0.5 + 0.75) / 3, 12);
    // Token-level count: the engine's per-layer shares, dense layers counting 0, over all 3 layers.
    expect(m.flops_saved).toBeCloseTo((0.6 + 0.8) / 3, 12);
    expect(m.per_layer.flops_saved).toEqual([null, 0.6, 0.8]);
    expect(m.per_layer.attn_kl[0]).toBeNull();
    expect(m.per_layer.attn_kl[1]).toBeCloseTo(0.2, 12);
  });
  it('reports a dense model as density 1, nothing saved', () => {
    const dense: EvalResult = { ...result(2, null), attn_kl: [null], attn_recall: [null], density: [null], flops_saved: [null] };
    const m = aggregateEval([dense], { stage: 0, step: 1 });
    expect([m.density, m.attn_kl, m.attn_recall, m.attn_flops_saved, m.flops_saved]).toEqual([1, 0, 1, 0, 0]);
  });
  it('refuses zero batches', () => {
    expect(() => aggregateEval([], { stage: 0, step: 0 })).toThrow('eval: no validation batches were evaluated');
  });
});

describe('encodeInt32Safetensors', () => {
  it('writes a header PyTorch/safetensors can parse and the raw little-endian data', () => {
    const buf = encodeInt32Safetensors([{ name: 'a', shape: [2, 2], data: Int32Array.from([1, 2, 3, -4]) }], { k: 'v' });
    const headerLen = Number(buf.readBigUInt64LE(0));
    expect(headerLen % 8).toBe(0);
    const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString());
    expect(header).toEqual({ __metadata__: { k: 'v' }, a: { dtype: 'I32', shape: [2, 2], data_offsets: [0, 16] } });
    const data = buf.subarray(8 + headerLen);
    expect(Array.from(new Int32Array(data.buffer.slice(data.byteOffset, data.byteOffset + 16)))).toEqual([1, 2, 3, -4]);
  });
  it('refuses data that does not fill its shape', () => {
    expect(() => encodeInt32Safetensors([{ name: 'x', shape: [3], data: new Int32Array(2) }])).toThrow('x: shape [3] needs 3 values, has 2');
  });
});

describe('checkpoint model state', () => {
  it('reads a format-1 record (masks + trainable calls) into core\'s model state, keeping the calls to replay', () => {
    const legacy = {
      masks: [null, { ...mask, selector: 'indexer' as const, topk_blocks: 2 }],
      trainableOps: [
        { selection: { layers: 'all' as const, kinds: ['q', 'k', 'v', 'o', 'mlp', 'norms', 'embeddings'] as ParamKind[] }, trainable: false, stage: 0 },
        { selection: { layers: [1], kinds: ['selector'] as ParamKind[] }, trainable: true, stage: 0 },
        { selection: { layers: [1], kinds: ['q'] as ParamKind[] }, trainable: true, stage: 0 },
      ],
    };
    const state = fromLegacyModelState(legacy);
    expect(state.layers.map((l) => [l.attention, l.trainable.join('+')])).toEqual([['dense', ''], ['sparse', 'q+selector']]);
    expect(state.outside.trainable).toEqual([]);
    expect(state.trainableOps).toEqual(legacy.trainableOps);
  });

  it('reads a format-1 state.json from disk as format 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ckpt-'));
    try {
      const legacy = { masks: [null, mask], trainableOps: [{ selection: { layers: [1], kinds: ['q'] }, trainable: true, stage: 0 }] };
      writeFileSync(join(dir, STATE_FILE), JSON.stringify({ format: 'sparse-studio-checkpoint/1', stage: 0, step: 4, lr: 0.001, modelState: legacy }));
      const read = readCheckpointState(dir);
      expect([read.format, read.step, read.modelState.layers[1].attention, read.modelState.trainableOps.length]).toEqual(['sparse-studio-checkpoint/2', 4, 'sparse', 1]);
      writeFileSync(join(dir, STATE_FILE), JSON.stringify({ format: 'sparse-studio-checkpoint/9' }));
      expect(() => readCheckpointState(dir)).toThrow("format: expected 'sparse-studio-checkpoint/2'");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
