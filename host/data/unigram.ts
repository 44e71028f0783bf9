// The unigram baseline: a model that ignores context and predicts each token by its training
// frequency. Any trained language model should beat its perplexity by a wide margin, which makes
// it the yardstick the demo model's README reports next to the model's own perplexity.

export interface UnigramScore {
  /** Mean next-token cross-entropy (nats) over the scored tokens. */
  loss: number;
  ppl: number;
  /** Tokens scored. */
  tokens: number;
}

/**
 * Scores `evalTokens` under token frequencies counted on `trainTokens`, add-one smoothed over
 * the vocabulary so unseen tokens keep a finite cost. The first eval token is skipped, because
 * a language model has no context to predict it from either.
 */
export function unigramScore(trainTokens: ArrayLike<number>, evalTokens: ArrayLike<number>, vocabSize: number): UnigramScore {
  if (evalTokens.length < 2) throw new Error(`unigram baseline: needs at least 2 evaluation tokens, got ${evalTokens.length}`);
  const counts = new Float64Array(vocabSize).fill(1);
  for (let i = 0; i < trainTokens.length; i++) counts[trainTokens[i]]++;
  const logTotal = Math.log(trainTokens.length + vocabSize);
  let nll = 0;
  for (let i = 1; i < evalTokens.length; i++) nll += logTotal - Math.log(counts[evalTokens[i]]);
  const tokens = evalTokens.length - 1;
  const loss = nll / tokens;
  return { loss, ppl: Math.exp(loss), tokens };
}
