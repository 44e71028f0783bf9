// InfLLM-V2 layers in the engine model (CPU): each query token attends over its own selected
// blocks. Loss and gradients against the float64 reference forward with the reference selection
// (testing/infllmv2-reference.ts) as its key mask; the dense_len switch; metrics; CUDA refusal.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { MaskSpec } from '../core/schema';
import type { ModelConfig, StepOptions } from './engine-api';
import { engine, engineAvailable } from './index';
import { loadCheckpoint } from './checkpoint/load';
import { type KeyMask, referenceLoss } from './checkpoint/testing/reference';
import { referenceSelection } from './checkpoint/testing/infllmv2-reference';
import { rng, tinyConfig, writeTinyCheckpoint } from './checkpoint/testing/tiny';

const root = mkdtempSync(join(tmpdir(), 'infllmv2-model-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const SPEC: MaskSpec = {
  block_size: 16, global_blocks: 1, global_rows: 0, window_blocks: 0, random_blocks: 0, random_seed: 0,
  topk_blocks: 1, selector: 'infllm_v2', dense_below: 64, share_gqa_group: true,
};
const plain: StepOptions = { lr: 0, weight_decay: 0, beta1: 0.9, beta2: 0.99, eps: 1e-8, grad_clip: 0, distill: null };

/** The reference's key mask for infllm_v2 layers: the reference selection on the layer's own q, k. */
function infllmMask(c: ModelConfig, layers: number[], spec: MaskSpec): KeyMask {
  const H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  return (layer, q, k) => {
    const T = q.length / (H * D);
    if (!layers.includes(layer) || T < spec.dense_below) return null;
    const qh = new Float64Array(q.length), kh = new Float64Array(k.length);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) qh[(h * T + t) * D + d] = q[(t * H + h) * D + d];
      for (let h = 0; h < Hkv; h++) for (let d = 0; d < D; d++) kh[(h * T + t) * D + d] = k[(t * Hkv + h) * D + d];
    }
    const b = spec.block_size;
    const sel = referenceSelection(qh, kh, H, Hkv, T, D, { block: b, kernel: b / 2, stride: b / 4, init: spec.global_blocks, local: spec.window_blocks + 1, extra: spec.topk_blocks, denseLen: spec.dense_below });
    const sets = sel.map((rows) => rows.map((r) => new Set(r)));
    return (kv, i, j) => sets[kv][i].has(Math.floor(j / b));
  };
}

function batchOf(B: number, T: number, V: number, seed: number) {
  const next = rng(seed);
  return { tokens: Int32Array.from({ length: B * (T + 1) }, () => Math.floor(next() * V)), batch: B, seq: T };
}

describe.skipIf(!engineAvailable())('infllm_v2 attention in the model (cpu)', () => {
  const config = tinyConfig('llama', false, { max_position_embeddings: 256 });
  const dir = join(root, 'tiny');
  writeTinyCheckpoint(dir, config, { seed: 3 });
  const T = 16 * 5 + 5; // 6 blocks, the last a tail: at most 3 per token are selected
  const batch = batchOf(2, T, config.vocab_size, 7);
  const weights = () => new Map([...loadCheckpoint(dir).tensors].map(([k, v]) => [k, Float64Array.from(v)]));

  it('gives the reference loss with each token attending over its own selected blocks, and its gradients', async () => {
    const model = await engine.loadModel(dir);
    model.setAttention(0, SPEC);
    model.setAttention(1, SPEC);
    const { result, grads } = await model.computeGradients(batch, plain);
    const w = weights();
    const mask = infllmMask(config, [0, 1], SPEC);
    const want = referenceLoss(config, w, batch.tokens, 2, T, mask);
    const dense = referenceLoss(config, w, batch.tokens, 2, T);
    expect(Math.abs(want - dense)).toBeGreaterThan(1e-3); // the selection matters
    expect(Math.abs(result.task_loss - want)).toBeLessThanOrEqual(1e-4 * want);
    expect(result.density).toBeLessThan(1);
    for (const name of ['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.k_proj.weight', 'model.layers.1.self_attn.v_proj.weight', 'model.layers.1.self_attn.o_proj.weight', 'model.layers.0.mlp.up_proj.weight']) {
      const t = w.get(name)!;
      for (const i of [1, Math.floor(t.length / 2), t.length - 2]) {
        const saved = t[i], h = 1e-5;
        t[i] = saved + h;
        const up = referenceLoss(config, w, batch.tokens, 2, T, mask);
        t[i] = saved - h;
        const down = referenceLoss(config, w, batch.tokens, 2, T, mask);
        t[i] = saved;
        const fd = (up - down) / (2 * h);
        expect(Math.abs(grads[name][i] - fd), `${name}[${i}] analytic ${grads[name][i]} vs ${fd}`).toBeLessThanOrEqual(2e-5 + 1e-2 * Math.abs(fd));
      }
    }
    model.dispose();
  });

  it('runs dense below dense_below (dense_len)', async () => {
    const model = await engine.loadModel(dir);
    model.setAttention(0, { ...SPEC, dense_below: T + 1 });
    const { result } = await model.computeGradients(batch, plain);
    expect(Math.abs(result.task_loss - referenceLoss(config, weights(), batch.tokens, 2, T))).toBeLessThanOrEqual(1e-4);
    model.dispose();
  });

  it('reports per-layer density, recall and attention KL, and distils by attention KL', async () => {
    const model = await engine.loadModel(dir);
    model.setAttention(1, SPEC);
    const ev = await model.evaluate(batch);
    expect(ev.density[0]).toBeNull();
    expect(ev.density[1]!).toBeGreaterThan(0);
    expect(ev.density[1]!).toBeLessThan(1);
    expect(ev.attn_recall[1]!).toBeGreaterThan(0);
    expect(ev.attn_recall[1]!).toBeLessThan(1);
    // Student = teacher: each row's KL is -log(its kept teacher mass), so attn_kl >= -log(recall).
    expect(ev.attn_kl[1]!).toBeGreaterThanOrEqual(-Math.log(ev.attn_recall[1]!) - 1e-6);
    const { result, grads } = await model.computeGradients(batch, { ...plain, distill: { task: 0, attn_kl: 1, logit_kl: 0, hidden_mse: 0, temperature: 1 } });
    expect(result.attn_kl_loss).toBeCloseTo(ev.attn_kl[1]!, 5);
    const g = grads['model.layers.1.self_attn.q_proj.weight'];
    expect(g.some((x) => x !== 0)).toBe(true);
    model.dispose();
  });
});
