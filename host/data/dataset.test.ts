import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { DatasetParams } from '../../core/schema';
import { loadBrownDocuments } from './brown';
import { loadDataset, safePieces } from './dataset';
import { cacheEntryDir } from './token-cache';
import { loadTokenizer } from './tokenizer';

const tokenizerPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../models/demo/tokenizer.json');
const root = mkdtempSync(path.join(tmpdir(), 'dataset-'));
const cacheDir = path.join(root, 'cache');

// 24 real texts: 8 each of three Brown genres, as .txt files in one sub-folder per genre.
const corpusDir = path.join(root, 'corpus');
const picked = loadBrownDocuments().filter((d) => /^c[ajp]0[1-8]$/.test(d.id));
for (const doc of picked) {
  mkdirSync(path.join(corpusDir, doc.group), { recursive: true });
  writeFileSync(path.join(corpusDir, doc.group, `${doc.id}.txt`), doc.text);
}

const params = (source: string, extra: Partial<DatasetParams> = {}): DatasetParams => ({
  source, format: 'auto', text_field: 'text', validation_fraction: 0.25, seed: 42, content_hash: '', ...extra,
});
const rows = (b: { tokens: Int32Array; batch: number; seq: number }) =>
  Array.from({ length: b.batch }, (_, r) => Array.from(b.tokens.subarray(r * (b.seq + 1), (r + 1) * (b.seq + 1))).join(','));

describe('loadDataset', () => {
  it('tokenises once, then reuses the token shards (and reports how long each load took)', async () => {
    const logs: string[] = [];
    const t0 = performance.now();
    const first = await loadDataset(params(corpusDir), tokenizerPath, { cacheDir, onLog: (l) => logs.push(l) });
    const firstMs = performance.now() - t0;
    expect(first.fromCache).toBe(false);
    expect(logs.some((l) => l.startsWith('tokenised 24 documents'))).toBe(true);
    const entry = cacheEntryDir(cacheDir, first.contentHash, first.tokenizerHash);
    expect(readdirSync(entry).sort()).toEqual(['docs.u32', 'meta.json', 'tokens-0000.u16']);

    logs.length = 0;
    const t1 = performance.now();
    const second = await loadDataset(params(corpusDir), tokenizerPath, { cacheDir, onLog: (l) => logs.push(l) });
    const secondMs = performance.now() - t1;
    expect(second.fromCache).toBe(true);
    expect(logs.some((l) => l.startsWith('token cache hit'))).toBe(true);
    expect(logs.some((l) => l.startsWith('tokenis'))).toBe(false);
    expect(secondMs).toBeLessThan(firstMs);
    console.log(`dataset load (${first.trainTokens + first.validationTokens} tokens): first ${firstMs.toFixed(0)} ms, cached ${secondMs.toFixed(0)} ms`);
    expect(second.trainTokens).toBe(first.trainTokens);
    expect(second.trainBatch(3, 2, 64)).toEqual(first.trainBatch(3, 2, 64));
  });

  it('splits by document, stratified by sub-folder, and packs documents with end-of-text separators', async () => {
    const ds = await loadDataset(params(corpusDir), tokenizerPath, { cacheDir });
    expect([ds.trainDocuments, ds.validationDocuments]).toEqual([18, 6]);
    expect(ds.vocabSize).toBe(4096);
    const tok = loadTokenizer(tokenizerPath);
    let expected = 0;
    for (const doc of picked) expected += tok.encode(doc.text).length + 1;
    expect(ds.trainTokens + ds.validationTokens).toBe(expected);
    // Validation is its own documents: the stream holds exactly 6 separators.
    const all = ds.validationBatch(0, 1, ds.validationTokens - 1).tokens;
    expect(all.filter((t) => t === ds.eosId).length).toBe(6);
    expect(all[all.length - 1]).toBe(ds.eosId);
  });

  it('gives batches of B rows of seq+1 consecutive tokens, a pure function of (seed, step, batch, seq)', async () => {
    const a = await loadDataset(params(corpusDir), tokenizerPath, { cacheDir });
    const b = await loadDataset(params(corpusDir), tokenizerPath, { cacheDir });
    const batch = a.trainBatch(7, 4, 128);
    expect(batch.batch).toBe(4);
    expect(batch.seq).toBe(128);
    expect(batch.tokens).toHaveLength(4 * 129);
    expect(batch.tokens.every((t) => t >= 0 && t < a.vocabSize)).toBe(true);
    expect(b.trainBatch(7, 4, 128)).toEqual(batch); // a resumed run sees the same rows
    b.trainBatch(100, 4, 128); // order of calls does not matter
    expect(b.trainBatch(7, 4, 128)).toEqual(batch);
    expect(a.trainBatch(8, 4, 128)).not.toEqual(batch);
    const reseeded = await loadDataset(params(corpusDir, { seed: 43 }), tokenizerPath, { cacheDir });
    expect(reseeded.trainBatch(7, 4, 128)).not.toEqual(batch);
    // Rows are windows of real text: they decode to readable prose.
    const text = loadTokenizer(tokenizerPath).decode(batch.tokens.subarray(0, 129));
    expect(text).toMatch(/ the /);
  });

  it('visits every window once per epoch, in a new order and at a new offset each epoch', async () => {
    const ds = await loadDataset(params(corpusDir), tokenizerPath, { cacheDir });
    const seq = 256;
    const perEpoch = Math.floor((ds.trainTokens - 1) / seq) - 1;
    const epoch0 = Array.from({ length: perEpoch }, (_, s) => rows(ds.trainBatch(s, 1, seq))[0]);
    expect(new Set(epoch0).size).toBe(perEpoch);
    const epoch1 = Array.from({ length: perEpoch }, (_, s) => rows(ds.trainBatch(perEpoch + s, 1, seq))[0]);
    expect(new Set(epoch1).size).toBe(perEpoch);
    expect(epoch1.slice(0, 5)).not.toEqual(epoch0.slice(0, 5));
    // Rows of batch B at step s are samples s*B ... s*B+B-1 of the same schedule.
    expect(rows(ds.trainBatch(2, 3, seq))).toEqual(epoch0.slice(6, 9));
  });

  it('keeps validation windows fixed and apart from training', async () => {
    const ds = await loadDataset(params(corpusDir), tokenizerPath, { cacheDir });
    const v = ds.validationBatch(1, 4, 64);
    expect(ds.validationBatch(1, 4, 64)).toEqual(v);
    expect(rows(ds.validationBatch(0, 8, 64)).slice(4)).toEqual(rows(v));
    const windows = ds.validationWindows(64);
    expect(windows).toBe(Math.floor((ds.validationTokens - 1) / 64));
    expect(rows(ds.validationBatch(windows, 1, 64))).toEqual(rows(ds.validationBatch(0, 1, 64))); // wraps
    const train = new Set(Array.from({ length: 50 }, (_, s) => rows(ds.trainBatch(s, 8, 32))).flat());
    expect(rows(ds.validationBatch(0, 32, 32)).filter((r) => train.has(r))).toEqual([]);
  });

  it('holds out the tail of a single document', async () => {
    const file = path.join(root, 'single.txt');
    writeFileSync(file, picked[0].text);
    const ds = await loadDataset(params(file, { validation_fraction: 0.1 }), tokenizerPath, { cacheDir });
    expect(ds.validationDocuments).toBe(0);
    const total = ds.trainTokens + ds.validationTokens;
    expect(ds.trainTokens).toBe(Math.floor(total * 0.9));
    expect(ds.validationBatch(0, 2, 64).tokens).toHaveLength(130);
  });

  it('reads JSONL documents and hashes their content', async () => {
    const file = path.join(root, 'docs.jsonl');
    writeFileSync(file, picked.slice(0, 6).map((d) => JSON.stringify({ id: d.id, body: d.text })).join('\n'));
    const ds = await loadDataset(params(file, { text_field: 'body' }), tokenizerPath, { cacheDir });
    expect(ds.trainDocuments + ds.validationDocuments).toBe(6);
    const changed = path.join(root, 'docs2.jsonl');
    writeFileSync(changed, picked.slice(0, 5).map((d) => JSON.stringify({ body: d.text })).join('\n'));
    const other = await loadDataset(params(changed, { text_field: 'body' }), tokenizerPath, { cacheDir });
    expect(other.contentHash).not.toBe(ds.contentHash);
    const logs: string[] = [];
    await loadDataset(params(changed, { text_field: 'body', content_hash: ds.contentHash }), tokenizerPath, { cacheDir, onLog: (l) => logs.push(l) });
    expect(logs.some((l) => l.includes('changed since the pipeline was exported'))).toBe(true);
  });

  it('refuses text shorter than one sequence, at load (maxSeq) or when a batch is asked for', async () => {
    const file = path.join(root, 'short.txt');
    writeFileSync(file, 'A short note. It has only a few words in it, nowhere near one training sequence.');
    await expect(loadDataset(params(file), tokenizerPath, { cacheDir, maxSeq: 64 })).rejects.toThrow(
      new RegExp(`^${file}: the train split has \\d+ tokens, fewer than the 65 one sequence of 64 needs`));
    const ds = await loadDataset(params(file), tokenizerPath, { cacheDir });
    expect(() => ds.trainBatch(0, 1, 64)).toThrow(/the train split has \d+ tokens, fewer than the 65/);
    expect(() => ds.validationBatch(0, 1, 64)).toThrow(/the validation split has \d+ tokens, fewer than the 65/);
    expect(() => ds.trainBatch(-1, 1, 4)).toThrow('trainBatch: index -1 is not a non-negative integer');
    expect(() => ds.trainBatch(0, 0, 4)).toThrow('trainBatch: batch 0 is not a positive integer');
  });

  it('passes on bad input as one-line errors naming the file', async () => {
    const empty = path.join(root, 'empty.txt');
    writeFileSync(empty, '');
    await expect(loadDataset(params(empty), tokenizerPath, { cacheDir })).rejects.toThrow(`${empty}: file is empty`);
    const badTokenizer = path.join(root, 'tokenizer.json');
    writeFileSync(badTokenizer, '{"model": ');
    await expect(loadDataset(params(corpusDir), badTokenizer, { cacheDir })).rejects.toThrow(new RegExp(`^${badTokenizer}: not valid JSON`));
    await expect(loadDataset(params(corpusDir, { validation_fraction: 0.7 }), tokenizerPath, { cacheDir })).rejects.toThrow('dataset.validation_fraction: 0.7 is outside (0, 0.5)');
  });

  it('loads the built-in Brown Corpus: 448 train and 52 validation texts with the demo split', async () => {
    const ds = await loadDataset(params('builtin:brown', { validation_fraction: 0.1, seed: 1234 }), tokenizerPath);
    expect([ds.trainDocuments, ds.validationDocuments]).toEqual([448, 52]);
    expect(ds.trainTokens).toBeGreaterThan(1_000_000);
    expect(ds.validationTokens).toBeGreaterThan(100_000);
  });
});

describe('safePieces', () => {
  it('cuts long text only where the pre-tokenizer cuts anyway, so pieces tokenise like the whole', () => {
    const text = picked.slice(0, 3).map((d) => d.text).join('\n');
    const pieces = safePieces(text, 4000);
    expect(pieces.length).toBeGreaterThan(3);
    expect(pieces.join('')).toBe(text);
    const tok = loadTokenizer(tokenizerPath);
    expect(pieces.flatMap((p) => tok.encode(p))).toEqual(tok.encode(text));
    // Whitespace runs of every kind around the newlines.
    const tricky = 'a  \nb\n\n\nc d\n e\n\tf \n\n"g"\n'.repeat(300);
    const trickyPieces = safePieces(tricky, 50);
    expect(trickyPieces.length).toBeGreaterThan(50);
    expect(trickyPieces.flatMap((p) => tok.encode(p))).toEqual(tok.encode(tricky));
  });
});
