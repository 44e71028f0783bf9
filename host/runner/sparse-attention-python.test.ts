// The exported PyTorch module (host/export-python/sparse_attention.py), run by /usr/bin/python3 with
// torch on the CPU, selects the same key blocks as the engine for the same q/k (pooled, indexer,
// infllm_v2; GQA shared and per head; lengths with tail blocks; the dense switch), and its masked
// attention over them matches the engine's sparse attention output to 1e-4, with the density the
// engine's evaluation reports.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { MaskSpec } from '../../core/schema';
import { engineAvailable } from '../../native/index';
import { selectorAttention } from '../../native/mask';
import { writeSafetensors } from '../../native/checkpoint/safetensors';
import { rng } from '../../native/checkpoint/testing/tiny';

export const PYTHON = '/usr/bin/python3';
export const MODULE_DIR = new URL('../export-python/', import.meta.url).pathname;

/** null when `/usr/bin/python3 -c "import torch"` works, else why not (one line). */
export function torchMissing(): string | null {
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} cannot run (${r.error.message})`;
  if (r.status !== 0) return `${PYTHON} -c "import torch" failed: ${(r.stderr || '').trim().split('\n').pop()}`;
  return null;
}

const missing = torchMissing();
if (missing) console.log(`skipping the PyTorch-vs-engine checks: ${missing}`);
const root = mkdtempSync(join(tmpdir(), 'sparse-py-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function randn(n: number, seed: number): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next()));
}

const mask = (m: Partial<MaskSpec>): MaskSpec => ({
  block_size: 16, global_blocks: 1, global_rows: 0, window_blocks: 1, random_blocks: 0, random_seed: 0,
  topk_blocks: 3, selector: 'pooled', dense_below: 0, share_gqa_group: true, ...m,
});

interface Case { name: string; spec: MaskSpec; layer: number; H: number; Hkv: number; T: number; D: number; C?: number }
const CASES: Case[] = [
  { name: 'pooled, GQA 2 shared, tail of 5, random blocks', spec: mask({ random_blocks: 2, random_seed: 7 }), layer: 3, H: 4, Hkv: 2, T: 16 * 9 + 5, D: 8 },
  { name: 'pooled, per query head, tail of 3', spec: mask({ share_gqa_group: false, topk_blocks: 2 }), layer: 0, H: 4, Hkv: 2, T: 16 * 7 + 3, D: 8 },
  { name: 'pooled, 32-token blocks, global rows, no tail', spec: mask({ block_size: 32, global_rows: 1, random_blocks: 1, random_seed: 11, topk_blocks: 2 }), layer: 1, H: 2, Hkv: 1, T: 32 * 10, D: 4 },
  { name: 'indexer, GQA 4, tail of 11', spec: mask({ selector: 'indexer', topk_blocks: 2, random_blocks: 1, random_seed: 5 }), layer: 2, H: 4, Hkv: 1, T: 16 * 8 + 11, D: 8, C: 16 },
  { name: 'indexer, per query head, tail of 1', spec: mask({ selector: 'indexer', share_gqa_group: false, window_blocks: 0 }), layer: 5, H: 4, Hkv: 2, T: 16 * 10 + 1, D: 4, C: 24 },
  { name: 'infllm_v2, GQA 2, tail of 7', spec: mask({ selector: 'infllm_v2', window_blocks: 1, topk_blocks: 3, dense_below: 64 }), layer: 0, H: 4, Hkv: 2, T: 16 * 12 + 7, D: 8 },
  { name: 'infllm_v2, GQA 4, 32-token blocks, two init blocks, tail of 19', spec: mask({ block_size: 32, selector: 'infllm_v2', global_blocks: 2, window_blocks: 0, topk_blocks: 2 }), layer: 1, H: 8, Hkv: 2, T: 32 * 7 + 19, D: 4 },
  { name: 'infllm_v2 below dense_below (dense)', spec: mask({ selector: 'infllm_v2', dense_below: 512 }), layer: 0, H: 4, Hkv: 2, T: 100, D: 4 },
  { name: 'pooled below dense_below (dense)', spec: mask({ dense_below: 512 }), layer: 0, H: 2, Hkv: 2, T: 90, D: 4 },
  { name: 'no selector: static and random blocks only', spec: mask({ selector: 'none', random_blocks: 3, random_seed: 123456789 }), layer: 7, H: 2, Hkv: 2, T: 16 * 11 + 9, D: 4 },
];

/** Reads the cases' tensors, runs the exported module, writes bitmaps (hex) and outputs. */
const DRIVER = String.raw`
import json, sys, types, torch
sys.path.insert(0, sys.argv[1])
import sparse_attention
from sparse_attention import LayerSelector, read_safetensors, masked_attention

# A stand-in for torch.nn.attention.flex_attention (absent from this torch): create_block_mask
# evaluates the mask_mod on every (b, h, q, kv), flex_attention attends where it allows, so the
# module's FlexAttention path (its mask_mod) is checked against the masked softmax.
def create_block_mask(mask_mod, B, H, Q, KV, device=None, BLOCK_SIZE=128):
    return mask_mod(torch.arange(B)[:, None, None, None], torch.arange(H)[None, :, None, None],
                    torch.arange(Q)[None, None, :, None], torch.arange(KV)[None, None, None, :])
def flex_attention(q, k, v, block_mask=None, enable_gqa=False):
    return masked_attention(q, k, v, block_mask)
flex = types.ModuleType('torch.nn.attention.flex_attention')
flex.create_block_mask, flex.flex_attention = create_block_mask, flex_attention
has_flex = sparse_attention._has_flex()
root = sys.argv[2]
cases = json.load(open(root + '/cases.json'))
t = read_safetensors(root + '/inputs.safetensors')
res = {}
for i, c in enumerate(cases):
    H, Hkv, T, D = c['H'], c['Hkv'], c['T'], c['D']
    q = t['%d.q' % i].reshape(1, H, T, D); k = t['%d.k' % i].reshape(1, Hkv, T, D); v = t['%d.v' % i].reshape(1, Hkv, T, D)
    x, ix = None, None
    if c['spec']['selector'] == 'indexer':
        x = t['%d.x' % i].reshape(1, T, c['C'])
        ix = {'wq': t['%d.wq' % i].reshape(-1, c['C']), 'wk': t['%d.wk' % i].reshape(-1, c['C']), 'weights_proj': t['%d.wh' % i]}
    sel = LayerSelector(c['spec'], c['layer'], H, Hkv, ix)
    bits = sel.bitmap(q, k, x)[0]
    out = sel(q, k, v, x, impl='masked')[0]
    flex_diff = None
    if not has_flex:
        sys.modules['torch.nn.attention'] = types.ModuleType('torch.nn.attention')
        sys.modules['torch.nn.attention.flex_attention'] = flex
        sys.modules['torch.nn.attention'].flex_attention = flex
        flex_diff = (sel(q, k, v, x, impl='flex')[0] - out).abs().max().item()
        del sys.modules['torch.nn.attention'], sys.modules['torch.nn.attention.flex_attention']
    res[c['name']] = {'bits': [[[format(w & (2**64 - 1), 'x') for w in row] for row in head] for head in bits.tolist()],
                      'out': out.reshape(-1).tolist(), 'density': sel.density(q, k, x), 'flex_diff': flex_diff}
json.dump(res, open(root + '/results.json', 'w'))
`;

/** Engine selection as per-token bitmaps (mask heads, T, words) of hex words. */
function engineTokenBits(c: Case, r: ReturnType<typeof selectorAttention>): string[][][] {
  const nb = Math.ceil(c.T / c.spec.block_size), words = Math.ceil(nb / 64);
  const heads = c.spec.share_gqa_group ? c.Hkv : c.H;
  const out: string[][][] = [];
  for (let h = 0; h < heads; h++) {
    const rows: string[][] = [];
    for (let t = 0; t < c.T; t++) {
      const row: bigint[] = new Array(words).fill(0n);
      if (r.blocks && r.count && r.kMax !== undefined) {
        for (let i = 0; i < r.count[h * c.T + t]; i++) { const b = r.blocks[(h * c.T + t) * r.kMax + i]; row[b >> 6] |= 1n << BigInt(b & 63); }
      } else {
        const qb = Math.floor(t / c.spec.block_size);
        for (let w = 0; w < words; w++) row[w] = r.bits![(h * nb + qb) * words + w];
      }
      rows.push(row.map((w) => w.toString(16)));
    }
    out.push(rows);
  }
  return out;
}

describe.skipIf(!!missing || !engineAvailable())('exported PyTorch selector module vs the engine', () => {
  const engineResults = new Map<string, ReturnType<typeof selectorAttention>>();
  let python: Record<string, { bits: string[][][]; out: number[]; density: number; flex_diff: number | null }> = {};

  it('runs the module on every case with /usr/bin/python3', () => {
    const tensors: { name: string; shape: number[]; data: Float32Array }[] = [];
    CASES.forEach((c, i) => {
      const q = randn(c.H * c.T * c.D, 10 * i + 1), k = randn(c.Hkv * c.T * c.D, 10 * i + 2), v = randn(c.Hkv * c.T * c.D, 10 * i + 3);
      tensors.push({ name: `${i}.q`, shape: [q.length], data: q }, { name: `${i}.k`, shape: [k.length], data: k }, { name: `${i}.v`, shape: [v.length], data: v });
      let indexer;
      if (c.spec.selector === 'indexer') {
        const C = c.C!, Hi = 4, Di = 32;
        const scale = (a: Float32Array, s: number) => a.map((z) => z * s);
        indexer = { x: randn(c.T * C, 10 * i + 4), wq: scale(randn(Hi * Di * C, 10 * i + 5), 0.25), wk: scale(randn(Di * C, 10 * i + 6), 0.25), wh: Float32Array.from([0.4, 0.3, 0.2, 0.1]), channels: C };
        tensors.push({ name: `${i}.x`, shape: [indexer.x.length], data: indexer.x }, { name: `${i}.wq`, shape: [indexer.wq.length], data: indexer.wq },
          { name: `${i}.wk`, shape: [indexer.wk.length], data: indexer.wk }, { name: `${i}.wh`, shape: [4], data: indexer.wh });
      }
      engineResults.set(c.name, selectorAttention(c.spec, c.layer, q, k, v, { heads: c.H, kvHeads: c.Hkv, seq: c.T, dim: c.D }, indexer));
    });
    writeSafetensors(join(root, 'inputs.safetensors'), tensors);
    writeFileSync(join(root, 'cases.json'), JSON.stringify(CASES));
    writeFileSync(join(root, 'driver.py'), DRIVER);
    const r = spawnSync(PYTHON, [join(root, 'driver.py'), MODULE_DIR, root], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    python = JSON.parse(readFileSync(join(root, 'results.json'), 'utf8'));
  }, 180_000);

  it.each(CASES.map((c) => [c.name, c] as const))('%s: same blocks per (mask head, query token), same output to 1e-4', (name, c) => {
    const mine = engineResults.get(name)!, theirs = python[name];
    expect(theirs, 'python ran this case').toBeDefined();
    const want = engineTokenBits(c, mine);
    let mismatches = 0, rows = 0, sparseRows = 0;
    want.forEach((head, h) => head.forEach((row, t) => {
      rows++;
      if (JSON.stringify(row) !== JSON.stringify(theirs.bits[h][t])) mismatches++;
      const kept = row.reduce((n, w) => n + BigInt('0x' + w).toString(2).replace(/0/g, '').length, 0);
      if (kept < Math.floor(t / c.spec.block_size) + 1) sparseRows++;
    }));
    expect(mismatches, `${mismatches} of ${rows} rows differ`).toBe(0);
    const dense = c.spec.dense_below > c.T;
    expect(sparseRows > 0).toBe(!dense); // the selection really drops blocks (unless dense)
    let worst = 0;
    for (let i = 0; i < mine.out.length; i++) worst = Math.max(worst, Math.abs(mine.out[i] - theirs.out[i]));
    expect(worst).toBeLessThan(1e-4);
    expect(theirs.density).toBeCloseTo(mine.density, 12);
    if (theirs.flex_diff !== null) expect(theirs.flex_diff).toBe(0); // the FlexAttention path's mask_mod is the same mask
  });
});
