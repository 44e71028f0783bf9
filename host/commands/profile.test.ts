// `sparse-studio profile`: the helpers, the engine's attentionProfile on a tiny random model, and
// the command on models/demo.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { engine, engineAvailable } from '../../native/index';
import { tinyConfig } from '../../native/checkpoint/testing/tiny';
import { budgetFor, floorCurve, parseProfileArgs, pointAt, PROFILE_DENSITIES, type ProfileReport } from './profile';
import type { MaskBoundReport } from '../mask-bounds';
import type { Pipeline } from '../../core/schema';
import { effectiveSeed } from '../../core/seeds';
import { replaceBound } from '../../renderer/src/editor/replace-bound';

const repo = join(import.meta.dirname, '../..');

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [join(repo, 'bin/sparse-studio.mjs'), 'profile', ...args], { encoding: 'utf8', cwd: repo });
  return { code: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

describe('profile helpers', () => {
  it('parses flags with defaults and names bad ones', () => {
    expect(parseProfileArgs(['--model', 'm'])).toEqual({
      model: 'm', data: 'builtin:brown', block: 64, batches: 4, batchSize: 2, targetKl: 0.1, shareGqa: true, json: false,
    });
    const a = parseProfileArgs(['--model', 'm', '--seq', '128', '--block', '32', '--target-kl', '0.05', '--per-query-head', '--json']);
    expect(a).toMatchObject({ seq: 128, block: 32, targetKl: 0.05, shareGqa: false, json: true });
    expect(() => parseProfileArgs(['--model', 'm', '--block', '0'])).toThrow("--block must be a positive integer, got '0'");
    expect(() => parseProfileArgs(['--model', 'm', '--target-kl', 'x'])).toThrow('--target-kl must be a number');
    expect(() => parseProfileArgs([])).toThrow('--model DIR is required');
    expect(PROFILE_DENSITIES[0]).toBe(0.05);
    expect(PROFILE_DENSITIES[PROFILE_DENSITIES.length - 1]).toBe(1);
  });

  it('merges repeated densities and picks the smallest density under the target', () => {
    const curve = floorCurve([0.4, 0.4, 0.6, 1], [2, 1.5, 0.08, 0], [0.3, 0.4, 0.9, 1]);
    expect(curve).toEqual([{ density: 0.4, floor: 1.5, recall: 0.4 }, { density: 0.6, floor: 0.08, recall: 0.9 }, { density: 1, floor: 0, recall: 1 }]);
    expect(budgetFor(curve, 0.1).density).toBe(0.6);
    expect(budgetFor(curve, 0.01).density).toBe(1);
    expect(budgetFor(curve, 5).density).toBe(0.4);
    expect(pointAt(curve, 0.3)).toBeNull();
    expect(pointAt(curve, 0.75)?.density).toBe(0.6);
  });
});

describe.skipIf(!engineAvailable())('engine attentionProfile', () => {
  it('returns causal mass maps whose rows sum to 1 and non-increasing floors that reach 0 at density 1', async () => {
    const model = engine.createModel(tinyConfig('llama', true, { max_position_embeddings: 64 }), { seed: 3 });
    try {
      const S = 3, T = 40, V = model.config.vocab_size;
      const tokens = Int32Array.from({ length: S * (T + 1) }, (_, i) => (i * 7 + 3) % V);
      for (const shareGqa of [true, false]) {
        const p = await model.attentionProfile!({ tokens, batch: S, seq: T }, { batch: 2, block: 8, shareGqa, densities: [0.3, 0.5, 1] });
        expect(p).toMatchObject({ block: 8, n_blocks: 5, mask_heads: shareGqa ? 2 : 4 });
        expect(p.layers).toHaveLength(2);
        for (const l of p.layers) {
          expect(l.mass).toHaveLength(4 * 5 * 5);
          for (let r = 0; r < 4 * 5; r++) {
            const i = r % 5;
            const row = Array.from(l.mass.subarray(r * 5, r * 5 + 5));
            expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
            for (let j = i + 1; j < 5; j++) expect(row[j]).toBe(0);
          }
          expect(l.density[0]).toBeGreaterThanOrEqual(0.3);
          expect(l.density[2]).toBe(1);
          expect(l.floor[0]).toBeGreaterThanOrEqual(l.floor[1]);
          expect(l.floor[1]).toBeGreaterThanOrEqual(l.floor[2]);
          expect(l.floor[2]).toBeLessThan(1e-9);
          expect(l.recall[2]).toBeCloseTo(1, 9);
          // Jensen: the mean of -log(kept mass) is at least -log of the mean kept mass.
          expect(l.floor[0]).toBeGreaterThanOrEqual(-Math.log(l.recall[0]) - 1e-12);
        }
      }
      await expect(model.attentionProfile!({ tokens, batch: S, seq: T }, { batch: 2, block: 8, shareGqa: true, densities: [0.5, 0.2] }))
        .rejects.toThrow('ascending');
    } finally {
      model.dispose();
    }
  });
});

describe.skipIf(!engineAvailable())('sparse-studio profile', () => {
  it('profiles models/demo: a table, and --json with every layer', () => {
    const args = ['--model', 'models/demo', '--seq', '64', '--block', '16', '--batches', '1', '--batch-size', '1'];
    const table = cli(...args);
    expect(table.stderr).toBe('');
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^attention profile: models\/demo, 1 sequences x 64 tokens of builtin:brown, block 16 \(4 blocks\)/);
    expect(table.stdout.split('\n')).toHaveLength(3 + 12 + 1);
    const json = cli(...args, '--json');
    expect(json.code).toBe(0);
    const r = JSON.parse(json.stdout) as ProfileReport;
    expect(r).toMatchObject({ seq: 64, block: 16, n_blocks: 4, sequences: 1, heads: 4, mask_heads: 2, share_gqa: true, target_kl: 0.1 });
    expect(r.layers).toHaveLength(12);
    for (const l of r.layers) {
      expect(l.mass).toHaveLength(4);
      expect(l.budget.floor).toBeLessThanOrEqual(0.1);
      expect(l.curve[l.curve.length - 1].density).toBe(1);
    }
  });

  it('--pipeline: the bound of each Replace node\'s mask, equal to what the editor computes from the same profile', () => {
    // 256 tokens: 16 blocks, so the top-k masks of stages 1-2 have rows with room for their top-k blocks.
    const r = cli('--model', 'models/demo', '--seq', '256', '--block', '16', '--batches', '1', '--batch-size', '1', '--pipeline', 'templates/seed-progressive.json', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as ProfileReport & { masks: MaskBoundReport[] };
    expect(report.masks.map((m) => [m.node, m.kind])).toEqual([['s1-replace', 'oracle'], ['s2-replace-a', 'oracle'], ['s2-replace-b', 'oracle'], ['s3-replace', 'static']]);
    const pipeline = JSON.parse(readFileSync(join(repo, 'templates/seed-progressive.json'), 'utf8')) as Pipeline;
    for (const m of report.masks) {
      const node = pipeline.nodes.find((n) => n.id === m.node)!;
      if (node.kind !== 'replace') throw new Error(m.node);
      const editor = replaceBound(report, { ...node.params.mask, random_seed: effectiveSeed(node.params.mask.random_seed, pipeline.seed) }, node.params.layers);
      if (typeof editor === 'string') throw new Error(editor);
      expect(m.bound).toBeCloseTo(editor.mean, 12);
      expect(m.bound).toBeGreaterThan(0);
    }
    const table = cli('--model', 'models/demo', '--seq', '64', '--block', '32', '--batches', '1', '--batch-size', '1', '--pipeline', 'templates/seed-progressive.json');
    expect(table.stdout).toContain('s3-replace (layers 11-12): no bound: its block is 16, the profile\'s 32');
    const bad = cli('--model', 'models/demo', '--pipeline', 'package.json');
    expect(bad.code).toBe(2);
    expect(bad.stderr.split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^sparse-studio profile: package.json: /);
  });

  it('rejects a bad flag with exit 2', () => {
    const r = cli('--model', 'models/demo', '--seq', 'x');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sparse-studio profile: --seq must be a positive integer, got 'x'/);
  });
});
