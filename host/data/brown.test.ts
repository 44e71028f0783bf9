import { describe, expect, it } from 'vitest';
import { brownFileToText, detokenize, loadBrownDocuments, stripTag } from './brown';

describe('Brown Corpus text', () => {
  it('strips tags, keeping slashes inside words', () => {
    expect(stripTag('Atlanta\'s/np$')).toBe("Atlanta's");
    expect(stripTag('1/2/cd')).toBe('1/2');
    expect(stripTag('.')).toBe('.');
  });

  it('rebuilds sentences with natural spacing around punctuation and quotes', () => {
    const words = ['``', 'Only', 'a', 'handful', "''", ',', 'the', 'jury', 'said', '(', 'twice', ')', '.'];
    expect(detokenize(words)).toBe('"Only a handful", the jury said (twice).');
    expect(detokenize(['by', 'Ivan', 'Allen', 'Jr.', '.'])).toBe('by Ivan Allen Jr.');
  });

  it('keeps paragraphs apart and joins the sentences inside one', () => {
    const tagged = '\n\n\tThe/at jury/nn said/vbd ./.\nIt/pps agreed/vbd ./.\n\n\n\tA/at new/jj one/cd ./.\n';
    expect(brownFileToText(tagged)).toBe('The jury said. It agreed.\n\nA new one.');
  });

  it('loads all 500 texts in 15 genres, with no tags left', () => {
    const docs = loadBrownDocuments();
    expect(docs).toHaveLength(500);
    expect(new Set(docs.map((d) => d.group)).size).toBe(15);
    expect(docs[0].id).toBe('ca01');
    expect(docs[0].group).toBe('news');
    expect(docs[0].text.startsWith('The Fulton County Grand Jury said Friday an investigation')).toBe(true);
    const sample = docs.map((d) => d.text).join('\n');
    expect(sample).not.toMatch(/[A-Za-z]\/(at|nn|vbd|in|jj)\s/);
    expect(sample).not.toContain('``');
  });
});
