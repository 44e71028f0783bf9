// RoPE scaling: the engine's inverse frequencies and cos/sin attention factor for every rope_type
// transformers knows, against the float64 formulas of testing/rope-reference.ts, below and above the
// original context; config.json validation of each type's fields; a Llama 3.1-style checkpoint
// through `sparse-studio eval` against the float64 reference forward.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ModelConfig } from '../engine-api';
import { addon } from '../addon';
import { engineAvailable } from '../index';
import { validateModelConfig } from './config';
import { withFeatures } from './families';
import { loadCheckpoint } from './load';
import { referenceLoss } from './testing/reference';
import { referenceRopeParameters } from './testing/rope-reference';
import { tinyConfig, writeTinyCheckpoint } from './testing/tiny';

const root = mkdtempSync(join(tmpdir(), 'rope-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const LLAMA31 = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };

/** A Llama-style config with real head size and context, for frequency checks only (no weights). */
function ropeConfig(rope_scaling: Record<string, unknown> | null, extra: Partial<ModelConfig> = {}): ModelConfig {
  return validateModelConfig({
    model_type: 'llama', vocab_size: 8, hidden_size: 128, intermediate_size: 8, num_hidden_layers: 1,
    num_attention_heads: 1, head_dim: 128, rope_theta: 500000, max_position_embeddings: 131072, rope_scaling, ...extra,
  });
}

const types: [string, Record<string, unknown> | null, Partial<ModelConfig>][] = [
  ['default', null, {}],
  ['linear', { type: 'linear', factor: 4 }, {}],
  ['dynamic', { rope_type: 'dynamic', factor: 2 }, { max_position_embeddings: 4096 }],
  ['llama3 (Llama 3.1)', LLAMA31, {}],
  ['yarn (factor only)', { rope_type: 'yarn', factor: 4 }, { max_position_embeddings: 32768, rope_theta: 1000000 }],
  ['yarn (original context, betas, no truncation)', { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768, beta_fast: 16, beta_slow: 2, truncate: false }, { max_position_embeddings: 131072, rope_theta: 1000000 }],
  ['yarn (factor from the lengths, mscale ratio)', { rope_type: 'yarn', original_max_position_embeddings: 4096, mscale: 0.707, mscale_all_dim: 0.707 }, { max_position_embeddings: 163840, rope_theta: 10000 }],
  ['yarn (given attention factor)', { rope_type: 'yarn', factor: 8, attention_factor: 1.3 }, { max_position_embeddings: 8192 }],
  ['longrope', { rope_type: 'longrope', original_max_position_embeddings: 4096, short_factor: Array.from({ length: 64 }, (_, i) => 1 + i / 64), long_factor: Array.from({ length: 64 }, (_, i) => 1 + i / 8) }, { max_position_embeddings: 32768 }],
];

describe.skipIf(!engineAvailable())('rope_scaling: engine against transformers\' formulas (float64 reference)', () => {
  it.each(types)('%s: inv_freq (1e-6 relative) and attention factor, below and above the original context', (_, scaling, extra) => {
    const config = ropeConfig(scaling, extra);
    const original = (scaling?.original_max_position_embeddings as number | undefined) ?? config.max_position_embeddings;
    for (const seq of [16, original, original + 1, 2 * original]) {
      const got = addon().ropeFrequencies(withFeatures(config), seq);
      const want = referenceRopeParameters(config, seq);
      expect(got.invFreq.length).toBe(64);
      got.invFreq.forEach((x, i) => expect(Math.abs(x - want.invFreq[i])).toBeLessThanOrEqual(1e-6 * want.invFreq[i]));
      expect(got.attentionFactor).toBeCloseTo(want.attentionFactor, 12);
    }
  });

  it('changes what it should: llama3 scales only long wavelengths, dynamic only above max_position_embeddings, yarn scales cos/sin', () => {
    const plain = referenceRopeParameters(ropeConfig(null), 16).invFreq;
    const llama = addon().ropeFrequencies(withFeatures(ropeConfig(LLAMA31)), 16).invFreq;
    expect(llama[0] / plain[0]).toBeCloseTo(1, 6); // short wavelength kept
    expect(llama[63] / plain[63]).toBeCloseTo(1 / 8, 6); // long wavelength divided by factor
    const dyn = ropeConfig({ rope_type: 'dynamic', factor: 2 }, { max_position_embeddings: 4096 });
    const below = addon().ropeFrequencies(withFeatures(dyn), 4096).invFreq;
    const above = addon().ropeFrequencies(withFeatures(dyn), 8192).invFreq;
    expect(below[10] / plain[10]).toBeCloseTo(1, 6);
    expect(above[10]).toBeLessThan(below[10]);
    const yarn = addon().ropeFrequencies(withFeatures(ropeConfig({ rope_type: 'yarn', factor: 4 })), 16);
    expect(yarn.attentionFactor).toBeCloseTo(0.1 * Math.log(4) + 1, 12);
  });
});

describe('rope_scaling in config.json', () => {
  it('accepts each type, keeps its keys and sets rope_type', () => {
    expect(ropeConfig(LLAMA31).rope_scaling).toEqual(LLAMA31);
    expect(ropeConfig({ type: 'linear', factor: 2 }).rope_scaling).toEqual({ type: 'linear', rope_type: 'linear', factor: 2 });
    expect(ropeConfig({ rope_type: 'default' }).rope_scaling).toBeNull();
    expect(ropeConfig({ rope_type: 'yarn', original_max_position_embeddings: 32768 }).rope_scaling).toMatchObject({ factor: 4 });
  });

  it.each([
    [{ rope_type: 'ntk-by-parts' }, 'rope_scaling.rope_type'],
    [{ rope_type: 'linear' }, 'rope_scaling.factor'],
    [{ rope_type: 'dynamic', factor: 0.5 }, 'rope_scaling.factor'],
    [{ ...LLAMA31, low_freq_factor: undefined }, 'rope_scaling.low_freq_factor'],
    [{ ...LLAMA31, high_freq_factor: 1 }, 'rope_scaling.high_freq_factor'],
    [{ ...LLAMA31, original_max_position_embeddings: 81.5 }, 'rope_scaling.original_max_position_embeddings'],
    [{ ...LLAMA31, factor: 'eight' }, 'rope_scaling.factor'],
    [{ rope_type: 'yarn' }, 'rope_scaling.factor'],
    [{ rope_type: 'yarn', factor: 4, beta_fast: -1 }, 'rope_scaling.beta_fast'],
    [{ rope_type: 'yarn', factor: 4, attention_factor: 0 }, 'rope_scaling.attention_factor'],
    [{ rope_type: 'yarn', factor: 4, truncate: 'no' }, 'rope_scaling.truncate'],
  ])('rejects %j with one line naming %s', (rope_scaling, field) => {
    expect(() => validateModelConfig({ ...tinyConfig('llama', false), rope_scaling }, 'x/config.json'))
      .toThrow(new RegExp(`^x/config\\.json: ${field.replace(/\./g, '\\.')}: [^\\n]+$`));
  });
});

describe.skipIf(!engineAvailable())('a Llama 3.1-style checkpoint', () => {
  it('loads in `sparse-studio eval` and gives the float64 reference loss', () => {
    const config = tinyConfig('llama', false, { head_dim: 8, num_attention_heads: 2, num_key_value_heads: 1, rope_theta: 500000, max_position_embeddings: 131072, rope_scaling: LLAMA31 });
    const dir = join(root, 'llama31');
    writeTinyCheckpoint(dir, config, { seed: 5 });
    const ids = Array.from({ length: 21 }, (_, i) => (i * 7 + 1) % 37);
    const file = join(root, 'ids.json');
    writeFileSync(file, JSON.stringify(ids));
    const r = spawnSync(process.execPath, [join(import.meta.dirname, '../../bin/sparse-studio.mjs'), 'eval', '--model', dir, '--token-ids', file, '--seq', '20', '--json'], { encoding: 'utf8' });
    expect(r.stderr.trim()).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    const want = referenceLoss(config, loadCheckpoint(dir).tensors, ids, 1, 20);
    expect(out.tokens).toBe(20);
    expect(Math.abs(out.loss - want)).toBeLessThanOrEqual(1e-4 * want);
  });
});
