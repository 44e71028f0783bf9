// On-disk cache of tokenised corpora, so a dataset is tokenised once per (text, tokenizer).
//
// Layout: <cacheDir>/<content16>-<tokenizer16>/
//   meta.json          hashes, dtype, counts, shard list (written last: its presence commits the entry)
//   docs.u32           document start offsets into the token stream (numDocs + 1, uint32 LE)
//   tokens-0000.u16    token ids, uint16 LE when the vocabulary fits, else int32 LE (.i32)
// Entries are written to a temporary folder and renamed into place, so a crash or a concurrent
// writer never leaves a half-written entry that a later load would trust.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type TokenArray = Uint16Array | Int32Array;

export interface TokenizedCorpus {
  tokens: TokenArray;
  /** Start of document i is docOffsets[i]; its end is docOffsets[i + 1]. */
  docOffsets: Uint32Array;
}

interface CacheMeta {
  format: 1;
  contentHash: string;
  tokenizerHash: string;
  dtype: 'u16' | 'i32';
  numDocs: number;
  numTokens: number;
  shards: { file: string; tokens: number }[];
}

const SHARD_TOKENS = 1 << 24;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** SPARSE_STUDIO_CACHE/tokens when set, else .cache/tokens in the repository root. */
export function defaultCacheDir(): string {
  const override = process.env.SPARSE_STUDIO_CACHE;
  return override ? path.resolve(override, 'tokens') : path.join(repoRoot, '.cache', 'tokens');
}

/** Folder of one cache entry, named by both hashes. */
export function cacheEntryDir(cacheDir: string, contentHash: string, tokenizerHash: string): string {
  return path.join(cacheDir, `${contentHash.slice(0, 16)}-${tokenizerHash.slice(0, 16)}`);
}

function encodeLE(values: TokenArray | Uint32Array, dtype: 'u16' | 'i32' | 'u32'): Buffer {
  const width = dtype === 'u16' ? 2 : 4;
  const out = Buffer.allocUnsafe(values.length * width);
  for (let i = 0; i < values.length; i++) {
    if (dtype === 'u16') out.writeUInt16LE(values[i], i * 2);
    else if (dtype === 'i32') out.writeInt32LE(values[i], i * 4);
    else out.writeUInt32LE(values[i], i * 4);
  }
  return out;
}

function decodeLE(bytes: Buffer, dtype: 'u16' | 'i32' | 'u32', into: TokenArray | Uint32Array, at: number): void {
  const width = dtype === 'u16' ? 2 : 4;
  const n = bytes.length / width;
  for (let i = 0; i < n; i++) {
    into[at + i] = dtype === 'u16' ? bytes.readUInt16LE(i * 2) : dtype === 'i32' ? bytes.readInt32LE(i * 4) : bytes.readUInt32LE(i * 4);
  }
}

/** The cached corpus for these hashes, or null when absent or inconsistent (then it is re-made). */
export function readTokenCache(cacheDir: string, contentHash: string, tokenizerHash: string): TokenizedCorpus | null {
  const dir = cacheEntryDir(cacheDir, contentHash, tokenizerHash);
  const metaFile = path.join(dir, 'meta.json');
  if (!existsSync(metaFile)) return null;
  try {
    const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as CacheMeta;
    if (meta.format !== 1 || meta.contentHash !== contentHash || meta.tokenizerHash !== tokenizerHash) return null;
    const width = meta.dtype === 'u16' ? 2 : 4;
    const tokens = meta.dtype === 'u16' ? new Uint16Array(meta.numTokens) : new Int32Array(meta.numTokens);
    let at = 0;
    for (const shard of meta.shards) {
      const bytes = readFileSync(path.join(dir, shard.file));
      if (bytes.length !== shard.tokens * width) return null;
      decodeLE(bytes, meta.dtype, tokens, at);
      at += shard.tokens;
    }
    const docBytes = readFileSync(path.join(dir, 'docs.u32'));
    if (at !== meta.numTokens || docBytes.length !== (meta.numDocs + 1) * 4) return null;
    const docOffsets = new Uint32Array(meta.numDocs + 1);
    decodeLE(docBytes, 'u32', docOffsets, 0);
    if (docOffsets[meta.numDocs] !== meta.numTokens) return null;
    return { tokens, docOffsets };
  } catch {
    return null;
  }
}

/** Writes a corpus entry atomically; returns its folder. */
export function writeTokenCache(cacheDir: string, contentHash: string, tokenizerHash: string, corpus: TokenizedCorpus): string {
  const dir = cacheEntryDir(cacheDir, contentHash, tokenizerHash);
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  mkdirSync(tmp, { recursive: true });
  const dtype: 'u16' | 'i32' = corpus.tokens instanceof Uint16Array ? 'u16' : 'i32';
  const shards: CacheMeta['shards'] = [];
  for (let start = 0, i = 0; start < corpus.tokens.length || i === 0; start += SHARD_TOKENS, i++) {
    const part = corpus.tokens.subarray(start, Math.min(corpus.tokens.length, start + SHARD_TOKENS));
    const file = `tokens-${String(i).padStart(4, '0')}.${dtype}`;
    writeFileSync(path.join(tmp, file), encodeLE(part, dtype));
    shards.push({ file, tokens: part.length });
  }
  writeFileSync(path.join(tmp, 'docs.u32'), encodeLE(corpus.docOffsets, 'u32'));
  const meta: CacheMeta = {
    format: 1, contentHash, tokenizerHash, dtype,
    numDocs: corpus.docOffsets.length - 1, numTokens: corpus.tokens.length, shards,
  };
  writeFileSync(path.join(tmp, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
  // Another process may have finished the same entry meanwhile; the content is identical.
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  try {
    renameSync(tmp, dir);
  } catch {
    if (!(existsSync(dir) && statSync(dir).isDirectory())) throw new Error(`${dir}: cannot write token cache`);
    rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}
