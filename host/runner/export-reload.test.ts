// An exported checkpoint, reloaded in the engine with the masks its config.json lists, gives the
// same evaluation (loss and per-layer density) as the model that was exported; the exported
// PyTorch module loads the same selector weights and static blocks.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { MaskSpec } from '../../core/schema';
import { initialModelState } from '../../core/model-state';
import engine, { engineAvailable, type NativeEngineModel } from '../../native/index';
import { buildMask } from '../../native/mask';
import { rng, tinyConfig } from '../../native/checkpoint/testing/tiny';
import type { Batch } from '../../native/engine-api';
import { exportModel, MODULE_FILE, type MaskArrays } from './export';

const PYTHON = '/usr/bin/python3';
const torchProblem = (() => {
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  return r.error ? r.error.message : r.status !== 0 ? (r.stderr || '').trim().split('\n').pop() ?? 'failed' : null;
})();

const root = mkdtempSync(join(tmpdir(), 'export-reload-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const maskArrays: MaskArrays = (mask, where) => {
  const built = buildMask({ ...mask, topk_blocks: 0 }, { seq: where.seqLen, heads: where.heads, kvHeads: where.kvHeads, layer: where.layer });
  const f = built.flex;
  return {
    heads: f.heads, qBlocks: f.qBlocks, kvBlocks: f.kvBlocks, kv_num_blocks: f.kvNumBlocks, kv_indices: f.kvIndices, q_num_blocks: f.qNumBlocks,
    q_indices: f.qIndices, bitmap: { nMaskHeads: built.nMaskHeads, words: built.bitmap.words, bits: built.bitmap.bits },
  };
};

const base = { block_size: 16, global_rows: 0, random_seed: 3, dense_below: 0, share_gqa_group: true } as const;
const MASKS: (MaskSpec | null)[] = [
  { ...base, global_blocks: 1, window_blocks: 0, random_blocks: 1, topk_blocks: 0, selector: 'none' },
  { ...base, global_blocks: 1, window_blocks: 0, random_blocks: 0, topk_blocks: 1, selector: 'indexer' },
];

function batch(seed: number, B: number, T: number, vocab: number): Batch {
  const next = rng(seed);
  return { tokens: Int32Array.from({ length: B * (T + 1) }, () => Math.floor(next() * vocab)), batch: B, seq: T };
}

describe.skipIf(!engineAvailable())('exported checkpoint reloaded in the engine', () => {
  it('gives the same eval loss and per-layer density, indexer weights included', async () => {
    const config = tinyConfig('llama', false);
    const model = engine.createModel(config, { seed: 1 }) as NativeEngineModel;
    const state = initialModelState(config.num_hidden_layers);
    MASKS.forEach((m, l) => { model.setAttention(l, m); if (m) state.layers[l].mask = m; });
    // Trained-looking indexer weights (not the seeded init, so a reload without them would differ).
    const next = rng(9);
    for (const t of model.tensors().filter((t) => t.kind === 'selector')) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      model.setTensor(t.name, Float32Array.from({ length: n }, () => next() - 0.5));
    }
    const b = batch(5, 2, 64, config.vocab_size);
    const before = await model.evaluate(b);
    writeFileSync(join(root, 'tokenizer.json'), '{}');
    const dir = await exportModel(model, state, { path: 'out', flex_masks: true, mask_seq_len: 64 },
      { runDir: root, tokenizer: join(root, 'tokenizer.json'), maskArrays, validationDensity: before.density });
    const wq = model.getTensor('model.layers.1.self_attn.indexer.wq.weight');
    model.dispose();

    const exported = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(exported.sparse_attention.flex_masks.static_only).toBe(false);
    expect(exported.sparse_attention.layers[1].validation_density).toBe(before.density[1]);
    const reloaded = await engine.loadModel(dir);
    for (const l of exported.sparse_attention.layers) reloaded.setAttention(l.layer, l.attention === 'block_sparse' ? l.mask : null);
    const after = await reloaded.evaluate(b);
    reloaded.dispose();
    expect(after.loss).toBe(before.loss);
    expect(after.density).toEqual(before.density);
    expect(before.density[1]).toBeLessThan(1);

    if (torchProblem) {
      console.log(`skipping the PyTorch load of the export: ${PYTHON} -c "import torch" failed (${torchProblem})`);
      return;
    }
    // The module in the export folder loads the selectors; its static blocks equal the exported bitmap.
    const script = String.raw`
import sys, json, torch
sys.path.insert(0, sys.argv[1])
from sparse_attention import load_selectors, read_safetensors, blocks_to_bitmap
sel = load_selectors(sys.argv[1])
bm = read_safetensors(sys.argv[1] + '/sparse_bitmaps.safetensors')
kept, _ = sel[0].static_blocks(64)
rows = blocks_to_bitmap(kept[:, torch.arange(64) // 16, :])
print(json.dumps({'layers': sorted(sel), 'selectors': [sel[l].selector for l in sorted(sel)], 'wq': sel[1].wq.reshape(-1)[:5].tolist(),
                  'bitmap_equal': bool(torch.equal(rows, bm['layers.0.bitmap']))}))`;
    writeFileSync(join(root, 'load.py'), script);
    const r = spawnSync(PYTHON, [join(root, 'load.py'), dir], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout);
    expect(readFileSync(join(dir, MODULE_FILE), 'utf8').length).toBeGreaterThan(0);
    expect(got.layers).toEqual([0, 1]);
    expect(got.selectors).toEqual(['none', 'indexer']);
    expect(got.wq).toEqual(Array.from(wq.subarray(0, 5)));
    expect(got.bitmap_equal).toBe(true);
  }, 120_000);
});
