import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { byteLevelAlphabet, countWords, toTokenizerJson, trainBpe } from './bpe-trainer';
import { loadTokenizer } from './tokenizer';

const corpus = [
  'the cat sat on the mat. the cat ate the rat.',
  'then the rat sat on the cat, and the mat sat on nothing at all.',
  'Über-naïve cafés, 1,234 times!',
];
// Three copies: every pair is seen at least three times, so training is not cut short.
const repeated = [...corpus, ...corpus, ...corpus];

describe('byte-level BPE training', () => {
  it('uses the 256-symbol GPT-2 byte alphabet', () => {
    const alphabet = byteLevelAlphabet();
    expect(new Set(alphabet).size).toBe(256);
    expect(alphabet[0x20]).toBe('Ġ');
    expect(alphabet[0x0a]).toBe('Ċ');
    expect(alphabet[0x41]).toBe('A');
  });

  it('counts words as the ByteLevel pre-tokenizer splits them', () => {
    const counts = countWords(['the cat, the cat']);
    expect([...counts]).toEqual([['the', 1], ['Ġcat', 2], [',', 1], ['Ġthe', 1]]);
  });

  it('merges the most frequent pair first and stops at the vocabulary size', () => {
    const trained = trainBpe(countWords(repeated), { vocabSize: 1 + 256 + 20, specialTokens: ['<|endoftext|>'] });
    expect(trained.vocab.size).toBe(277);
    expect(trained.merges).toHaveLength(20);
    // The first merge is a pair with the highest count, counted here the slow, obvious way.
    const pairCounts = new Map<string, number>();
    for (const [word, n] of countWords(repeated)) {
      const chars = [...word];
      for (let i = 0; i + 1 < chars.length; i++) pairCounts.set(chars[i] + ' ' + chars[i + 1], (pairCounts.get(chars[i] + ' ' + chars[i + 1]) ?? 0) + n);
    }
    const best = Math.max(...pairCounts.values());
    expect(pairCounts.get(trained.merges[0].join(' '))).toBe(best);
    expect(trained.vocab.get('<|endoftext|>')).toBe(0);
    expect(trained.vocab.has('Ġthe')).toBe(true);
  });

  it('is deterministic', () => {
    const a = trainBpe(countWords(corpus), { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
    const b = trainBpe(countWords(corpus), { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
    expect(a.merges).toEqual(b.merges);
  });

  it('stops early when no pair is frequent enough', () => {
    const trained = trainBpe(countWords(['ab cd']), { vocabSize: 1000, specialTokens: ['<|endoftext|>'] });
    expect(trained.merges).toHaveLength(0);
  });

  it('writes a tokenizer.json that @huggingface/tokenizers loads, applies and round-trips', () => {
    const trained = trainBpe(countWords(repeated), { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'bpe-')), 'tokenizer.json');
    writeFileSync(file, JSON.stringify(toTokenizerJson(trained, ['<|endoftext|>'])));
    const tok = loadTokenizer(file);
    expect(tok.vocabSize).toBe(300);
    for (const text of [...corpus, 'unseen words: zebra 42 ✓']) expect(tok.decode(tok.encode(text))).toBe(text);
    expect(tok.encode(' the')).toEqual([trained.vocab.get('Ġthe')]);
    expect(tok.encode('the cat sat').length).toBeLessThan('the cat sat'.length);
  });
});
