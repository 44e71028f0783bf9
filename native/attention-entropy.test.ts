// The attention-entropy term of a training step (StepOptions.attn_entropy_weight) through the
// engine's TypeScript API: its value against the float64 reference forward (dense and
// block-sparse layers), the gradients of task loss + weight * entropy against central differences
// of that reference, determinism, and its argument check.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { EngineMaskSpec, ModelConfig, StepOptions } from './engine-api';
import { engine, engineAvailable } from './index';
import { loadCheckpoint } from './checkpoint/load';
import { type KeyMask, referenceAttentionEntropy, referenceLoss } from './checkpoint/testing/reference';
import { rng, tinyConfig, writeTinyCheckpoint } from './checkpoint/testing/tiny';

const root = mkdtempSync(join(tmpdir(), 'attn-entropy-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function batchOf(B: number, T: number, V: number, seed: number) {
  const next = rng(seed);
  return { tokens: Int32Array.from({ length: B * (T + 1) }, () => Math.floor(next() * V)), batch: B, seq: T };
}
const plain = (extra: Partial<StepOptions> = {}): StepOptions => ({ lr: 0, weight_decay: 0, beta1: 0.9, beta2: 0.99, eps: 1e-8, grad_clip: 0, distill: null, ...extra });

// Layer 1 block-sparse: 16-token blocks, the first block and the diagonal kept.
const SPARSE: EngineMaskSpec = {
  block_size: 16, global_blocks: 1, global_rows: 0, window_blocks: 0, random_blocks: 0, random_seed: 0,
  topk_blocks: 0, selector: 'none', dense_below: 0, share_gqa_group: true,
};
const sparseKeys: KeyMask = (layer) => (layer === 1 ? (_kv, i, j) => Math.floor(j / 16) === Math.floor(i / 16) || j < 16 : null);

const cases: [string, ModelConfig, boolean, number][] = [
  ['llama, dense', tinyConfig('llama', false), false, 9],
  ['qwen3 (QK-norm), layer 1 block-sparse', tinyConfig('qwen3', true), true, 16 * 2 + 7],
];

describe.skipIf(!engineAvailable())('attention-entropy term', () => {
  it.each(cases)('%s: attn_entropy equals the float64 reference; the loss adds weight x entropy', async (_name, config, sparse, T) => {
    const dir = join(root, `value-${config.model_type}`);
    writeTinyCheckpoint(dir, config, { seed: 5 });
    const model = await engine.loadModel(dir);
    if (sparse) model.setAttention(1, SPARSE);
    const batch = batchOf(2, T, config.vocab_size, 3);
    const weights = loadCheckpoint(dir).tensors;
    const want = referenceAttentionEntropy(config, weights, batch.tokens, 2, T, sparse ? sparseKeys : undefined);
    const { result } = await model.computeGradients(batch, plain({ attn_entropy_weight: 0.25 }));
    // Tolerance 1e-5 relative: float32 engine against the float64 reference.
    expect(Math.abs(result.attn_entropy! - want)).toBeLessThanOrEqual(1e-5 * want);
    expect(result.loss).toBeCloseTo(result.task_loss + 0.25 * result.attn_entropy!, 12);
    const off = await model.computeGradients(batch, plain());
    expect(off.result.attn_entropy).toBeUndefined();
    expect(off.result.loss).toBe(off.result.task_loss);
    expect((await model.computeGradients(batch, plain({ attn_entropy_weight: 0 }))).result.attn_entropy).toBeUndefined();
    model.dispose();
  });

  it.each(cases)('%s: gradients of task loss + weight x entropy match central differences of the reference', async (_name, config, sparse, T) => {
    const dir = join(root, `grad-${config.model_type}`);
    writeTinyCheckpoint(dir, config, { seed: 4 });
    const model = await engine.loadModel(dir);
    if (sparse) model.setAttention(1, SPARSE);
    const B = 2, weight = 2;
    const batch = batchOf(B, T, config.vocab_size, 9);
    const keys = sparse ? sparseKeys : undefined;
    const { grads } = await model.computeGradients(batch, plain({ attn_entropy_weight: weight }));
    const { grads: taskOnly } = await model.computeGradients(batch, plain());
    const w = new Map<string, Float64Array>([...loadCheckpoint(dir).tensors].map(([k, v]) => [k, Float64Array.from(v)]));
    const loss = () => referenceLoss(config, w, batch.tokens, B, T, keys) + weight * referenceAttentionEntropy(config, w, batch.tokens, B, T, keys);
    let entropyShare = 0;
    for (const t of model.tensors()) {
      const x = w.get(t.name)!;
      for (const i of [0, Math.floor(x.length / 3), x.length - 1]) {
        const saved = x[i];
        const h = 1e-5;
        x[i] = saved + h;
        const up = loss();
        x[i] = saved - h;
        const down = loss();
        x[i] = saved;
        const fd = (up - down) / (2 * h);
        // Same tolerance as the task-loss gradient test (model.test.ts): float32 engine, tiny model.
        expect(Math.abs(grads[t.name][i] - fd), `${t.name}[${i}] analytic ${grads[t.name][i]} vs ${fd}`).toBeLessThanOrEqual(2e-5 + 1e-2 * Math.abs(fd));
        entropyShare = Math.max(entropyShare, Math.abs(grads[t.name][i] - taskOnly[t.name][i]));
      }
    }
    // The term really moved the probed gradients (the check would hold trivially otherwise).
    expect(entropyShare).toBeGreaterThan(1e-3);
    model.dispose();
  });

  it('steps with the term are bit-identical run to run', async () => {
    const config = tinyConfig('llama', true);
    const batch = batchOf(2, 20, config.vocab_size, 11);
    const run = async () => {
      const model = engine.createModel(config, { seed: 6 });
      const out: number[] = [];
      for (let s = 0; s < 3; s++) {
        const r = await model.trainStep(batch, plain({ lr: 1e-2, attn_entropy_weight: 0.5 }));
        out.push(r.loss, r.attn_entropy!);
      }
      const q = model.getTensor('model.layers.0.self_attn.q_proj.weight');
      model.dispose();
      return { out, q };
    };
    const a = await run(), b = await run();
    expect(a.out).toEqual(b.out);
    expect(Buffer.from(a.q.buffer).equals(Buffer.from(b.q.buffer))).toBe(true);
  });

  it('refuses a negative or non-finite weight in one line', async () => {
    const model = engine.createModel(tinyConfig('llama', true), { seed: 1 });
    const batch = batchOf(1, 4, 37, 1);
    await expect(model.trainStep(batch, plain({ attn_entropy_weight: -0.1 }))).rejects.toThrow(/^options\.attn_entropy_weight: must be a number in \[0, Infinity\], got -0\.1$/);
    await expect(model.trainStep(batch, plain({ attn_entropy_weight: Number.NaN }))).rejects.toThrow(/^options\.attn_entropy_weight: must be a number in \[0, Infinity\], got NaN$/);
    model.dispose();
  });
});
