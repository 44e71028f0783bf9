import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadTokenizer } from './tokenizer';

const demoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../models/demo');
const dir = mkdtempSync(path.join(tmpdir(), 'tokenizer-'));
const write = (name: string, content: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
};

describe('loadTokenizer on the demo tokenizer', () => {
  const tok = loadTokenizer(path.join(demoDir, 'tokenizer.json'));

  it('knows its vocabulary and end-of-text token', () => {
    expect(tok.vocabSize).toBe(4096);
    expect(tok.eosToken).toBe('<|endoftext|>');
    expect(tok.eosId).toBe(0);
    expect(tok.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('round-trips text exactly, including spacing, punctuation and non-ASCII', () => {
    const texts = ['The jury said, "no evidence" -- twice.\n\n  Indented   spaces\ttab', 'Café naïve 東京 🙂 ½', "it's they'll 1,234.56"];
    for (const text of texts) expect(tok.decode(tok.encode(text))).toBe(text);
  });

  it('compresses English: fewer tokens than bytes, common words in one token', () => {
    const text = 'The government of the United States said that the people would have been there.';
    expect(tok.encode(text).length).toBeLessThan(text.length / 3);
    expect(tok.encode(' the')).toHaveLength(1);
  });

  it('maps the end-of-text string to its id and can skip it when decoding', () => {
    const ids = tok.encode('a<|endoftext|>b');
    expect(ids).toContain(0);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('ab');
  });

  it('accepts a model directory instead of the file', () => {
    expect(loadTokenizer(demoDir).hash).toBe(tok.hash);
  });
});

describe('loadTokenizer on bad files', () => {
  it('names a missing file', () => {
    const p = path.join(dir, 'absent.json');
    expect(() => loadTokenizer(p)).toThrow(`${p}: cannot read tokenizer (ENOENT)`);
  });
  it('names a file that is not JSON', () => {
    const p = write('broken.json', '{"model": {"type": "BPE",');
    expect(() => loadTokenizer(p)).toThrow(new RegExp(`^${p}: not valid JSON \\(`));
  });
  it('names a file without a model, vocab or merges', () => {
    const noModel = write('no-model.json', '{"version":"1.0"}');
    expect(() => loadTokenizer(noModel)).toThrow(`${noModel}: no "model" section`);
    const noVocab = write('no-vocab.json', '{"model":{"type":"BPE","merges":[]}}');
    expect(() => loadTokenizer(noVocab)).toThrow(`${noVocab}: model has no "vocab"`);
    const noMerges = write('no-merges.json', '{"model":{"type":"BPE","vocab":{"a":0}}}');
    expect(() => loadTokenizer(noMerges)).toThrow(`${noMerges}: BPE model has no "merges" list`);
  });
  it('names a tokenizer without an end-of-text token', () => {
    const p = write('no-eos.json', JSON.stringify({ model: { type: 'BPE', vocab: { a: 0, b: 1 }, merges: [] } }));
    expect(() => loadTokenizer(p)).toThrow(`${p}: no end-of-text token`);
  });
  it('loads a minimal valid file with the optional sections left out', () => {
    const p = write('minimal.json', JSON.stringify({
      added_tokens: [{ id: 3, content: '</s>', special: true }],
      model: { type: 'BPE', vocab: { a: 0, b: 1, ab: 2, '</s>': 3 }, merges: ['a b'] },
    }));
    const tok = loadTokenizer(p);
    expect(tok.eosId).toBe(3);
    expect(tok.encode('ab')).toEqual([2]);
  });
});
