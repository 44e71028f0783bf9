// Keeps the shipped demo pieces consistent with each other: config, tokenizer, template and the
// validation text that the README's perplexity is measured on.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Pipeline, TrainParams } from '../core/schema';
import { validatePipeline } from '../core/validate';
import { validateModelConfig } from '../native/checkpoint/config';
import { loadDataset } from '../host/data/dataset';
import { loadTokenizer } from '../host/data/tokenizer';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const demo = path.join(root, 'models/demo');
const template = JSON.parse(readFileSync(path.join(root, 'templates/pretrain-demo.json'), 'utf8')) as Pipeline;
const config = JSON.parse(readFileSync(path.join(demo, 'config.json'), 'utf8'));

describe('the demo model directory', () => {
  it('has a 12-layer GQA Llama config the engine accepts, sized to the tokenizer', () => {
    const c = validateModelConfig(config, 'models/demo/config.json');
    expect(c.model_type).toBe('llama');
    expect(c.num_hidden_layers).toBe(12);
    expect(c.num_attention_heads / c.num_key_value_heads).toBe(2);
    expect(c.tie_word_embeddings).toBe(true);
    expect(c.max_position_embeddings).toBe(1024);
    expect(c.vocab_size).toBe(loadTokenizer(demo).vocabSize);
  });

  it('stays under 25 MB', () => {
    const files = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'validation.txt', 'model.safetensors', 'README.md'];
    const bytes = files.map((f) => path.join(demo, f)).filter(existsSync).reduce((sum, f) => sum + statSync(f).size, 0);
    expect(bytes).toBeLessThan(25 * 1024 * 1024);
  });

  it('is made by a valid pretraining template: random init from the config, Brown, training then sharpening, export', () => {
    expect(validatePipeline(template)).toEqual([]);
    const kinds = template.nodes.map((n) => n.kind).sort();
    expect(kinds).toEqual(['dataset', 'export', 'model', 'train', 'train']);
    // Plain next-token training first, then a stage that adds the attention-entropy term (the
    // demo's heads concentrate as a large LLM's do; models/demo/README.md).
    const [pretrain, sharpen] = template.nodes.filter((n) => n.kind === 'train').map((n) => n.params as TrainParams);
    expect(pretrain.attn_entropy_weight ?? 0).toBe(0);
    expect(sharpen.attn_entropy_weight).toBeGreaterThan(0);
    const model = template.nodes.find((n) => n.kind === 'model')!;
    expect(model.params).toMatchObject({ source: 'init:models/demo/config.json', num_layers: 12 });
    expect(template.nodes.find((n) => n.kind === 'dataset')!.params).toMatchObject({ source: 'builtin:brown' });
    expect(template.nodes.find((n) => n.kind === 'export')!.params).toMatchObject({ path: 'models/demo' });
  });

  it('ships validation.txt that encodes to exactly the validation split of the template', async () => {
    const node = template.nodes.find((n) => n.kind === 'dataset');
    if (node?.kind !== 'dataset') throw new Error('template has no dataset node');
    const dataset = await loadDataset(node.params, path.join(demo, 'tokenizer.json'));
    const ids = loadTokenizer(demo).encode(readFileSync(path.join(demo, 'validation.txt'), 'utf8'));
    expect(ids.length).toBe(dataset.validationTokens);
    expect(Int32Array.from(ids)).toEqual(dataset.validationStream);
  });
});
