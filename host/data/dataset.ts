// The dataset the runtime trains on: documents -> tokens (cached on disk) -> train/validation
// split by document -> packed streams -> deterministic batches.
//
// Design choices:
// - Batches are a pure function of (dataset seed, step, batch, seq): a resumed run asks for
//   step N and gets exactly the rows the first run would have seen. No iterator state.
// - Documents are packed end to end, each followed by the tokenizer's end-of-text token, so no
//   compute goes to padding. The train stream's document order is shuffled once (seeded).
// - Each epoch over the train stream cuts it into seq-token windows at a seeded offset and visits
//   them in a seeded order, so epochs differ but every window is seen once per epoch.
// - Validation windows are fixed, in stream order, and never shuffled: every evaluation of every
//   run on this dataset sees the same held-out tokens.
import { createHash } from 'node:crypto';
import type { DatasetParams } from '../../core/schema';
import { bucketHistogram, lengthBuckets } from './curriculum';
import { readDocuments, type TextDocument } from './documents';
import { DataError } from './errors';
import { hashString, mixSeed, permutation, seededRandom, shuffleInPlace } from './rng';
import { checkValidationFraction, splitDocuments } from './split';
import { defaultCacheDir, readTokenCache, writeTokenCache, type TokenArray, type TokenizedCorpus } from './token-cache';
import { loadTokenizer, type TextTokenizer } from './tokenizer';

/** B rows of seq+1 ids: inputs [:, :seq], targets [:, 1:]; the engine's own batch type. */
import type { Batch } from '../../native/engine-api';
export type { Batch };

export interface TokenDataset {
  vocabSize: number;
  trainTokens: number;
  validationTokens: number;
  /** sha256 (hex) of the document texts: the dataset's identity in an exported pipeline. */
  contentHash: string;
  /** sha256 (hex) of the tokenizer.json the tokens came from. */
  tokenizerHash: string;
  eosId: number;
  trainDocuments: number;
  validationDocuments: number;
  /** True when the tokens came from the on-disk cache (tokenisation skipped). */
  fromCache: boolean;
  /** Deterministic in (dataset seed, step, batch, seq): resume-safe. */
  trainBatch(step: number, batch: number, seq: number): Batch;
  /** Deterministic, fixed held-out windows. */
  validationBatch(index: number, batch: number, seq: number): Batch;
  /** Distinct validation windows of this length (indices past it wrap around). */
  validationWindows(seq: number): number;
  /** The packed streams themselves (documents + end-of-text), e.g. for baselines; do not modify. */
  readonly trainStream: Int32Array;
  readonly validationStream: Int32Array;
}

export interface LoadDatasetOptions {
  /** Token cache folder (default: SPARSE_STUDIO_CACHE/tokens or <repo>/.cache/tokens). */
  cacheDir?: string;
  onLog?: (line: string) => void;
  /** Folder that relative dataset paths resolve against (default: the working directory). */
  baseDir?: string;
  /** Longest sequence the run will ask for: checked at load, so a too-short dataset fails early. */
  maxSeq?: number;
}

/** sha256 over the document texts, each framed by its byte length, in reading order. */
export function hashDocuments(documents: TextDocument[]): string {
  const hash = createHash('sha256');
  for (const doc of documents) {
    const bytes = Buffer.from(doc.text, 'utf8');
    hash.update(`${bytes.length}\n`);
    hash.update(bytes);
  }
  return hash.digest('hex');
}

// Texts longer than this are encoded in pieces (bounded memory in the pre-tokenizer regex).
const PIECE_CHARS = 1 << 18;

/**
 * Cuts long text where the byte-level pre-tokenizer would cut anyway: just before a newline
 * that precedes a non-space. Its regex never lets a token run into such a newline from the
 * left, and the newline becomes a token of its own, so the pieces tokenise exactly like the whole.
 */
export function safePieces(text: string, size = PIECE_CHARS): string[] {
  const pieces: string[] = [];
  let start = 0;
  while (text.length - start > size) {
    let cut = -1;
    for (let i = start + size; i < text.length - 1 && i < start + 4 * size; i++) {
      if (text[i] === '\n' && /\S/.test(text[i + 1])) { cut = i; break; }
    }
    if (cut < 0) break; // no safe point near: keep the rest whole
    pieces.push(text.slice(start, cut));
    start = cut;
  }
  pieces.push(text.slice(start));
  return pieces;
}

function tokenizeDocuments(documents: TextDocument[], tokenizer: TextTokenizer, log: (line: string) => void): TokenizedCorpus {
  const started = performance.now();
  const chunks: number[][] = [];
  const docOffsets = new Uint32Array(documents.length + 1);
  let total = 0;
  let lastLog = started;
  documents.forEach((doc, i) => {
    const ids: number[] = [];
    for (const piece of safePieces(doc.text)) for (const id of tokenizer.encode(piece)) ids.push(id);
    chunks.push(ids);
    total += ids.length;
    docOffsets[i + 1] = total;
    const now = performance.now();
    if (now - lastLog > 5000) {
      log(`tokenising: ${i + 1}/${documents.length} documents, ${total} tokens`);
      lastLog = now;
    }
  });
  const tokens: TokenArray = tokenizer.vocabSize <= 65536 ? new Uint16Array(total) : new Int32Array(total);
  let at = 0;
  for (const ids of chunks) { tokens.set(ids, at); at += ids.length; }
  log(`tokenised ${documents.length} documents into ${total} tokens in ${((performance.now() - started) / 1000).toFixed(1)}s`);
  return { tokens, docOffsets };
}

/** Concatenates documents in `order`, each followed by `eos`. */
function pack(corpus: TokenizedCorpus, order: number[], eos: number): Int32Array {
  let length = 0;
  for (const d of order) length += corpus.docOffsets[d + 1] - corpus.docOffsets[d] + 1;
  const stream = new Int32Array(length);
  let at = 0;
  for (const d of order) {
    stream.set(corpus.tokens.subarray(corpus.docOffsets[d], corpus.docOffsets[d + 1]), at);
    at += corpus.docOffsets[d + 1] - corpus.docOffsets[d];
    stream[at++] = eos;
  }
  return stream;
}

function checkBatchArgs(what: string, index: number, batch: number, seq: number): void {
  if (!Number.isInteger(index) || index < 0) throw new DataError('DATA_BAD_PARAMS', `${what}: index ${index} is not a non-negative integer`);
  if (!Number.isInteger(batch) || batch < 1) throw new DataError('DATA_BAD_PARAMS', `${what}: batch ${batch} is not a positive integer`);
  if (!Number.isInteger(seq) || seq < 1) throw new DataError('DATA_BAD_PARAMS', `${what}: seq ${seq} is not a positive integer`);
}

function tooShort(split: string, tokens: number, seq: number, source: string): DataError {
  return new DataError('DATA_TOO_SHORT', `${source}: the ${split} split has ${tokens} tokens, fewer than the ${seq + 1} one sequence of ${seq} needs; use more text or a shorter seq_len`);
}

/** Train and validation token streams of a split corpus. */
function splitStreams(corpus: TokenizedCorpus, groups: string[], params: DatasetParams, eos: number) {
  const numDocs = groups.length;
  const split = splitDocuments(groups, params.validation_fraction, params.seed);
  if (split.validation.length > 0) {
    const trainOrder = [...split.train];
    shuffleInPlace(trainOrder, seededRandom(mixSeed(params.seed, hashString('train-order'))));
    return { train: pack(corpus, trainOrder, eos), validation: pack(corpus, split.validation, eos), trainDocs: split.train.length, validationDocs: split.validation.length };
  }
  // One document: hold out its tail instead (the split cannot be by document).
  const whole = pack(corpus, [...Array(numDocs).keys()], eos);
  const cut = Math.floor(whole.length * (1 - params.validation_fraction));
  return { train: whole.slice(0, cut), validation: whole.slice(cut), trainDocs: numDocs, validationDocs: 0 };
}

function checkParams(params: DatasetParams): void {
  if (params === null || typeof params !== 'object') throw new DataError('DATA_BAD_PARAMS', 'dataset: params missing');
  if (!['auto', 'txt', 'jsonl'].includes(params.format)) throw new DataError('DATA_BAD_PARAMS', `dataset.format: "${params.format}" is not auto, txt or jsonl`);
  checkValidationFraction(params.validation_fraction);
  if (!Number.isInteger(params.seed)) throw new DataError('DATA_BAD_PARAMS', `dataset.seed: ${params.seed} is not an integer`);
}

/** Loads, tokenises (or reads the cache), splits and packs a dataset. */
export async function loadDataset(params: DatasetParams, tokenizerJsonPath: string, options: LoadDatasetOptions = {}): Promise<TokenDataset> {
  const log = options.onLog ?? (() => {});
  checkParams(params);
  const tokenizer = loadTokenizer(tokenizerJsonPath);
  const documents = readDocuments(params, options.baseDir);
  const contentHash = hashDocuments(documents);
  if (params.content_hash && params.content_hash !== contentHash) {
    log(`warning: dataset ${params.source} changed since the pipeline was exported (content_hash ${params.content_hash.slice(0, 12)}..., now ${contentHash.slice(0, 12)}...)`);
  }

  const cacheDir = options.cacheDir ?? defaultCacheDir();
  let corpus = readTokenCache(cacheDir, contentHash, tokenizer.hash);
  const fromCache = corpus !== null;
  if (corpus) {
    log(`token cache hit: ${corpus.tokens.length} tokens (${cacheDir})`);
  } else {
    log(`tokenising ${documents.length} documents of ${params.source}`);
    corpus = tokenizeDocuments(documents, tokenizer, log);
    try {
      log(`token cache written: ${writeTokenCache(cacheDir, contentHash, tokenizer.hash, corpus)}`);
    } catch (e) {
      log(`warning: token cache not written (${(e as Error).message}); the next load tokenises again`);
    }
  }

  const docLengths = Array.from({ length: documents.length }, (_, i) => corpus!.docOffsets[i + 1] - corpus!.docOffsets[i]);
  if (docLengths.length > 0 && Math.max(...docLengths) >= 64) {
    const buckets = lengthBuckets(64, Math.max(64, Math.max(...docLengths)));
    const histogram = bucketHistogram(docLengths, buckets);
    log(`document lengths (tokens): ${buckets.map((b, i) => `<=${b}: ${histogram[i]}`).filter((_, i) => histogram[i] > 0).join(', ')}`);
  }

  const streams = splitStreams(corpus, documents.map((d) => d.group), params, tokenizer.eosId);
  log(`split: train ${streams.trainDocs} documents / ${streams.train.length} tokens, validation ${streams.validationDocs} documents / ${streams.validation.length} tokens`);
  const source = params.source;
  if (options.maxSeq !== undefined) {
    if (streams.train.length < options.maxSeq + 1) throw tooShort('train', streams.train.length, options.maxSeq, source);
    if (streams.validation.length < options.maxSeq + 1) throw tooShort('validation', streams.validation.length, options.maxSeq, source);
  }
  return new PackedDataset(streams.train, streams.validation, {
    vocabSize: tokenizer.vocabSize, contentHash, tokenizerHash: tokenizer.hash, eosId: tokenizer.eosId,
    trainDocuments: streams.trainDocs, validationDocuments: streams.validationDocs, fromCache, seed: params.seed, source,
  });
}

interface PackedInfo {
  vocabSize: number; contentHash: string; tokenizerHash: string; eosId: number;
  trainDocuments: number; validationDocuments: number; fromCache: boolean; seed: number; source: string;
}

/** An epoch's view of the train stream at one sequence length. */
interface EpochWindows { offset: number; order: Uint32Array }

export class PackedDataset implements TokenDataset {
  readonly vocabSize: number;
  readonly trainTokens: number;
  readonly validationTokens: number;
  readonly contentHash: string;
  readonly tokenizerHash: string;
  readonly eosId: number;
  readonly trainDocuments: number;
  readonly validationDocuments: number;
  readonly fromCache: boolean;
  readonly trainStream: Int32Array;
  readonly validationStream: Int32Array;
  private readonly seed: number;
  private readonly source: string;
  private readonly epochs = new Map<string, EpochWindows>();

  constructor(private readonly train: Int32Array, private readonly validation: Int32Array, info: PackedInfo) {
    this.trainStream = train;
    this.validationStream = validation;
    this.vocabSize = info.vocabSize;
    this.trainTokens = train.length;
    this.validationTokens = validation.length;
    this.contentHash = info.contentHash;
    this.tokenizerHash = info.tokenizerHash;
    this.eosId = info.eosId;
    this.trainDocuments = info.trainDocuments;
    this.validationDocuments = info.validationDocuments;
    this.fromCache = info.fromCache;
    this.seed = info.seed;
    this.source = info.source;
  }

  /** Windows per epoch at this length: one fewer than fit, leaving room for a random offset. */
  private trainWindowCount(seq: number): number {
    const fit = Math.floor((this.train.length - 1) / seq);
    return fit >= 2 ? fit - 1 : fit;
  }

  private epoch(seq: number, epoch: number): EpochWindows {
    const key = `${seq}:${epoch}`;
    let windows = this.epochs.get(key);
    if (!windows) {
      const count = this.trainWindowCount(seq);
      const slack = this.train.length - 1 - count * seq; // tokens left over for the offset
      const random = seededRandom(mixSeed(this.seed, hashString('train-windows'), seq, epoch));
      const offset = Math.floor(random() * (Math.min(slack, seq - 1) + 1));
      windows = { offset, order: permutation(count, mixSeed(this.seed, hashString('train-order'), seq, epoch)) };
      if (this.epochs.size >= 8) this.epochs.delete(this.epochs.keys().next().value!);
      this.epochs.set(key, windows);
    }
    return windows;
  }

  trainBatch(step: number, batch: number, seq: number): Batch {
    checkBatchArgs('trainBatch', step, batch, seq);
    if (this.train.length < seq + 1) throw tooShort('train', this.train.length, seq, this.source);
    const count = this.trainWindowCount(seq);
    const tokens = new Int32Array(batch * (seq + 1));
    for (let row = 0; row < batch; row++) {
      const sample = step * batch + row;
      const { offset, order } = this.epoch(seq, Math.floor(sample / count));
      const start = offset + order[sample % count] * seq;
      tokens.set(this.train.subarray(start, start + seq + 1), row * (seq + 1));
    }
    return { tokens, batch, seq };
  }

  validationWindows(seq: number): number {
    return Math.floor((this.validation.length - 1) / seq);
  }

  validationBatch(index: number, batch: number, seq: number): Batch {
    checkBatchArgs('validationBatch', index, batch, seq);
    const count = this.validationWindows(seq);
    if (count < 1) throw tooShort('validation', this.validation.length, seq, this.source);
    const tokens = new Int32Array(batch * (seq + 1));
    for (let row = 0; row < batch; row++) {
      const start = ((index * batch + row) % count) * seq;
      tokens.set(this.validation.subarray(start, start + seq + 1), row * (seq + 1));
    }
    return { tokens, batch, seq };
  }
}
