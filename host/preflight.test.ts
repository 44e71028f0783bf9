import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { engine } from '../native/index';
import { validateModelConfig } from '../native/checkpoint/config';
import { countParams, entropyBytes, estimateTrainMemory, formatBytes, maskBytes, preflightPipeline, type ConfigShape } from './preflight';

// The shipped demo model's shape (models/demo/config.json).
const demo: ConfigShape = {
  model_type: 'llama', vocab_size: 4096, hidden_size: 128, intermediate_size: 384, num_hidden_layers: 12,
  num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32, tie_word_embeddings: true,
};

const root = mkdtempSync(join(tmpdir(), 'preflight-'));
const modelsDir = join(root, 'models');
mkdirSync(join(modelsDir, 'demo'), { recursive: true });
writeFileSync(join(modelsDir, 'demo', 'config.json'), JSON.stringify(demo));
writeFileSync(join(modelsDir, 'demo', 'model.safetensors'), '');
writeFileSync(join(modelsDir, 'demo', 'tokenizer.json'), '{}');
mkdirSync(join(root, 'nomodel'));
writeFileSync(join(root, 'nomodel', 'config.json'), JSON.stringify({ ...demo, num_hidden_layers: 6 }));
writeFileSync(join(root, 'nomodel', 'tokenizer.json'), '{}');
mkdirSync(join(root, 'notok'));
writeFileSync(join(root, 'notok', 'config.json'), JSON.stringify(demo));
writeFileSync(join(root, 'bad-config.json'), '{"hidden_size": -1}');
writeFileSync(join(root, 'corpus.txt'), 'hello world\n');
afterAll(() => rmSync(root, { recursive: true, force: true }));

const ctx = { baseDir: root, modelsDir, totalMemoryBytes: 8 * 2 ** 30 };

function pipeline(overrides: { model?: object; dataset?: object; train?: object; block?: number } = {}) {
  return {
    version: 1, seed: 1, backend: 'cpu',
    nodes: [
      { id: 'm', kind: 'model', params: { source: 'builtin:demo', num_layers: 12, content_hash: '', ...overrides.model } },
      { id: 'd', kind: 'dataset', params: { source: 'builtin:brown', ...overrides.dataset } },
      { id: 'r', kind: 'replace', params: { layers: [4, 6], mask: { block_size: overrides.block ?? 32 } } },
      { id: 't', kind: 'train', params: { batch_size: 4, curriculum: [{ from_step: 0, seq_len: 64 }, { from_step: 10, seq_len: 256 }], ...overrides.train } },
    ],
    links: [{ from: 'm', to: 'r' }, { from: 'r', to: 't' }, { from: 'd', to: 't' }],
  };
}

describe('memory estimate', () => {
  it('counts Llama parameters like the checkpoint holds them', () => {
    // embed 4096*128 (tied) + 12 * (q 128*128 + k,v 2*128*64 + o 128*128 + mlp 3*128*384 + 2 norms*128) + final norm 128
    expect(countParams(demo)).toBe(524_288 + 12 * (16_384 + 16_384 + 16_384 + 147_456 + 256) + 128);
    expect(countParams({ ...demo, tie_word_embeddings: false }) - countParams(demo)).toBe(4096 * 128);
    expect(countParams({ ...demo, model_type: 'qwen3' }) - countParams(demo)).toBe(12 * 2 * 32);
  });

  it('counts every expert of a mixture-of-experts model (memory), not only the active ones', () => {
    const moe = { ...demo, model_type: 'qwen3_moe', tie_word_embeddings: true, num_experts: 8, num_experts_per_tok: 2, moe_intermediate_size: 64, mlp_only_layers: [3] };
    // 11 MoE layers trade the dense MLP (3*128*384) for a router (8*128) and 8 experts (3*128*64 each).
    expect(countParams(moe) - countParams({ ...demo, model_type: 'qwen3' })).toBe(11 * (8 * 128 + 8 * 3 * 128 * 64 - 3 * 128 * 384));
  });

  it('counts what the engine builds: an omitted tie_word_embeddings is untied for llama, tied for minicpm', () => {
    const { tie_word_embeddings: _, ...untold } = demo;
    expect(countParams(untold)).toBe(countParams({ ...demo, tie_word_embeddings: false }));
    expect(countParams({ ...untold, model_type: 'minicpm' })).toBe(countParams(demo));
    for (const config of [untold, { ...untold, model_type: 'qwen3' }, { ...untold, model_type: 'minicpm' }]) {
      const model = engine.createModel(validateModelConfig(config), { seed: 1 });
      expect(countParams(config)).toBe(model.numParams);
      model.dispose();
    }
  });

  it('names the file and field of a config the engine refuses', () => {
    expect(() => countParams({ ...demo, model_type: 'gpt2' }, 'x/config.json')).toThrow(/^x\/config\.json: model_type: must be one of llama, qwen3, qwen3_moe, minicpm/);
  });

  it('adds four fp32 copies of the weights and ~20 activations per token, layer and channel', () => {
    const e = estimateTrainMemory(demo, 4, 256);
    expect(e.params).toBe(countParams(demo) * 16);
    expect(e.activations).toBe(4 * 256 * 128 * 12 * 20 * 4);
    expect(e.total).toBe(e.params + e.activations);
    expect(formatBytes(e.total)).toBe('164 MiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
  });
});

describe('preflightPipeline', () => {
  it('resolves the built-in demo model and notes its size and the stage memory', async () => {
    const report = await preflightPipeline(pipeline(), [], ctx);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.notes.m).toBe('loads: llama, 12 layers, 2.9M params');
    expect(report.notes.d).toBe('Brown Corpus (built-in)');
    // layers 4-6 sparse, block 32, 2 KV heads, 256 tokens: 3 masks
    expect(report.memoryBytes.t).toBe(estimateTrainMemory(demo, 4, 256).total + 3 * maskBytes(256, 32, 2));
    expect(report.notes.t).toMatch(/^~164 MiB peak \(weights, grads, Adam 44.0 MiB; activations 120 MiB; masks 2.5 KiB\)$/);
  });

  it('adds the attention-entropy term\'s dq and dk buffers of every layer when its weight is on', async () => {
    // 12 layers x batch 4 x 256 tokens x (4 query + 2 KV heads) x head dim 32, fp32
    expect(entropyBytes(demo, 4, 256)).toBe(12 * 4 * 256 * 6 * 32 * 4);
    const off = await preflightPipeline(pipeline({ train: { attn_entropy_weight: 0 } }), [], ctx);
    const on = await preflightPipeline(pipeline({ train: { attn_entropy_weight: 0.05 } }), [], ctx);
    expect(on.memoryBytes.t - off.memoryBytes.t).toBe(entropyBytes(demo, 4, 256));
    expect(off.notes.t).not.toMatch(/entropy/);
    expect(on.notes.t).toMatch(/; entropy term 9.0 MiB\)$/);
  });

  it('keeps schema problems first and still checks resources', async () => {
    const schema = [{ path: 'nodes[3].params.lr', message: 'must be > 0', node: 't' }];
    const report = await preflightPipeline(pipeline({ model: { num_layers: 10 } }), schema, ctx);
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toEqual(schema[0]);
    expect(report.problems[1]).toEqual({ path: 'nodes[0].params.num_layers', node: 'm', message: expect.stringMatching(/^model has 12 layers \(num_hidden_layers in .*config\.json\), node says 10$/) });
  });

  it('reports missing model directories, missing weights, bad configs and unknown built-ins', async () => {
    const paths = async (model: object) => (await preflightPipeline(pipeline({ model }), [], ctx)).problems.map((p) => `${p.path}: ${p.message}`);
    expect(await paths({ source: 'no/such/dir' })).toEqual([`nodes[0].params.source: model directory not found: ${join(root, 'no/such/dir')}`]);
    expect(await paths({ source: 'nomodel', num_layers: 6 })).toEqual([`nodes[0].params.source: no *.safetensors weights in ${join(root, 'nomodel')}`]);
    expect(await paths({ source: `init:${join(root, 'bad-config.json')}` })).toEqual([`nodes[0].params.source: ${join(root, 'bad-config.json')}: vocab_size must be a positive integer`]);
    expect(await paths({ source: 'init:nomodel/config.json', num_layers: 6 })).toEqual([]);
    expect(await paths({ source: 'init:notok/config.json' })).toEqual([`nodes[0].params.source: no tokenizer.json at ${join(root, 'notok/tokenizer.json')}`]);
    expect(await paths({ source: 'builtin:gpt5' })).toEqual(['nodes[0].params.source: unknown built-in model "gpt5" (this build ships builtin:demo, builtin:demo-moe)']);
  });

  it('checks dataset paths', async () => {
    const report = await preflightPipeline(pipeline({ dataset: { source: 'corpus.txt' } }), [], ctx);
    expect(report.ok).toBe(true);
    expect(report.notes.d).toBe('12 B of text');
    const missing = await preflightPipeline(pipeline({ dataset: { source: 'gone.jsonl' } }), [], ctx);
    expect(missing.problems).toEqual([{ path: 'nodes[1].params.source', node: 'd', message: `dataset not found: ${join(root, 'gone.jsonl')}` }]);
  });

  it('refuses sequences shorter than a block of an earlier Replace node', async () => {
    const report = await preflightPipeline(pipeline({ block: 128 }), [], ctx);
    expect(report.problems).toEqual([{ path: 'nodes[3].params.curriculum[0].seq_len', node: 't', message: 'sequence length 64 is shorter than block size 128 of node "r"' }]);
  });

  it('flags a stage that would not fit in memory on the CPU', async () => {
    const report = await preflightPipeline(pipeline({ train: { batch_size: 4096 } }), [], ctx);
    expect(report.problems.map((p) => p.path)).toEqual(['nodes[3].params.batch_size']);
    expect(report.problems[0].message).toMatch(/^estimated peak memory 120 GiB exceeds this machine's 8\.0 GiB/);
  });

  it('never throws on shapeless input', async () => {
    for (const value of [null, 42, { nodes: 'x' }, { nodes: [null, 3, { kind: 'train', params: null }] }]) {
      const report = await preflightPipeline(value, [], ctx);
      expect(report.ok).toBe(true);
    }
  });
});
