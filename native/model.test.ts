// The engine through its TypeScript API: tiny checkpoints of every architecture against a float64
// reference forward, gradients against central finite differences of that reference, training
// behaviour, checkpoints and optimiser state, argument errors, and the unbuilt-addon message.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ModelConfig, StepOptions } from './engine-api';
import { ADDON_MISSING, engine, engineAvailable, engineInfo, type NativeEngineModel } from './index';
import { loadCheckpoint } from './checkpoint/load';
import { referenceLoss } from './checkpoint/testing/reference';
import { rng, tinyConfig, writeTinyCheckpoint } from './checkpoint/testing/tiny';

const root = mkdtempSync(join(tmpdir(), 'model-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `m${n++}`);

function batchOf(B: number, T: number, V: number, seed: number) {
  const next = rng(seed);
  return { tokens: Int32Array.from({ length: B * (T + 1) }, () => Math.floor(next() * V)), batch: B, seq: T };
}
const adam = (lr: number, extra: Partial<StepOptions> = {}): StepOptions => ({ lr, weight_decay: 0, beta1: 0.9, beta2: 0.99, eps: 1e-8, grad_clip: 1, distill: null, ...extra });

const longrope = (D: number) => ({
  rope_type: 'longrope', original_max_position_embeddings: 32,
  short_factor: Array.from({ length: D / 2 }, (_, i) => 1 + i * 0.1), long_factor: Array.from({ length: D / 2 }, (_, i) => 1 + i * 0.5),
});

const cases: [string, ModelConfig, { dtype?: 'F32' | 'F16' | 'BF16'; shards?: number }][] = [
  ['llama untied', tinyConfig('llama', false), {}],
  ['llama tied, sharded', tinyConfig('llama', true), { shards: 3 }],
  ['qwen3 untied', tinyConfig('qwen3', false), {}],
  ['qwen3 tied, BF16', tinyConfig('qwen3', true), { dtype: 'BF16' }],
  ['minicpm tied, LongRoPE', tinyConfig('minicpm', true, { rope_scaling: longrope(4) }), {}],
  ['minicpm untied, F16', tinyConfig('minicpm', false), { dtype: 'F16' }],
];

describe.skipIf(!engineAvailable())('engine model', () => {
  it('reports version, threads and SIMD level', () => {
    const info = engineInfo();
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.threads).toBeGreaterThanOrEqual(1);
    expect(['avx512', 'avx2', 'scalar']).toContain(info.simd);
    expect(typeof info.cuda.compiled).toBe('boolean');
    if (!info.cuda.compiled) expect(info.cuda.available).toBe(false);
  });

  it('runs on the cpu backend in fp32 unless told otherwise, and says why cuda is refused here', () => {
    const model = engine.createModel(tinyConfig('llama', true), { seed: 1, precision: 'bf16' });
    expect(model.backend).toMatchObject({ name: 'cpu', precision: 'fp32' });
    expect(model.backend.device).toMatch(/^\d+ threads, (avx512|avx2|scalar)$/);
    model.setPrecision('fp16');  // a stage's request: the cpu still computes in fp32
    expect(model.backend.precision).toBe('fp32');
    expect(() => model.setPrecision('fp8' as 'fp32')).toThrow(/^precision: must be one of fp32, bf16, fp16, got "fp8"$/);
    model.dispose();
    expect(() => engine.createModel(tinyConfig('llama', true), { seed: 1, backend: 'tpu' as 'cpu' })).toThrow(/^backend: must be cpu or cuda, got "tpu"$/);
    expect(() => engine.createModel(tinyConfig('llama', true), { seed: 1, precision: 'fp8' as 'fp32' })).toThrow(/^precision: must be one of fp32, bf16, fp16, got "fp8"$/);
    const cuda = engineInfo().cuda;
    if (!cuda.available) {
      expect(() => engine.createModel(tinyConfig('llama', true), { seed: 1, backend: 'cuda' })).toThrow(`backend: cuda is not usable here (${cuda.reason})`);
    } else {
      const gpu = engine.createModel(tinyConfig('llama', true), { seed: 1, backend: 'cuda', precision: 'bf16' });
      expect(gpu.backend).toMatchObject({ name: 'cuda', precision: 'bf16', device: cuda.device });
      for (const p of ['fp32', 'fp16', 'bf16'] as const) {
        gpu.setPrecision(p);  // honoured between calls (native/cuda/cuda_precision_tests.cpp checks the numerics)
        expect(gpu.backend.precision).toBe(p);
      }
      gpu.dispose();
    }
  });

  // Tolerance: 1e-4 relative (float32 engine vs float64 reference, tiny model).
  it.each(cases)('%s: loss equals the float64 reference within 1e-4 relative', async (_name, config, options) => {
    const dir = fresh();
    writeTinyCheckpoint(dir, config, { seed: 3, ...options });
    const model = await engine.loadModel(dir);
    const batch = batchOf(2, 11, config.vocab_size, 7);
    const got = await model.loss(batch);
    const want = referenceLoss(config, loadCheckpoint(dir).tensors, batch.tokens, 2, 11);
    expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-4 * want);
    const ev = await model.evaluate(batch);
    expect(Math.abs(ev.loss - want)).toBeLessThanOrEqual(1e-4 * want);
    expect(ev.loss_teacher).toBe(ev.loss);
    expect(ev.out_cos).toBeCloseTo(1, 6);
    model.dispose();
  });

  it.each([cases[0], cases[3], cases[4]])('%s: gradients match central differences of the float64 reference', async (_name, config, options) => {
    const dir = fresh();
    writeTinyCheckpoint(dir, config, { seed: 4, ...options });
    const model = await engine.loadModel(dir);
    const batch = batchOf(2, 7, config.vocab_size, 9);
    const { grads } = await model.computeGradients(batch, adam(0));
    const weights = new Map<string, Float64Array>([...loadCheckpoint(dir).tensors].map(([k, v]) => [k, Float64Array.from(v)]));
    const kinds = new Set<string>();
    for (const t of model.tensors()) {
      kinds.add(t.kind);
      const w = weights.get(t.name)!;
      for (const i of [0, Math.floor(w.length / 2), w.length - 1]) {
        const saved = w[i];
        const h = 1e-5;
        w[i] = saved + h;
        const up = referenceLoss(config, weights, batch.tokens, 2, 7);
        w[i] = saved - h;
        const down = referenceLoss(config, weights, batch.tokens, 2, 7);
        w[i] = saved;
        const fd = (up - down) / (2 * h);
        expect(Math.abs(grads[t.name][i] - fd), `${t.name}[${i}] analytic ${grads[t.name][i]} vs ${fd}`).toBeLessThanOrEqual(2e-5 + 1e-2 * Math.abs(fd));
      }
    }
    expect([...kinds].sort()).toEqual(['embeddings', 'k', 'mlp', 'norms', 'o', 'q', 'v']);
    model.dispose();
  });

  it('overfits a short text: loss below 0.1 within 80 steps', async () => {
    const model = engine.createModel(tinyConfig('qwen3', true, { vocab_size: 64, hidden_size: 32, intermediate_size: 64 }), { seed: 1 });
    const text = 'the quick brown fox jumps over the lazy dog!';
    const tokens = Int32Array.from(text, (ch) => ch.charCodeAt(0) % 64);
    const batch = { tokens, batch: 1, seq: tokens.length - 1 };
    let loss = Infinity;
    let step = 0;
    const first = (await model.trainStep(batch, adam(2e-2))).loss;
    for (step = 1; step < 80 && loss >= 0.1; step++) loss = (await model.trainStep(batch, adam(2e-2))).loss;
    expect(first).toBeGreaterThan(3);
    expect(loss).toBeLessThan(0.1);
    model.dispose();
  });

  it('keeps frozen tensors bit-identical and trains the unfrozen ones', async () => {
    const model = engine.createModel(tinyConfig('llama', false), { seed: 2 });
    model.setTrainable({ layers: 'all', kinds: ['q', 'k', 'v', 'o', 'mlp', 'norms', 'embeddings'] }, false);
    model.setTrainable({ layers: [1], kinds: ['k', 'mlp'] }, true);
    const before = new Map(model.tensors().map((t) => [t.name, model.getTensor(t.name)]));
    const batch = batchOf(2, 12, 37, 1);
    for (let i = 0; i < 3; i++) await model.trainStep(batch, adam(1e-2, { distill: { task: 1, attn_kl: 0, logit_kl: 0.5, hidden_mse: 0.5, temperature: 2 } }));
    for (const t of model.tensors()) {
      const changed = !Buffer.from(model.getTensor(t.name).buffer).equals(Buffer.from(before.get(t.name)!.buffer));
      const shouldTrain = t.layer === 1 && (t.kind === 'k' || t.kind === 'mlp');
      expect(changed, t.name).toBe(shouldTrain);
      expect(t.trainable).toBe(shouldTrain);
      expect(Buffer.from(model.getTeacherTensor(t.name).buffer).equals(Buffer.from(before.get(t.name)!.buffer)), `teacher ${t.name}`).toBe(true);
    }
    model.dispose();
  });

  it('gives bit-identical losses in two runs', async () => {
    const run = async () => {
      const model = engine.createModel(tinyConfig('minicpm', true), { seed: 11 });
      model.setAttention(1, { block_size: 16, global_blocks: 1, global_rows: 0, window_blocks: 1, random_blocks: 1, random_seed: 3, topk_blocks: 0, selector: 'none', dense_below: 0, share_gqa_group: true });
      const losses: number[] = [];
      const batch = batchOf(2, 48, 37, 5);
      for (let i = 0; i < 4; i++) losses.push((await model.trainStep(batch, adam(1e-2, { distill: { task: 1, attn_kl: 0.3, logit_kl: 0.2, hidden_mse: 0.1, temperature: 1 } }))).loss);
      model.dispose();
      return losses;
    };
    const a = await run(), b = await run();
    expect(a).toEqual(b);
    expect(a[3]).toBeLessThan(a[0]);
  });

  it('saves a checkpoint and optimiser state that resume the run exactly', async () => {
    const config = tinyConfig('qwen3', false);
    const batch = batchOf(2, 10, 37, 2);
    const a = engine.createModel(config, { seed: 5 });
    a.setTrainable({ layers: [0], kinds: ['v', 'norms'] }, false);
    for (let i = 0; i < 2; i++) await a.trainStep(batch, adam(1e-2));
    const dir = fresh();
    await a.save(dir);
    await a.saveOptimizer(join(dir, 'optimizer.safetensors'));
    const continued = (await a.trainStep(batch, adam(1e-2))).loss;
    const b = await engine.loadModel(dir);
    b.setTrainable({ layers: [0], kinds: ['v', 'norms'] }, false);
    await b.loadOptimizer(join(dir, 'optimizer.safetensors'));
    expect((await b.trainStep(batch, adam(1e-2))).loss).toBe(continued);
    b.setTrainable({ layers: 'all', kinds: ['q'] }, false);
    await expect(b.loadOptimizer(join(dir, 'optimizer.safetensors'))).rejects.toThrow(/optimizer state for model\.layers\.0\.self_attn\.q_proj\.weight, which is not a trainable tensor/);
    a.dispose();
    b.dispose();
  });

  it('restores trained weights onto a fresh base with loadTrainable, the teacher kept as the base', async () => {
    const config = tinyConfig('llama', false);
    const mask = { block_size: 16, global_blocks: 1, global_rows: 0, window_blocks: 0, random_blocks: 0, random_seed: 4, topk_blocks: 1, selector: 'indexer' as const, dense_below: 0, share_gqa_group: true };
    const distill = { task: 1, attn_kl: 0.5, logit_kl: 0.2, hidden_mse: 0, temperature: 1 };
    const batch = batchOf(2, 32, 37, 8);
    const replay = (m: NativeEngineModel) => {
      m.setAttention(1, mask);
      m.setTrainable({ layers: 'all', kinds: ['q', 'k', 'v', 'o', 'mlp', 'norms', 'embeddings'] }, false);
      m.setTrainable({ layers: [1], kinds: ['q', 'k'] }, true);
    };
    const trained = engine.createModel(config, { seed: 6 });
    replay(trained);
    for (let i = 0; i < 3; i++) await trained.trainStep(batch, adam(1e-2, { distill }));
    trained.setTrainable({ layers: [1], kinds: ['k'] }, false);  // trained, then frozen: still restored
    const dir = fresh();
    await trained.save(dir);
    await trained.saveOptimizer(join(dir, 'optimizer.safetensors'));

    const rebuilt = engine.createModel(config, { seed: 6 });
    const base = rebuilt.getTensor('model.layers.1.self_attn.k_proj.weight');
    replay(rebuilt);
    rebuilt.setTrainable({ layers: [1], kinds: ['k'] }, false);
    await rebuilt.loadTrainable(dir);
    await rebuilt.loadOptimizer(join(dir, 'optimizer.safetensors'));
    for (const name of ['model.layers.1.self_attn.q_proj.weight', 'model.layers.1.self_attn.k_proj.weight', 'model.layers.1.self_attn.indexer.wq.weight']) {
      expect(rebuilt.getTensor(name)).toEqual(trained.getTensor(name));
      expect(rebuilt.getTeacherTensor(name)).toEqual(trained.getTeacherTensor(name));
    }
    expect(rebuilt.getTeacherTensor('model.layers.1.self_attn.k_proj.weight')).toEqual(base);
    expect(await rebuilt.evaluate(batch)).toEqual(await trained.evaluate(batch));
    expect(await rebuilt.trainStep(batch, adam(1e-2, { distill }))).toEqual(await trained.trainStep(batch, adam(1e-2, { distill })));

    const other = engine.createModel({ ...config, hidden_size: 12 }, { seed: 6 });
    await expect(other.loadTrainable(dir)).rejects.toThrow(`${dir}: config.json hidden_size is 16, this model has 12`);
    for (const m of [trained, rebuilt, other]) m.dispose();
  });

  it('saves trained block indexers and restores them when the layer becomes sparse again', async () => {
    const mask = { block_size: 16, global_blocks: 1, global_rows: 0, window_blocks: 0, random_blocks: 0, random_seed: 4, topk_blocks: 1, selector: 'indexer' as const, dense_below: 0, share_gqa_group: true };
    const a = engine.createModel(tinyConfig('llama', false), { seed: 3 });
    a.setAttention(1, mask);
    a.setTrainable({ layers: 'all', kinds: ['q', 'k', 'v', 'o', 'mlp', 'norms', 'embeddings'] }, false);
    const batch = batchOf(2, 48, 37, 6);
    const distill = { task: 0, attn_kl: 1, logit_kl: 0, hidden_mse: 0, temperature: 1 };
    for (let i = 0; i < 3; i++) await a.trainStep(batch, adam(1e-2, { distill }));
    const name = 'model.layers.1.self_attn.indexer.wq.weight';
    const dir = fresh();
    await a.save(dir);
    const b = await engine.loadModel(dir);
    expect(b.tensors().some((t) => t.kind === 'selector')).toBe(false);
    b.setAttention(1, mask);
    expect(b.getTensor(name)).toEqual(a.getTensor(name));
    expect((await b.evaluate(batch)).attn_kl).toEqual((await a.evaluate(batch)).attn_kl);
    a.dispose();
    b.dispose();
  });

  it('initialises deterministically: normal(0, 0.02), residual projections scaled by 1/sqrt(2L), norms 1', () => {
    const config = tinyConfig('llama', false, { hidden_size: 64, intermediate_size: 128, num_attention_heads: 4, head_dim: 16, vocab_size: 500 });
    const a = engine.createModel(config, { seed: 7 }), b = engine.createModel(config, { seed: 7 }), c = engine.createModel(config, { seed: 8 });
    const std = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
    const emb = a.getTensor('model.embed_tokens.weight');
    expect(Math.abs(std(emb) - 0.02)).toBeLessThan(0.001);
    expect(Math.abs(emb.reduce((s, v) => s + v, 0) / emb.length)).toBeLessThan(0.001);
    expect(Math.abs(std(a.getTensor('model.layers.1.mlp.down_proj.weight')) - 0.02 / Math.sqrt(4))).toBeLessThan(0.001);
    expect(Array.from(a.getTensor('model.norm.weight')).every((v) => v === 1)).toBe(true);
    expect(b.getTensor('model.layers.0.self_attn.q_proj.weight')).toEqual(a.getTensor('model.layers.0.self_attn.q_proj.weight'));
    expect(c.getTensor('model.layers.0.self_attn.q_proj.weight')).not.toEqual(a.getTensor('model.layers.0.self_attn.q_proj.weight'));
    [a, b, c].forEach((m) => m.dispose());
  });

  it('runs overlapping calls one at a time off the JS thread and refuses changes meanwhile', async () => {
    const model = engine.createModel(tinyConfig('llama', false), { seed: 4 });
    const batch = batchOf(2, 16, 37, 3);
    const first = model.trainStep(batch, adam(1e-2));
    const second = model.trainStep(batch, adam(1e-2));
    expect(() => model.setTrainable({ layers: 'all', kinds: ['q'] }, false)).toThrow(/^model is busy/);
    const [a, b] = await Promise.all([first, second]);
    expect(b.loss).toBeLessThan(a.loss);
    model.setTrainable({ layers: 'all', kinds: ['q'] }, false);
    model.dispose();
  });

  it('reports bad arguments in one line naming the field', async () => {
    const model = engine.createModel(tinyConfig('llama', true), { seed: 1 });
    const batch = batchOf(1, 4, 37, 1);
    await expect(model.trainStep({ ...batch, seq: 5 }, adam(1e-3))).rejects.toThrow(/^batch\.tokens: length 5, expected batch \* \(seq \+ 1\) = 6$/);
    await expect(model.trainStep(batch, adam(-1))).rejects.toThrow(/^options\.lr: /);
    await expect(model.trainStep(batch, adam(1e-3, { distill: { task: 1, attn_kl: 0, logit_kl: 0, hidden_mse: 0, temperature: 0 } }))).rejects.toThrow(/^options\.distill\.temperature: /);
    await expect(model.evaluate({ tokens: Int32Array.from([1, 2, 99]), batch: 1, seq: 2 })).rejects.toThrow(/^batch\.tokens\[2\] = 99 is outside the vocabulary \[0, 37\)$/);
    expect(() => model.setTrainable({ layers: [2], kinds: ['q'] }, true)).toThrow(/^selection\.layers: 2 is not a layer in \[0, 1\]$/);
    expect(() => model.setTrainable({ layers: 'all', kinds: ['qq' as 'q'] }, true)).toThrow(/^selection\.kinds: unknown kind "qq"/);
    expect(() => model.setAttention(0, { block_size: 48 } as never)).toThrow(/^mask\./);
    expect(() => engine.createModel({ ...tinyConfig('llama', true), num_key_value_heads: 3 }, { seed: 1 })).toThrow(/^config: num_key_value_heads: /);
    await expect(engine.loadModel(join(root, 'nowhere'))).rejects.toThrow(/config\.json: cannot read/);
    model.dispose();
    await expect(model.loss(batch)).rejects.toThrow(/^model was disposed$/);
  });
});

describe('without the addon', () => {
  it('imports cleanly and fails calls with one clear line', () => {
    const script = `import('./native/index.ts').then((m) => { console.log(m.engineAvailable()); try { m.engine.createModel({}, { seed: 1 }); } catch (e) { console.log(e.message); } })`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: join(import.meta.dirname, '..'), env: { ...process.env, SPARSE_STUDIO_ADDON: '/nonexistent/sparse_engine.node' }, encoding: 'utf8' });
    expect(r.stdout.trim().split('\n')).toEqual(['false', ADDON_MISSING]);
  });
});
