// Loads a Hugging Face tokenizer.json through @huggingface/tokenizers (a JS port of the Rust
// library) and wraps it in the small surface the data layer, eval CLI and runtime need.
// Malformed files become one-line errors naming the file, never a crash inside the library.
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { DataError } from './errors';
import { FileRefused, readRegularFile } from '../safe-read';

export interface TextTokenizer {
  /** Absolute path of the tokenizer.json that was loaded. */
  readonly path: string;
  /** sha256 (hex) of the tokenizer.json bytes: part of the token cache key. */
  readonly hash: string;
  /** One more than the largest id (model vocabulary and added tokens). */
  readonly vocabSize: number;
  /** The end-of-text token that separates packed documents. */
  readonly eosId: number;
  readonly eosToken: string;
  /** Plain text to ids; special-token strings in the text map to their ids, nothing is added. */
  encode(text: string): number[];
  decode(ids: ArrayLike<number>, options?: { skipSpecialTokens?: boolean }): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}

// End-of-text names used by common tokenizers, in order of preference.
const EOS_CANDIDATES = ['<|endoftext|>', '</s>', '<|end_of_text|>', '<eos>', '<|im_end|>', '<|eot_id|>', '[SEP]'];

/** Largest tokenizer file read (real ones are a few MB; large vocabularies ~30 MB). */
const MAX_TOKENIZER_BYTES = 256 * 1024 * 1024;

/** A regular file, opened non-blocking and bounded (a FIFO or /dev/zero is refused, not read). */
function readTokenizerFile(file: string): Buffer {
  try {
    return readRegularFile(file, MAX_TOKENIZER_BYTES);
  } catch (e) {
    const why = e instanceof FileRefused ? (e.code === 'not_found' ? 'ENOENT' : e.message.slice(file.length + 2)) : (e as NodeJS.ErrnoException).code ?? 'read error';
    throw new DataError('TOKENIZER_UNREADABLE', `${file}: cannot read tokenizer (${why})`);
  }
}

function readJson(file: string): unknown {
  const text = readTokenizerFile(file).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new DataError('TOKENIZER_INVALID', `${file}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Checks the parts of tokenizer.json that the library would otherwise trip over with a bare TypeError. */
function checkTokenizerJson(json: unknown, file: string): asserts json is Json {
  const fail = (message: string) => { throw new DataError('TOKENIZER_INVALID', `${file}: ${message}`); };
  if (!isObject(json)) fail('expected a JSON object');
  const j = json as Json;
  if (!isObject(j.model)) fail('no "model" section');
  const model = j.model as Json;
  if (typeof model.type !== 'string' && !(isObject(model.vocab) && Array.isArray(model.merges))) fail('model has no "type"');
  if (model.vocab === undefined || model.vocab === null || typeof model.vocab !== 'object') fail('model has no "vocab"');
  const type = model.type ?? 'BPE';
  if (type === 'BPE' && !Array.isArray(model.merges)) fail('BPE model has no "merges" list');
  if (j.added_tokens !== undefined && !Array.isArray(j.added_tokens)) fail('"added_tokens" is not a list');
  for (const [i, t] of ((j.added_tokens as unknown[]) ?? []).entries()) {
    if (!isObject(t) || typeof t.id !== 'number' || typeof t.content !== 'string') fail(`added_tokens[${i}] needs a numeric "id" and a string "content"`);
  }
}

/** tokenizer_config.json beside tokenizer.json, when present (eos token, clean-up flag). */
function readTokenizerConfig(file: string): Json {
  const configFile = path.join(path.dirname(file), 'tokenizer_config.json');
  if (!existsSync(configFile)) return {};
  const config = readJson(configFile);
  return isObject(config) ? config : {};
}

function tokenName(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value.content === 'string') return value.content;
  return undefined;
}

/** Loads `file` (a tokenizer.json, or a model directory that holds one). */
export function loadTokenizer(file: string): TextTokenizer {
  let resolved = path.resolve(file);
  if (existsSync(resolved) && statSync(resolved).isDirectory()) resolved = path.join(resolved, 'tokenizer.json');
  const bytes = readTokenizerFile(resolved);
  const json = readJson(resolved);
  checkTokenizerJson(json, resolved);
  const config = readTokenizerConfig(resolved);
  // The library insists these keys exist; Hugging Face files may leave them out.
  const complete = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...json };
  let tokenizer: Tokenizer;
  try {
    // Exact round trips matter more to us than tidy spacing: no clean-up unless the config asks.
    tokenizer = new Tokenizer(complete, { clean_up_tokenization_spaces: false, ...config });
  } catch (e) {
    throw new DataError('TOKENIZER_INVALID', `${resolved}: cannot build tokenizer (${(e as Error).message.split('\n')[0]})`);
  }
  const vocab = tokenizer.get_vocab(true);
  let vocabSize = 0;
  for (const id of vocab.values()) vocabSize = Math.max(vocabSize, id + 1);
  if (vocabSize === 0) throw new DataError('TOKENIZER_INVALID', `${resolved}: vocabulary is empty`);

  const configured = tokenName(config.eos_token);
  const eosToken = [configured, ...EOS_CANDIDATES].find((t): t is string => t !== undefined && vocab.has(t));
  if (eosToken === undefined) {
    throw new DataError('TOKENIZER_INVALID', `${resolved}: no end-of-text token (looked for ${EOS_CANDIDATES.join(', ')})`);
  }
  const eosId = vocab.get(eosToken)!;
  const hash = createHash('sha256').update(bytes).digest('hex');

  return {
    path: resolved,
    hash,
    vocabSize,
    eosId,
    eosToken,
    encode: (text) => tokenizer.encode(text, { add_special_tokens: false }).ids,
    decode: (ids, options) => tokenizer.decode(Array.from(ids), { skip_special_tokens: options?.skipSpecialTokens ?? false }),
    tokenToId: (token) => tokenizer.token_to_id(token),
    idToToken: (id) => tokenizer.id_to_token(id),
  };
}
