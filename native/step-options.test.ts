// Per-kind learning rates (StepOptions.lr_scale), the per-layer token-level FLOPs saved that
// evaluate reports, and the prefill timer, through the engine's TypeScript API.
import { describe, expect, it } from 'vitest';
import type { EngineMaskSpec, StepOptions } from './engine-api';
import { engine, engineAvailable } from './index';
import { rng, tinyConfig } from './checkpoint/testing/tiny';

function batchOf(B: number, T: number, V: number, seed: number) {
  const next = rng(seed);
  return { tokens: Int32Array.from({ length: B * (T + 1) }, () => Math.floor(next() * V)), batch: B, seq: T };
}
const adam = (lr: number, extra: Partial<StepOptions> = {}): StepOptions => ({ lr, weight_decay: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, grad_clip: 1, distill: null, ...extra });
const mask = (extra: Partial<EngineMaskSpec> = {}): EngineMaskSpec => ({
  block_size: 16, global_blocks: 0, global_rows: 0, window_blocks: 0, random_blocks: 0, random_seed: 1,
  topk_blocks: 0, selector: 'none', dense_below: 0, share_gqa_group: true, ...extra,
});
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe.skipIf(!engineAvailable())('per-kind learning rates', () => {
  it('a kind with lr scale 0 keeps exactly its tensors; every other trainable tensor moves', async () => {
    const model = engine.createModel(tinyConfig('llama', false), { seed: 3 });
    // A trainable indexer on layer 2 adds selector tensors.
    model.setAttention(1, mask({ topk_blocks: 1, selector: 'indexer' }));
    const kinds = new Map(model.tensors().map((t) => [t.name, t.kind]));
    expect([...kinds.values()]).toContain('selector');
    const batch = batchOf(2, 32, 37, 5);
    const distill = { task: 1, attn_kl: 1, logit_kl: 0, hidden_mse: 0, temperature: 1 };
    for (const still of [['q', 'k', 'v', 'o'], ['selector'], ['mlp', 'norms', 'embeddings']] as const) {
      const before = new Map([...kinds.keys()].map((n) => [n, model.getTensor(n)]));
      const lr_scale = Object.fromEntries(still.map((k) => [k, 0]));
      await model.trainStep(batch, adam(1e-2, { distill, lr_scale }));
      for (const [name, kind] of kinds) {
        const changed = !bytes(model.getTensor(name)).equals(bytes(before.get(name)!));
        expect(changed, `${name} with ${still.join(',')} at 0`).toBe(!(still as readonly string[]).includes(kind));
      }
    }
    model.dispose();
  });

  it('a scale multiplies the step size: mlp at lr x 0.5 equals a step at lr / 2, bit for bit', async () => {
    const batch = batchOf(2, 12, 37, 7);
    const stepped = async (options: StepOptions) => {
      const model = engine.createModel(tinyConfig('qwen3', true), { seed: 4 });
      await model.trainStep(batch, options);
      const out = new Map(model.tensors().filter((t) => t.kind === 'mlp').map((t) => [t.name, model.getTensor(t.name)]));
      model.dispose();
      return out;
    };
    const scaled = await stepped(adam(1e-2, { lr_scale: { mlp: 0.5 } }));
    const half = await stepped(adam(5e-3));
    expect(scaled.size).toBeGreaterThan(0);
    for (const [name, values] of scaled) expect(bytes(values).equals(bytes(half.get(name)!)), name).toBe(true);
  });

  it('refuses an unknown kind or a negative scale in one line', async () => {
    const model = engine.createModel(tinyConfig('llama', true), { seed: 1 });
    const batch = batchOf(1, 4, 37, 1);
    await expect(model.trainStep(batch, adam(1e-3, { lr_scale: { qq: 1 } as never }))).rejects.toThrow(/^options\.lr_scale: unknown kind "qq"/);
    await expect(model.trainStep(batch, adam(1e-3, { lr_scale: { q: -1 } }))).rejects.toThrow(/^options\.lr_scale\.q: must be a number in \[0, Infinity\], got -1$/);
    model.dispose();
  });
});

describe.skipIf(!engineAvailable())('evaluate: token-level FLOPs saved per layer', () => {
  it('a diagonal-only mask over two blocks of 16 skips 256 of 528 causal token pairs; dense layers report null', async () => {
    const model = engine.createModel(tinyConfig('llama', true), { seed: 2 });
    model.setAttention(1, mask());
    const r = await model.evaluate(batchOf(2, 32, 37, 3));
    // Per mask head: block 0 keeps its triangle (136 of 136), block 1 its triangle (136) of 16*16 + 136.
    expect(r.flops_saved![0]).toBeNull();
    expect(r.flops_saved![1]).toBeCloseTo(1 - (136 + 136) / (136 + 16 * 16 + 136), 12);
    expect(r.density[1]).toBeCloseTo(2 / 3, 12);
    model.dispose();
  });
});

describe.skipIf(!engineAvailable())('timePrefill', () => {
  it('times the masked and the dense prefill and leaves the masks as they were', async () => {
    const model = engine.createModel(tinyConfig('llama', true), { seed: 2 });
    model.setAttention(1, mask());
    const batch = batchOf(1, 64, 37, 3);
    const before = await model.evaluate(batch);
    const t = await model.timePrefill!(batch, 2);
    expect(t.dense_s).toBeGreaterThan(0);
    expect(t.sparse_s).toBeGreaterThan(0);
    expect(t.dense_s / t.sparse_s).toBeGreaterThan(0);
    expect(await model.evaluate(batch)).toEqual(before);
    await expect(model.timePrefill!(batch, 0)).rejects.toThrow(/^reps: must be an integer in \[1, 1000\], got 0$/);
    model.dispose();
  });
});
