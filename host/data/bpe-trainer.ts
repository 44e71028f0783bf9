// Byte-level BPE training that writes a Hugging Face tokenizer.json (GPT-2 style).
//
// Design choices:
// - Pre-tokenisation is the library's own ByteLevel pre-tokenizer, so training sees exactly the
//   words that @huggingface/tokenizers will later merge: no drift between trainer and encoder.
// - Words are counted once (type -> frequency); merges work on word types, not on the text.
// - Pair counts are updated incrementally: a merge touches only the words that contain the pair
//   (an index pair -> words), and a max-heap with lazy deletion finds the next best pair.
//   That keeps ~4k merges over the Brown Corpus well under a minute.
// - Ties break on the pair's ids (older symbols first), so training is deterministic.
import { ByteLevelPreTokenizer } from '@huggingface/tokenizers';

export interface BpeTrainOptions {
  /** Total vocabulary including special tokens. */
  vocabSize: number;
  /** Special tokens, given ids 0..n-1 in this order (the first is end-of-text). */
  specialTokens: string[];
  /** Pairs seen fewer times than this are never merged. */
  minFrequency?: number;
  onProgress?: (merges: number, total: number) => void;
}

export interface TrainedBpe {
  vocab: Map<string, number>;
  merges: [string, string][];
}

/** GPT-2's reversible byte -> printable character map (the ByteLevel alphabet). */
export function byteLevelAlphabet(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const map = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    map[b] = printable.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  }
  return map;
}

/** Counts the byte-level words of `texts`, exactly as the ByteLevel pre-tokenizer splits them. */
export function countWords(texts: Iterable<string>): Map<string, number> {
  const pre = new ByteLevelPreTokenizer({ type: 'ByteLevel', add_prefix_space: false, use_regex: true });
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const word of pre.pre_tokenize_text(text)) counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  return counts;
}

/** Binary max-heap of (count, pair key); stale entries are skipped when popped. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];
  get size() { return this.counts.length; }
  private above(i: number, j: number) {
    return this.counts[i] > this.counts[j] || (this.counts[i] === this.counts[j] && this.keys[i] < this.keys[j]);
  }
  private swap(i: number, j: number) {
    [this.counts[i], this.counts[j]] = [this.counts[j], this.counts[i]];
    [this.keys[i], this.keys[j]] = [this.keys[j], this.keys[i]];
  }
  push(count: number, key: number) {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.above(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }
  pop(): [number, number] {
    const top: [number, number] = [this.counts[0], this.keys[0]];
    const lastCount = this.counts.pop()!;
    const lastKey = this.keys.pop()!;
    if (this.counts.length > 0) {
      this.counts[0] = lastCount;
      this.keys[0] = lastKey;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < this.counts.length && this.above(l, best)) best = l;
        if (r < this.counts.length && this.above(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

/** Learns merges over counted words until the vocabulary reaches `vocabSize`. */
export function trainBpe(wordCounts: Map<string, number>, options: BpeTrainOptions): TrainedBpe {
  const alphabet = byteLevelAlphabet();
  const symbols: string[] = [...options.specialTokens, ...alphabet];
  const symbolId = new Map(symbols.map((s, i) => [s, i]));
  if (options.vocabSize < symbols.length) throw new Error(`vocabSize ${options.vocabSize} is below the ${symbols.length} special and byte tokens`);
  const minFrequency = Math.max(1, options.minFrequency ?? 2);
  const KEY = options.vocabSize; // pair key = a * KEY + b (ids stay below vocabSize)

  const words: Int32Array[] = [];
  const freqs: number[] = [];
  for (const [word, freq] of wordCounts) {
    words.push(Int32Array.from([...word], (ch) => symbolId.get(ch)!));
    freqs.push(freq);
  }

  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addPairs = (w: number, sign: number, changed: Set<number>) => {
    const word = words[w];
    for (let i = 0; i + 1 < word.length; i++) {
      const key = word[i] * KEY + word[i + 1];
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + sign * freqs[w]);
      changed.add(key);
      if (sign > 0) {
        let set = pairWords.get(key);
        if (!set) pairWords.set(key, (set = new Set()));
        set.add(w);
      }
    }
  };
  const initial = new Set<number>();
  for (let w = 0; w < words.length; w++) addPairs(w, +1, initial);
  const heap = new PairHeap();
  for (const key of initial) heap.push(pairCounts.get(key)!, key);

  const merges: [string, string][] = [];
  const target = options.vocabSize - symbols.length;
  while (merges.length < target && heap.size > 0) {
    const [count, key] = heap.pop();
    if (pairCounts.get(key) !== count) continue; // stale entry
    if (count < minFrequency) break;
    const a = Math.floor(key / KEY);
    const b = key % KEY;
    const merged = symbols.length;
    symbols.push(symbols[a] + symbols[b]);
    merges.push([symbols[a], symbols[b]]);

    const changed = new Set<number>();
    for (const w of pairWords.get(key) ?? []) {
      const word = words[w];
      let contains = false;
      for (let i = 0; i + 1 < word.length; i++) if (word[i] === a && word[i + 1] === b) { contains = true; break; }
      if (!contains) continue; // the word lost this pair to an earlier merge
      addPairs(w, -1, changed);
      const out: number[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i + 1 < word.length && word[i] === a && word[i + 1] === b) { out.push(merged); i++; }
        else out.push(word[i]);
      }
      words[w] = Int32Array.from(out);
      addPairs(w, +1, changed);
    }
    pairWords.delete(key);
    pairCounts.delete(key);
    for (const k of changed) {
      const c = pairCounts.get(k);
      if (c === undefined) continue;
      if (c <= 0) { pairCounts.delete(k); pairWords.delete(k); continue; }
      heap.push(c, k);
    }
    if (options.onProgress && merges.length % 500 === 0) options.onProgress(merges.length, target);
  }
  return { vocab: new Map(symbols.map((s, i) => [s, i])), merges };
}

/** The Hugging Face tokenizer.json of a trained byte-level BPE. */
export function toTokenizerJson(trained: TrainedBpe, specialTokens: string[]): Record<string, unknown> {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specialTokens.map((content) => ({
      id: trained.vocab.get(content)!, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(trained.vocab),
      // "a b" strings: byte-level symbols never contain a real space.
      merges: trained.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}
