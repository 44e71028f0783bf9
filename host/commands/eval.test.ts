// `sparse-studio eval` end to end: spawns bin/sparse-studio.mjs on tiny checkpoints.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { engineAvailable } from '../../native/index';
import { loadCheckpoint } from '../../native/checkpoint/load';
import { readSafetensors, writeSafetensors } from '../../native/checkpoint/safetensors';
import { referenceMoeLoss } from '../../native/checkpoint/testing/moe-reference';
import { referenceLoss, type KeyMask } from '../../native/checkpoint/testing/reference';
import { tinyConfig, writeTinyCheckpoint } from '../../native/checkpoint/testing/tiny';
import { loadTokenizer } from '../data/tokenizer';
import { parseTokenIds, windows } from './eval';

const repo = join(import.meta.dirname, '../..');
const root = mkdtempSync(join(tmpdir(), 'eval-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [join(repo, 'bin/sparse-studio.mjs'), 'eval', ...args], { encoding: 'utf8', cwd: repo });
  return { code: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

describe('eval helpers', () => {
  it('cuts overlapping windows that predict every token once', () => {
    const ids = Array.from({ length: 13 }, (_, i) => i);
    expect(windows(ids, 5)).toEqual([[0, 1, 2, 3, 4, 5], [5, 6, 7, 8, 9, 10], [10, 11, 12]]);
    expect(windows([1, 2], 5)).toEqual([[1, 2]]);
    expect(windows([1], 5)).toEqual([]);
  });

  it('reads JSON arrays and whitespace-separated ids, naming a bad entry', () => {
    expect(parseTokenIds('[1, 2,3]', 'f')).toEqual([1, 2, 3]);
    expect(parseTokenIds(' 4\n5\t6 ', 'f')).toEqual([4, 5, 6]);
    expect(() => parseTokenIds('1 2 x', 'f')).toThrow('f: token 2 is not an integer ("x")');
    expect(() => parseTokenIds('[1, 2.5]', 'f')).toThrow('f: token 1 is not an integer (2.5)');
    expect(() => parseTokenIds('[1, ', 'f')).toThrow(/^f: not a valid JSON array/);
  });
});

describe.skipIf(!engineAvailable())('sparse-studio eval', () => {
  const config = tinyConfig('qwen3', false);
  const model = join(root, 'tiny');
  writeTinyCheckpoint(model, config, { seed: 2 });
  const ids = Array.from({ length: 13 }, (_, i) => (i * 11 + 3) % 37);

  it('refuses a config.json with 100000000 layers in one line (exit 2), before sizing anything from it', () => {
    const dir = join(root, 'deep');
    writeTinyCheckpoint(dir, config, { seed: 2 });
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 100000000 }));
    const file = join(root, 'deep-ids.json');
    writeFileSync(file, '[1, 2, 3]');
    const r = cli('--model', dir, '--token-ids', file, '--json');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sparse-studio eval: \S*config\.json: num_hidden_layers: 100000000 exceeds the supported maximum 1024$/);
  });

  it('gives the mean next-token loss of the float64 reference over the windows (1e-4 relative)', () => {
    const file = join(root, 'ids.json');
    writeFileSync(file, JSON.stringify(ids));
    const r = cli('--model', model, '--token-ids', file, '--seq', '5', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    const weights = loadCheckpoint(model).tensors;
    let total = 0;
    for (const w of windows(ids, 5)) total += referenceLoss(config, weights, w, 1, w.length - 1) * (w.length - 1);
    const want = total / 12;
    expect(out.tokens).toBe(12);
    expect(Math.abs(out.loss - want)).toBeLessThanOrEqual(1e-4 * want);
    expect(out.ppl).toBeCloseTo(Math.exp(out.loss), 10);
    const plain = join(root, 'ids.txt');
    writeFileSync(plain, ids.join(' '));
    expect(JSON.parse(cli('--model', model, '--token-ids', plain, '--seq', '5', '--json').stdout)).toEqual(out);
    const table = cli('--model', model, '--token-ids', plain, '--seq', '5');
    expect(table.stdout).toMatch(/^tokens 12 {2}loss \d+\.\d{4} nats {2}ppl \d+\.\d{2}$/);
  });

  it('adds aux_loss and expert_usage for a mixture-of-experts model (float64 reference, 1e-5)', () => {
    const moeConfig = tinyConfig('qwen3_moe', false);
    const dir = join(root, 'moe');
    writeTinyCheckpoint(dir, moeConfig, { seed: 5 });
    const moeIds = Array.from({ length: 17 }, (_, i) => (i * 7 + 1) % 37);
    const file = join(root, 'moe-ids.json');
    writeFileSync(file, JSON.stringify(moeIds));
    const r = cli('--model', dir, '--token-ids', file, '--seq', '8', '--json');
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(Object.keys(out)).toEqual(['tokens', 'loss', 'ppl', 'aux_loss', 'expert_usage']);
    // Two full windows of 9 tokens: one batch of 2 sequences.
    const want = referenceMoeLoss(moeConfig, loadCheckpoint(dir).tensors, [...moeIds.slice(0, 9), ...moeIds.slice(8, 17)], 2, 8);
    expect(out.tokens).toBe(16);
    expect(Math.abs(out.loss - want.ce)).toBeLessThanOrEqual(1e-5);
    expect(Math.abs(out.aux_loss - want.routing.aux)).toBeLessThanOrEqual(1e-5);
    expect(Object.keys(out.expert_usage)).toEqual(['0', '2']);
    for (const layer of ['0', '2']) (out.expert_usage[layer] as number[]).forEach((u, e) => expect(Math.abs(u - want.routing.usage[layer][e])).toBeLessThanOrEqual(1e-5));
  });

  it('runs an exported directory as exported: the layers config.json marks block-sparse use their masks (float64 reference, 1e-4)', () => {
    const dir = join(root, 'exported');
    writeTinyCheckpoint(dir, config, { seed: 4 });
    // Layer 1 (0-based) keeps, per 16-token query block, the first block and its own (causal): no window, 1 global block.
    const mask = { block_size: 16, global_blocks: 1, global_rows: 0, window_blocks: 0, random_blocks: 0, random_seed: 0, topk_blocks: 0, selector: 'none', dense_below: 0, share_gqa_group: true };
    const sparseConfig = { ...config, sparse_attention: { format: 'sparse-studio/1', layers: [{ layer: 0, attention: 'dense' }, { layer: 1, attention: 'block_sparse', mask }] } };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(sparseConfig));
    const stream = Array.from({ length: 49 }, (_, i) => (i * 13 + 5) % 37);
    const file = join(root, 'exported-ids.json');
    writeFileSync(file, JSON.stringify(stream));
    const weights = loadCheckpoint(dir).tensors;
    const keep: KeyMask = (layer) => (layer === 1 ? (_h, i, j) => j <= i && (Math.floor(j / 16) === 0 || Math.floor(j / 16) === Math.floor(i / 16)) : null);
    const sparse = JSON.parse(cli('--model', dir, '--token-ids', file, '--seq', '48', '--json').stdout);
    expect(sparse.sparse_layers).toBe(1);
    const wantSparse = referenceLoss(config, weights, stream, 1, 48, keep);
    expect(Math.abs(sparse.loss - wantSparse)).toBeLessThanOrEqual(1e-4 * wantSparse);
    const dense = JSON.parse(cli('--model', dir, '--token-ids', file, '--seq', '48', '--dense', '--json').stdout);
    expect(Object.keys(dense)).toEqual(['tokens', 'loss', 'ppl']);
    const wantDense = referenceLoss(config, weights, stream, 1, 48);
    expect(Math.abs(dense.loss - wantDense)).toBeLessThanOrEqual(1e-4 * wantDense);
    expect(Math.abs(wantSparse - wantDense)).toBeGreaterThan(1e-3); // the mask changes the answer
    expect(cli('--model', dir, '--token-ids', file, '--seq', '48').stdout).toMatch(/ {2}\(block-sparse attention on 1 of 2 layers, as config\.json declares\)$/);
  });

  it('refuses a malformed sparse_attention block in one line naming the field (exit 2)', () => {
    const ids = join(root, 'bad-sparse-ids.json');
    writeFileSync(ids, '[1, 2, 3]');
    const cases: [unknown, RegExp][] = [
      [{ layers: 'all' }, /sparse_attention\.layers: expected an array of layers$/],
      [{ layers: [{ layer: 2, attention: 'dense' }] }, /sparse_attention\.layers\[0\]\.layer: expected a layer in \[0, 1\], got 2$/],
      [{ layers: [{ layer: 0, attention: 'sparse' }] }, /sparse_attention\.layers\[0\]\.attention: expected 'dense' or 'block_sparse', got "sparse"$/],
      [{ layers: [{ layer: 1, attention: 'block_sparse', mask: { block_size: 48 } }] }, /sparse_attention\.layers\[0\]\.mask\.\S+: /],
      // A trained indexer without its weights would run as a fresh one: refused.
      [{ layers: [{ layer: 1, attention: 'block_sparse', mask: { block_size: 16, global_blocks: 1, global_rows: 0, window_blocks: 0, random_blocks: 0, random_seed: 0, topk_blocks: 1, selector: 'indexer', dense_below: 0, share_gqa_group: true } }] },
        /selector\.safetensors: missing, but config\.json's sparse_attention uses the indexer selector \(model\.layers\.1\.self_attn\.indexer\.wq\.weight\)$/],
    ];
    cases.forEach(([block, message], i) => {
      const dir = join(root, `bad-sparse-${i}`);
      writeTinyCheckpoint(dir, config, { seed: 2 });
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, sparse_attention: block }));
      const r = cli('--model', dir, '--token-ids', ids);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.split('\n')).toHaveLength(1);
      expect(cli('--model', dir, '--token-ids', ids, '--dense').code).toBe(0);
    });
  });

  it('tokenises --text-file with the model directory tokenizer.json', () => {
    const dir = join(root, 'with-tokenizer');
    writeTinyCheckpoint(dir, { ...config, vocab_size: 4096 }, { seed: 3 });
    copyFileSync(join(repo, 'models/demo/tokenizer.json'), join(dir, 'tokenizer.json'));
    const text = join(root, 'text.txt');
    writeFileSync(text, 'The jury said it did find that many of the voters were not there.');
    const r = cli('--model', dir, '--text-file', text, '--json');
    expect(r.stderr).toBe('');
    const expected = loadTokenizer(join(dir, 'tokenizer.json')).encode('The jury said it did find that many of the voters were not there.').length - 1;
    expect(JSON.parse(r.stdout).tokens).toBe(expected);
    expect(expected).toBeGreaterThan(5);
    const noTokenizer = cli('--model', model, '--text-file', text);
    expect(noTokenizer.code).toBe(2);
    expect(noTokenizer.stderr).toMatch(/^sparse-studio eval: .*tokenizer\.json.*$/);
  });

  it.each([
    [['--token-ids', 'x'], /--model DIR is required/],
    [['--model', 'm'], /give exactly one of --token-ids FILE or --text-file FILE/],
    [['--model', 'm', '--token-ids', 'a', '--text-file', 'b'], /give exactly one of/],
    [['--model', 'm', '--token-ids', 'a', '--seq', 'abc'], /--seq must be a positive integer, got 'abc'/],
    [['--model', 'm', '--token-ids', 'a', '--bogus'], /unknown argument '--bogus'/],
  ])('usage error %j exits 2 with the message and usage', (args, message) => {
    const r = cli(...args);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(message);
    expect(r.stderr).toContain('usage: sparse-studio eval');
  });

  it('reports bad inputs in one line with exit 2', () => {
    const bad = join(root, 'bad.json');
    writeFileSync(bad, '[1, 2, 99]');
    const cases: [string[], RegExp][] = [
      [['--model', model, '--token-ids', bad], /bad\.json: token 2 = 99 is outside the model's vocabulary \[0, 37\)$/],
      [['--model', model, '--token-ids', join(root, 'none.json')], /none\.json: cannot read \(ENOENT\)$/],
      [['--model', model, '--token-ids', bad, '--seq', '65'], /--seq 65 exceeds the model's max_position_embeddings \(64\)$/],
      [['--model', join(root, 'nowhere'), '--token-ids', bad], /nowhere\/config\.json: cannot read \(ENOENT\)$/],
    ];
    const one = join(root, 'one.json');
    writeFileSync(one, '[5]');
    cases.push([['--model', model, '--token-ids', one], /one\.json: needs at least 2 tokens to predict one, got 1$/]);
    const corrupt = join(root, 'corrupt');
    writeTinyCheckpoint(corrupt, config);
    writeFileSync(join(corrupt, 'model.safetensors'), Buffer.from([255, 255, 255, 255, 0, 0, 0, 0, 123]));
    cases.push([['--model', corrupt, '--token-ids', bad], /model\.safetensors: header length \d+ goes beyond the file/]);
    for (const [args, message] of cases) {
      const r = cli(...args);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.split('\n')).toHaveLength(1);
      expect(r.stdout).toBe('');
    }
  });

  it('exits 1 with one line, not a null loss, when the weights hold NaN', () => {
    const broken = join(root, 'nan-weights');
    writeTinyCheckpoint(broken, config, { seed: 3 });
    const file = join(broken, 'model.safetensors');
    const tensors = [...readSafetensors(file)].map(([name, t]) => ({ name, shape: t.shape, data: t.data }));
    tensors.find((t) => t.name === 'model.norm.weight')!.data[0] = Number.NaN;
    writeSafetensors(file, tensors);
    const ids = join(root, 'nan-ids.json');
    writeFileSync(ids, '[1, 2, 3, 4]');
    const r = cli('--model', broken, '--token-ids', ids, '--json');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/nan-weights: the model's loss is NaN/);
    expect(r.stderr.split('\n')).toHaveLength(1);
  });
});
