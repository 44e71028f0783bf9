// The shipped MoE demo (models/demo-moe) and its recipe: a valid qwen3_moe checkpoint under
// 25 MB, upcycled so that each MoE block starts as the dense MLP it came from, stored in bfloat16
// rounded to nearest even, and made by a valid training template.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Pipeline } from '../core/schema';
import { validatePipeline } from '../core/validate';
import { validateModelConfig } from '../native/checkpoint/config';
import { isMoeLayer } from '../native/checkpoint/families';
import { loadCheckpoint } from '../native/checkpoint/load';
import { encodeSafetensors, toBf16 } from '../native/checkpoint/safetensors';
import { engineAvailable } from '../native/index';
import { DENSE_DIR, MOE_DIR, upcycle } from './demo-moe';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

describe('toBf16', () => {
  it('rounds to the nearest bfloat16, ties to even, against a float64 search over neighbours', () => {
    const values = Float32Array.from([0, -0, 1, -2.5, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -9, 3.14159, -1e-20, 6e4, Infinity, -Infinity]);
    const bits = toBf16(values);
    const widen = (h: number) => new Float32Array(new Uint32Array([h << 16]).buffer)[0];
    values.forEach((v, i) => {
      if (!Number.isFinite(v)) { expect(widen(bits[i])).toBe(v); return; }
      const down = new Uint32Array(new Float32Array([v]).buffer)[0] >>> 16;
      const candidates = [down, down + 1].map(widen);
      const err = candidates.map((c) => Math.abs(c - v));
      const best = err[0] < err[1] ? candidates[0] : err[1] < err[0] ? candidates[1] : candidates[(down & 1) === 0 ? 0 : 1];
      expect(widen(bits[i])).toBe(best);
    });
    expect(Number.isNaN(widen(toBf16(Float32Array.from([NaN]))[0]))).toBe(true);
  });
  it('writes BF16 safetensors at half the size of F32', () => {
    const t = [{ name: 'w', shape: [4, 8], data: new Float32Array(32).fill(0.5) }];
    const f32 = encodeSafetensors(t), bf16 = encodeSafetensors(t, undefined, 'BF16');
    expect(f32.length - bf16.length).toBe(64);
  });
});

describe('the MoE demo model directory', () => {
  const config = JSON.parse(readFileSync(path.join(MOE_DIR, 'config.json'), 'utf8'));

  it('is a qwen3_moe config the engine accepts: 8 experts, top-2, renormalised, MoE every second layer', () => {
    const c = validateModelConfig(config, 'models/demo-moe/config.json');
    expect(c).toMatchObject({ model_type: 'qwen3_moe', num_experts: 8, num_experts_per_tok: 2, norm_topk_prob: true, moe_intermediate_size: 384, num_hidden_layers: 12, tie_word_embeddings: true });
    expect(Array.from({ length: 12 }, (_, l) => isMoeLayer(c, l))).toEqual(Array.from({ length: 12 }, (_, l) => l % 2 === 1));
    expect(config.architectures).toEqual(['Qwen3MoeForCausalLM']);
    expect(config.sparse_attention).toBeUndefined();
  });

  it('stays under 25 MB', () => {
    const files = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'validation.txt', 'model.safetensors', 'README.md'];
    const bytes = files.map((f) => path.join(MOE_DIR, f)).filter(existsSync).reduce((sum, f) => sum + statSync(f).size, 0);
    expect(bytes).toBeLessThan(25 * 1024 * 1024);
  });

  it('shares the dense demo tokenizer and validation text', () => {
    for (const f of ['tokenizer.json', 'validation.txt']) expect(readFileSync(path.join(MOE_DIR, f)).equals(readFileSync(path.join(DENSE_DIR, f)))).toBe(true);
  });

  it('is made by a valid training template that exports to models/demo-moe', () => {
    const template = JSON.parse(readFileSync(path.join(root, 'templates/pretrain-demo-moe.json'), 'utf8')) as Pipeline;
    expect(validatePipeline(template)).toEqual([]);
    expect(template.nodes.find((n) => n.kind === 'model')!.params).toMatchObject({ source: 'models/demo-moe', num_layers: 12 });
    expect(template.nodes.find((n) => n.kind === 'train')!.params).toMatchObject({ load_balance: 'switch' });
    expect(template.nodes.find((n) => n.kind === 'export')!.params).toMatchObject({ path: 'models/demo-moe' });
  });
});

describe.skipIf(!engineAvailable())('upcycle', () => {
  const dense = loadCheckpoint(DENSE_DIR);
  const moe = upcycle(dense);

  it('copies the dense tensors, starts q/k norms at ones and keeps the dense MLP in the dense layers', () => {
    expect(moe.tensors.get('model.embed_tokens.weight')).toEqual(dense.tensors.get('model.embed_tokens.weight'));
    expect(moe.tensors.get('model.layers.3.self_attn.o_proj.weight')).toEqual(dense.tensors.get('model.layers.3.self_attn.o_proj.weight'));
    expect(moe.tensors.get('model.layers.0.mlp.up_proj.weight')).toEqual(dense.tensors.get('model.layers.0.mlp.up_proj.weight'));
    expect([...moe.tensors.get('model.layers.5.self_attn.k_norm.weight')!].every((v) => v === 1)).toBe(true);
  });

  it('makes each expert its layer dense MLP plus 1% noise, different per expert, and a fresh small router', () => {
    const src = dense.tensors.get('model.layers.1.mlp.down_proj.weight')!;
    const rmsOf = (x: ArrayLike<number>) => Math.sqrt(Array.from(x).reduce((s, v) => s + v * v, 0) / x.length);
    const noise = (e: number) => moe.tensors.get(`model.layers.1.mlp.experts.${e}.down_proj.weight`)!.map((v, i) => v - src[i]);
    expect(rmsOf(noise(0)) / rmsOf(src)).toBeCloseTo(0.01, 3);
    expect(noise(0)).not.toEqual(noise(1));
    const router = moe.tensors.get('model.layers.1.mlp.gate.weight')!;
    expect(router.length).toBe(8 * 128);
    expect(rmsOf(router)).toBeCloseTo(0.02, 2);
  });

  it('is reproducible', () => {
    expect(upcycle(dense).tensors.get('model.layers.11.mlp.experts.7.gate_proj.weight')).toEqual(moe.tensors.get('model.layers.11.mlp.experts.7.gate_proj.weight'));
  });
});
