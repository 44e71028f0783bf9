// The indexer's two phases through the addon: mask.indexer_warmup_steps reaches the engine, each
// step reports the phase per layer, and the count (the indexer's own optimiser steps) survives a
// save/restore of weights and optimiser state, as checkpoints, rollbacks and --resume do.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { MaskSpec } from '../core/schema';
import type { StepOptions } from './engine-api';
import { engine, engineAvailable, type NativeEngineModel } from './index';
import { rng, tinyConfig } from './checkpoint/testing/tiny';

const root = mkdtempSync(join(tmpdir(), 'indexer-phase-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const mask = (warmup: number | null | undefined): MaskSpec => ({
  block_size: 16, global_blocks: 1, global_rows: 0, window_blocks: 0, random_blocks: 1, random_seed: 4, topk_blocks: 1,
  selector: 'indexer', dense_below: 0, share_gqa_group: true, ...(warmup === undefined ? {} : { indexer_warmup_steps: warmup }),
});
const options: StepOptions = {
  lr: 1e-2, weight_decay: 0, beta1: 0.9, beta2: 0.99, eps: 1e-8, grad_clip: 1,
  distill: { task: 1, attn_kl: 0.5, logit_kl: 0, hidden_mse: 0, temperature: 1 },
};
const next = rng(5);
const batch = { tokens: Int32Array.from({ length: 2 * 49 }, () => Math.floor(next() * 37)), batch: 2, seq: 48 };

function model(warmup: number | null | undefined): NativeEngineModel {
  const m = engine.createModel(tinyConfig('llama', false), { seed: 3 });
  m.setAttention(1, mask(warmup));
  m.setTrainable({ layers: 'all', kinds: ['mlp', 'embeddings'] }, false);
  return m;
}

describe.skipIf(!engineAvailable())('indexer phases', () => {
  it('reports the phase per layer and switches after indexer_warmup_steps of its own steps', async () => {
    const m = model(2);
    const phases: unknown[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await m.trainStep(batch, options);
      phases.push(r.indexer_phase);
      expect(r.indexer_loss).toBeGreaterThan(0);
    }
    expect(phases).toEqual([[null, 1], [null, 1], [null, 2], [null, 2]]);
    m.dispose();
  });

  it('keeps the warm-up KL when the field is absent or null, and leaves steps without an indexer unchanged', async () => {
    for (const warmup of [undefined, null]) {
      const m = model(warmup);
      for (let i = 0; i < 3; i++) expect((await m.trainStep(batch, options)).indexer_phase).toEqual([null, 1]);
      m.dispose();
    }
    const dense = engine.createModel(tinyConfig('llama', false), { seed: 3 });
    const r = await dense.trainStep(batch, options);
    expect('indexer_phase' in r || 'indexer_loss' in r).toBe(false);
    dense.dispose();
  });

  it('counts on after a restore of weights and optimiser state', async () => {
    const a = model(3);
    for (let i = 0; i < 2; i++) await a.trainStep(batch, options);
    const dir = join(root, 'ckpt');
    await a.save(dir);
    await a.saveOptimizer(join(dir, 'optimizer.safetensors'));
    const b = model(3);
    await b.loadTrainable(dir);
    await b.loadOptimizer(join(dir, 'optimizer.safetensors'));
    for (const phase of [1, 2, 2]) {
      const [ra, rb] = [await a.trainStep(batch, options), await b.trainStep(batch, options)];
      expect(rb.indexer_phase).toEqual([null, phase]);
      expect(rb).toEqual(ra);
    }
    a.dispose();
    b.dispose();
  });

  it('refuses a negative warm-up in one line naming the field', () => {
    const m = engine.createModel(tinyConfig('llama', false), { seed: 3 });
    expect(() => m.setAttention(1, mask(-1))).toThrow(/^mask\.indexer_warmup_steps: must be an integer >= 0$/);
    m.dispose();
  });
});
