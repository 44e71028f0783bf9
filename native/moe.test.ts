// Mixture-of-experts models (qwen3_moe) through the engine's TypeScript API: the forward, routing
// statistics and load-balancing terms against the float64 reference (checkpoint/testing/
// moe-reference.ts), gradients against its central differences, determinism, sharded loading,
// freezing by kind, and the config fields' defaults, errors and round trip.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LoadBalance, ModelConfig, StepOptions } from './engine-api';
import { engine, engineAvailable } from './index';
import { loadCheckpoint } from './checkpoint/load';
import { validateModelConfig } from './checkpoint/config';
import { QWEN3_MOE_DEFAULTS } from './checkpoint/families';
import { referenceMoeLoss } from './checkpoint/testing/moe-reference';
import { encodeAs, randomTensors, rng, tinyConfig, writeTinyCheckpoint } from './checkpoint/testing/tiny';

const root = mkdtempSync(join(tmpdir(), 'moe-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `m${n++}`);

function batchOf(B: number, T: number, V: number, seed: number) {
  const next = rng(seed);
  return { tokens: Int32Array.from({ length: B * (T + 1) }, () => Math.floor(next() * V)), batch: B, seq: T };
}
const adam = (lr: number, extra: Partial<StepOptions> = {}): StepOptions => ({ lr, weight_decay: 0, beta1: 0.9, beta2: 0.99, eps: 1e-8, grad_clip: 1, distill: null, ...extra });
const moe = (extra: Partial<ModelConfig> = {}) => tinyConfig('qwen3_moe', false, extra);
const weightsOf = (dir: string) => new Map([...loadCheckpoint(dir).tensors].map(([k, v]) => [k, Float64Array.from(v)]));

/** A checkpoint whose layer-0 router is zero: every token's logits tie exactly, so top-k picks experts 0..k-1. */
function writeTiedRouterCheckpoint(dir: string, config: ModelConfig): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const tensors = randomTensors(config, 5).map((t) => (t.name === 'model.layers.0.mlp.gate.weight' ? { ...t, data: new Float32Array(t.data.length) } : t));
  writeFileSync(join(dir, 'model.safetensors'), encodeAs(tensors, 'F32'));
}

const cases: [string, ModelConfig, (dir: string, c: ModelConfig) => void][] = [
  ['F32, norm_topk_prob, mlp_only_layers [1]', moe(), (d, c) => writeTinyCheckpoint(d, c, { seed: 3 })],
  ['BF16, decoder_sparse_step 2, no renormalisation', moe({ decoder_sparse_step: 2, mlp_only_layers: [], norm_topk_prob: false, num_hidden_layers: 4 }), (d, c) => writeTinyCheckpoint(d, c, { seed: 4, dtype: 'BF16' })],
  ['sharded F32, top-1 of 5', moe({ num_experts: 5, num_experts_per_tok: 1 }), (d, c) => writeTinyCheckpoint(d, c, { seed: 6, shards: 3 })],
  ['exact ties in the router logits', moe(), writeTiedRouterCheckpoint],
];

describe.skipIf(!engineAvailable())('mixture-of-experts model', () => {
  // Tolerance: 1e-5 absolute (float32 engine vs float64 reference on a tiny model); usage is a
  // ratio of routed counts, so it matches exactly when the routing does.
  it.each(cases)('%s: loss, expert usage, aux loss and routing entropy equal the float64 reference', async (_name, config, write) => {
    const dir = fresh();
    write(dir, config);
    const model = await engine.loadModel(dir);
    const batch = batchOf(2, 9, config.vocab_size, 7);
    const want = referenceMoeLoss(config, weightsOf(dir), batch.tokens, 2, 9);
    const ev = await model.evaluate(batch);
    expect(Math.abs(ev.loss - want.ce)).toBeLessThanOrEqual(1e-5);
    expect(Math.abs(ev.aux_loss! - want.routing.aux)).toBeLessThanOrEqual(1e-5);
    expect(Object.keys(ev.expert_usage!)).toEqual(Object.keys(want.routing.usage));
    for (const [layer, usage] of Object.entries(want.routing.usage)) {
      expect(ev.expert_usage![layer].length).toBe(config.num_experts);
      ev.expert_usage![layer].forEach((u, e) => expect(Math.abs(u - usage[e]), `layer ${layer} expert ${e}`).toBeLessThanOrEqual(1e-5));
      expect(Math.abs(ev.routing_entropy![layer] - want.routing.entropy[layer])).toBeLessThanOrEqual(1e-5);
    }
    expect(Math.abs((await model.loss(batch)) - want.ce)).toBeLessThanOrEqual(1e-5);
    model.dispose();
  });

  it('breaks exact ties by the lower expert index', async () => {
    const dir = fresh();
    const config = moe();
    writeTiedRouterCheckpoint(dir, config);
    const model = await engine.loadModel(dir);
    const ev = await model.evaluate(batchOf(2, 9, config.vocab_size, 7));
    expect(ev.expert_usage!['0']).toEqual([0.5, 0.5, 0, 0]);
    expect(ev.routing_entropy!['0']).toBeCloseTo(Math.log(4), 6);
    model.dispose();
  });

  const balances: [string, LoadBalance | null, (r: { aux: number; seed: number }) => number][] = [
    ['no load balancing', null, () => 0],
    ['the seed term (weight 0.5)', { kind: 'seed', weight: 0.5 }, (r) => 0.5 * r.seed],
    ['the switch term (weight 0.5)', { kind: 'switch', weight: 0.5 }, (r) => 0.5 * r.aux],
  ];
  it.each(balances)('%s: router, expert and dense gradients match central differences of the reference', async (_name, lb, term) => {
    const dir = fresh();
    const config = moe();
    writeTinyCheckpoint(dir, config, { seed: 8 });
    const model = await engine.loadModel(dir);
    const batch = batchOf(2, 7, config.vocab_size, 9);
    const { result, grads } = await model.computeGradients(batch, adam(0, { load_balance: lb }));
    const weights = weightsOf(dir);
    const objective = () => {
      const r = referenceMoeLoss(config, weights, batch.tokens, 2, 7);
      return r.ce + term(r.routing);
    };
    const ref = referenceMoeLoss(config, weights, batch.tokens, 2, 7);
    expect(Math.abs(result.load_balance_loss! - term(ref.routing))).toBeLessThanOrEqual(1e-6);
    expect(Math.abs(result.loss - (result.task_loss + result.load_balance_loss!))).toBeLessThanOrEqual(1e-9);
    const checked = new Set<string>();
    for (const t of model.tensors()) {
      if (!['router', 'experts', 'mlp'].includes(t.kind) && !(t.layer === 0 && t.kind === 'q')) continue;
      if (t.kind === 'experts' && !/experts\.[03]\./.test(t.name)) continue;
      checked.add(t.kind);
      const w = weights.get(t.name)!;
      for (const i of [0, Math.floor(w.length / 2), w.length - 1]) {
        const saved = w[i];
        const h = 1e-5;
        w[i] = saved + h;
        const up = objective();
        w[i] = saved - h;
        const down = objective();
        w[i] = saved;
        const fd = (up - down) / (2 * h);
        expect(Math.abs(grads[t.name][i] - fd), `${t.name}[${i}] analytic ${grads[t.name][i]} vs ${fd}`).toBeLessThanOrEqual(2e-5 + 1e-2 * Math.abs(fd));
      }
    }
    expect([...checked].sort()).toEqual(['experts', 'mlp', 'q', 'router']);
    model.dispose();
  }, 120_000);

  it('trained on the seed term alone (task weight 0), the routers even out the soft usage', async () => {
    const config = moe({ num_hidden_layers: 2, mlp_only_layers: [] });
    const model = engine.createModel(config, { seed: 3 });
    const batch = batchOf(4, 16, config.vocab_size, 2);
    model.setTrainable({ layers: 'all', kinds: ['q', 'k', 'v', 'o', 'mlp', 'norms', 'embeddings', 'experts'] }, false);
    const options = adam(1e-2, { distill: { task: 0, attn_kl: 0, logit_kl: 0, hidden_mse: 0, temperature: 1 }, load_balance: { kind: 'seed', weight: 1 } });
    const first = await model.trainStep(batch, options);
    let last = first;
    for (let i = 0; i < 20; i++) last = await model.trainStep(batch, options);
    expect(last.loss).toBe(last.load_balance_loss);
    expect(last.load_balance_loss!).toBeLessThan(0.5 * first.load_balance_loss!);
    model.dispose();
  });

  it('two runs are bit-identical', async () => {
    const run = async () => {
      const model = engine.createModel(moe(), { seed: 11 });
      const out = [];
      for (let s = 0; s < 3; s++) out.push(await model.trainStep(batchOf(2, 12, 37, s), adam(1e-2, { load_balance: { kind: 'switch' } })));
      const tensors = model.tensors().map((t) => Buffer.from(model.getTensor(t.name).buffer));
      model.dispose();
      return { out, tensors };
    };
    const a = await run(), b = await run();
    expect(b.out).toEqual(a.out);
    a.tensors.forEach((t, i) => expect(t.equals(b.tensors[i])).toBe(true));
  });

  it('freezes and unfreezes the router and expert kinds', async () => {
    const model = engine.createModel(moe(), { seed: 2 });
    model.setTrainable({ layers: 'all', kinds: ['q', 'k', 'v', 'o', 'mlp', 'norms', 'embeddings', 'router', 'experts'] }, false);
    model.setTrainable({ layers: [0], kinds: ['router'] }, true);
    model.setTrainable({ layers: [2], kinds: ['experts'] }, true);
    const before = new Map(model.tensors().map((t) => [t.name, model.getTensor(t.name)]));
    for (let i = 0; i < 2; i++) await model.trainStep(batchOf(2, 10, 37, i), adam(1e-2, { load_balance: { kind: 'seed' } }));
    for (const t of model.tensors()) {
      const changed = !Buffer.from(model.getTensor(t.name).buffer).equals(Buffer.from(before.get(t.name)!.buffer));
      const shouldTrain = (t.layer === 0 && t.kind === 'router') || (t.layer === 2 && t.kind === 'experts');
      expect(changed, t.name).toBe(shouldTrain);
    }
    model.dispose();
  });

  it('loads a sharded checkpoint and names a missing expert tensor', async () => {
    const config = moe();
    const dir = fresh();
    writeTinyCheckpoint(dir, config, { seed: 1, shards: 4 });
    const model = await engine.loadModel(dir);
    expect(model.tensors().filter((t) => t.kind === 'experts')).toHaveLength(2 * 4 * 3);
    model.dispose();
    const broken = fresh();
    mkdirSync(broken);
    writeFileSync(join(broken, 'config.json'), JSON.stringify(config));
    const missing = 'model.layers.2.mlp.experts.3.down_proj.weight';
    writeFileSync(join(broken, 'model.safetensors'), encodeAs(randomTensors(config, 1).filter((t) => t.name !== missing), 'F32'));
    await expect(engine.loadModel(broken)).rejects.toThrow(`missing tensor ${missing}`);
  });

  it('reads the MoE fields with Qwen3MoeConfig defaults, refuses bad ones in one line, and writes them back', async () => {
    const { num_experts: _e, num_experts_per_tok: _k, moe_intermediate_size: _f, norm_topk_prob: _n, decoder_sparse_step: _s, mlp_only_layers: _m, router_aux_loss_coef: _c, ...dense } = moe();
    expect(validateModelConfig(dense)).toMatchObject(QWEN3_MOE_DEFAULTS);
    const bad: [Partial<ModelConfig>, RegExp][] = [
      [{ num_experts_per_tok: 5 }, /^config\.json: num_experts_per_tok: 5 exceeds the supported maximum 4$/],
      [{ mlp_only_layers: [3] }, /^config\.json: mlp_only_layers: 3 is not a layer in \[0, 2\]$/],
      [{ decoder_sparse_step: 0 }, /^config\.json: decoder_sparse_step: must be an integer >= 1, got 0$/],
      [{ norm_topk_prob: 1 as unknown as boolean }, /^config\.json: norm_topk_prob: must be true or false$/],
      [{ router_aux_loss_coef: -1 }, /^config\.json: router_aux_loss_coef: must be a number >= 0, got -1$/],
      [{ num_experts: 5000 }, /^config\.json: num_experts: 5000 exceeds the supported maximum 4096$/],
    ];
    for (const [extra, message] of bad) expect(() => validateModelConfig(moe(extra))).toThrow(message);
    const config = moe({ norm_topk_prob: false, router_aux_loss_coef: 0.02 });
    const model = engine.createModel(config, { seed: 1 });
    const dir = fresh();
    await model.save(dir);
    const saved = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(saved.architectures).toEqual(['Qwen3MoeForCausalLM']);
    expect(validateModelConfig(saved)).toEqual(validateModelConfig(config));
    const again = await engine.loadModel(dir);
    const batch = batchOf(1, 8, 37, 1);
    expect(await again.loss(batch)).toBe(await model.loss(batch));
    model.dispose();
    again.dispose();
  });

  it('reports no routing metrics for a dense model and refuses a load-balancing term there', async () => {
    const model = engine.createModel(tinyConfig('qwen3', false), { seed: 1 });
    const batch = batchOf(1, 8, 37, 1);
    const ev = await model.evaluate(batch);
    expect(ev).not.toHaveProperty('aux_loss');
    expect(ev).not.toHaveProperty('expert_usage');
    await expect(model.trainStep(batch, adam(1e-3, { load_balance: { kind: 'seed' } }))).rejects.toThrow(/^options\.load_balance: this model has no mixture-of-experts layers$/);
    await expect(model.trainStep(batch, adam(1e-3, { load_balance: { kind: 'aux' as 'seed' } }))).rejects.toThrow(/^options\.load_balance\.kind: must be seed or switch, got "aux"$/);
    model.dispose();
  });
});
