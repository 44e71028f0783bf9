// Test support: a tiny real model (random init from a 2-layer config, the demo tokenizer), a
// small deterministic JSONL corpus and a two-stage pipeline builder, so whole-runner tests
// run the real engine in seconds.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GateParams, MaskSpec, Pipeline, PipelineNode, TrainParams } from '../../../core/schema';

const DEMO_TOKENIZER = fileURLToPath(new URL('../../../models/demo/tokenizer.json', import.meta.url));

export const TINY_CONFIG = {
  model_type: 'llama', vocab_size: 4096, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
  num_attention_heads: 2, num_key_value_heads: 1, head_dim: 16, rms_norm_eps: 1e-5, rope_theta: 10000,
  max_position_embeddings: 256, tie_word_embeddings: true,
};

const WORDS = ('the of and to in that is was he for it with as his on be at by had are but from or have an they which one you were ' +
  'her all she there would their we him been has when who will more no if out so said what up its about into than them can only other ' +
  'new some could time these two may then do first any my now such like our over man me even most made after also did many before must ' +
  'through back years where much your way well down should because each just those people how too little state good very make world').split(' ');

/** Writes config.json + tokenizer.json + corpus.jsonl into `dir`; returns their paths. */
export function writeTinyFixture(dir: string): { config: string; corpus: string } {
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify(TINY_CONFIG, null, 2));
  copyFileSync(DEMO_TOKENIZER, join(dir, 'tokenizer.json'));
  // A linear congruential generator keeps the corpus identical everywhere.
  let x = 12345;
  const next = () => { x = (x * 1103515245 + 12345) % 2147483648; return x / 2147483648; };
  const lines: string[] = [];
  for (let d = 0; d < 120; d++) {
    const words: string[] = [];
    for (let w = 0; w < 160; w++) words.push(WORDS[Math.floor(next() * WORDS.length)]);
    lines.push(JSON.stringify({ text: words.join(' ') + '.' }));
  }
  const corpus = join(dir, 'corpus.jsonl');
  writeFileSync(corpus, lines.join('\n') + '\n');
  return { config, corpus };
}

export const TINY_MASK: MaskSpec = {
  block_size: 16, global_blocks: 1, global_rows: 0, window_blocks: 0, random_blocks: 1, random_seed: 3,
  topk_blocks: 0, selector: 'none', dense_below: 0, share_gqa_group: true,
};

export function tinyTrain(over: Partial<TrainParams> = {}): TrainParams {
  return {
    steps: 4, batch_size: 2, curriculum: [{ from_step: 0, seq_len: 48 }, { from_step: 2, seq_len: 64 }], lr: 3e-3,
    schedule: 'warmup_cosine', warmup_steps: 1, weight_decay: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, grad_clip: 1,
    precision: 'fp32', eval_every: 2, eval_batches: 2, plateau_patience: 0, plateau_action: 'decay_lr', plateau_factor: 0.7, ...over,
  };
}

export function tinyGate(over: Partial<GateParams> = {}): GateParams {
  return { checks: [{ metric: 'out_cos', op: '>=', threshold: -1 }], on_fail: 'stop', max_retries: 1, lr_factor: 0.5, eval_batches: 2, ...over };
}

/**
 * Two stages on the 2-layer model: stage 1 makes layer 2 block-sparse and trains its q/k/v,
 * stage 2 does the same for layer 1; then an Export.
 */
export function tinyPipeline(fixture: { config: string; corpus: string }, over: {
  train1?: Partial<TrainParams>; train2?: Partial<TrainParams>; gate1?: Partial<GateParams>; gate2?: Partial<GateParams>; mask2?: Partial<MaskSpec>;
} = {}): Pipeline {
  const nodes: PipelineNode[] = [
    { id: 'model', kind: 'model', params: { source: `init:${fixture.config}`, num_layers: 2, content_hash: '' } },
    { id: 'data', kind: 'dataset', params: { source: fixture.corpus, format: 'auto', text_field: 'text', validation_fraction: 0.2, seed: 5, content_hash: '' } },
    { id: 'a1-freeze', kind: 'freeze', params: { layers: 'all', kinds: ['q', 'k', 'v', 'o', 'mlp', 'norms', 'embeddings'] } },
    { id: 'a2-replace', kind: 'replace', params: { layers: [2, 2], mask: TINY_MASK } },
    { id: 'a3-unfreeze', kind: 'unfreeze', params: { layers: [2, 2], kinds: ['q', 'k', 'v'], replaced_only: true } },
    { id: 'a4-distill', kind: 'distill', params: { task_weight: 1, attn_kl_weight: 0.2, logit_kl_weight: 0.2, hidden_mse_weight: 0.1, temperature: 1 } },
    { id: 'a5-train', kind: 'train', label: 'First', params: tinyTrain(over.train1) },
    { id: 'a6-gate', kind: 'gate', params: tinyGate(over.gate1) },
    { id: 'b1-replace', kind: 'replace', params: { layers: [1, 1], mask: { ...TINY_MASK, random_seed: 4, ...over.mask2 } } },
    { id: 'b2-unfreeze', kind: 'unfreeze', params: { layers: [1, 1], kinds: ['q', 'k', 'v'], replaced_only: true } },
    { id: 'b3-train', kind: 'train', label: 'Second', params: tinyTrain({ lr: 2e-3, ...over.train2 }) },
    { id: 'b4-gate', kind: 'gate', params: tinyGate(over.gate2) },
    { id: 'c1-export', kind: 'export', params: { path: 'export', flex_masks: true, mask_seq_len: 64 } },
  ];
  const chain = ['model', 'a1-freeze', 'a2-replace', 'a3-unfreeze', 'a4-distill', 'a5-train', 'a6-gate', 'b1-replace', 'b2-unfreeze', 'b3-train', 'b4-gate', 'c1-export'];
  const links = chain.slice(1).map((to, i) => ({ from: chain[i], to }));
  for (const to of ['a5-train', 'a6-gate', 'b3-train', 'b4-gate']) links.push({ from: 'data', to });
  return { version: 1, info: { name: 'tiny', author: 'tests', description: 'two tiny stages' }, seed: 42, backend: 'cpu', nodes, links };
}
