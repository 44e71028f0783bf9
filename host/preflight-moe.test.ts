// Preflight on mixture-of-experts pipelines: the built-in demo-moe's size and memory count every
// expert (a token runs 2 of 8, but Adam keeps all of them), and MoE settings on a dense model are
// refused with one line naming the node and field.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { engineAvailable } from '../native/index';
import { estimateTrainMemory, formatBytes, preflightPipeline, type ConfigShape } from './preflight';

const modelsDir = fileURLToPath(new URL('../models', import.meta.url));
const ctx = { baseDir: process.cwd(), modelsDir, totalMemoryBytes: 64 * 2 ** 30 };

function pipeline(source: string, train: object, checks: object[] = []) {
  return {
    version: 1, seed: 1, backend: 'cpu',
    nodes: [
      { id: 'm', kind: 'model', params: { source, num_layers: 12, content_hash: '' } },
      { id: 'd', kind: 'dataset', params: { source: 'builtin:brown' } },
      { id: 't', kind: 'train', params: { batch_size: 4, curriculum: [{ from_step: 0, seq_len: 256 }], ...train } },
      { id: 'g', kind: 'gate', params: { checks } },
    ],
    links: [{ from: 'm', to: 't' }, { from: 'd', to: 't' }, { from: 't', to: 'g' }],
  };
}

describe.skipIf(!engineAvailable())('preflight on the MoE demo', () => {
  // models/demo-moe/config.json: 12 layers of hidden 128, MoE (8 experts of 384, router 8x128) in
  // layers 2, 4, ..., 12, the dense MLP (3 x 128 x 384) in the others; q/k norms of head_dim 32.
  const attention = 128 * 128 * 2 + 128 * 64 * 2 + 2 * 128 + 2 * 32;
  const params = 4096 * 128 + 12 * attention + 6 * 3 * 128 * 384 + 6 * (8 * 128 + 8 * 3 * 128 * 384) + 128;

  it('counts all experts in its size and memory', async () => {
    expect(params).toBe(9_086_848);
    const report = await preflightPipeline(pipeline('builtin:demo-moe', { load_balance: 'seed' }), [], ctx);
    expect(report.problems).toEqual([]);
    expect(report.notes.m).toBe('loads: qwen3_moe, 12 layers, 9.1M params');
    const config = { model_type: 'qwen3_moe', vocab_size: 4096, hidden_size: 128, intermediate_size: 384, num_hidden_layers: 12, num_attention_heads: 4,
      num_key_value_heads: 2, head_dim: 32, tie_word_embeddings: true, num_experts: 8, num_experts_per_tok: 2, moe_intermediate_size: 384, decoder_sparse_step: 2 } as ConfigShape;
    const expected = params * 4 * 4 + 4 * 256 * 128 * 12 * 20 * 4;
    expect(estimateTrainMemory(config, 4, 256).total).toBe(expected);
    expect(report.memoryBytes.t).toBe(expected);
    expect(report.notes.t).toContain(`weights, grads, Adam ${formatBytes(params * 16)}`);
  });

  it('refuses a load-balancing term and MoE gate checks on a dense model, one line each', async () => {
    const report = await preflightPipeline(pipeline('builtin:demo', { load_balance: 'switch' }, [{ metric: 'expert_usage_min', op: '>=', threshold: 0.5 }]), [], ctx);
    expect(report.problems).toEqual([
      { path: 'nodes[2].params.load_balance', node: 't', message: "'switch' needs a mixture-of-experts model, but this llama model is dense (set it to 'none')" },
      { path: 'nodes[3].params.checks[0].metric', node: 'g', message: 'expert_usage_min needs a mixture-of-experts model, but this llama model is dense' },
    ]);
    const none = await preflightPipeline(pipeline('builtin:demo', { load_balance: 'none' }), [], ctx);
    expect(none.problems).toEqual([]);
  });
});
