import { describe, expect, it } from 'vitest';
import { unigramScore } from './unigram';

describe('unigramScore', () => {
  it('uses add-one smoothed training frequencies and skips the first token', () => {
    // train counts over vocab 4: token 0 x3, token 1 x1 -> smoothed p = [4, 2, 1, 1] / 8
    const score = unigramScore([0, 0, 0, 1], [3, 0, 1], 4);
    const expected = -(Math.log(4 / 8) + Math.log(2 / 8)) / 2;
    expect(score.tokens).toBe(2);
    expect(score.loss).toBeCloseTo(expected, 12);
    expect(score.ppl).toBeCloseTo(Math.exp(expected), 12);
  });

  it('gives perplexity equal to the vocabulary size for uniform data', () => {
    const uniform = Array.from({ length: 4000 }, (_, i) => i % 8);
    expect(unigramScore(uniform, uniform, 8).ppl).toBeCloseTo(8, 6);
  });

  it('refuses to score fewer than two tokens', () => {
    expect(() => unigramScore([1], [1], 4)).toThrow('unigram baseline: needs at least 2 evaluation tokens, got 1');
  });
});
