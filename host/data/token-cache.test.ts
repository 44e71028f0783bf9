import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cacheEntryDir, defaultCacheDir, readTokenCache, writeTokenCache } from './token-cache';

const H1 = 'a'.repeat(64);
const H2 = 'b'.repeat(64);

describe('token cache', () => {
  it('round-trips uint16 tokens as little-endian files', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cache-'));
    const corpus = { tokens: Uint16Array.from([1, 2, 65535, 4, 5]), docOffsets: Uint32Array.from([0, 3, 5]) };
    const entry = writeTokenCache(dir, H1, H2, corpus);
    expect(entry).toBe(cacheEntryDir(dir, H1, H2));
    expect(readdirSync(entry).sort()).toEqual(['docs.u32', 'meta.json', 'tokens-0000.u16']);
    const bytes = readFileSync(path.join(entry, 'tokens-0000.u16'));
    expect([...bytes.subarray(0, 6)]).toEqual([1, 0, 2, 0, 0xff, 0xff]);
    expect(readTokenCache(dir, H1, H2)).toEqual(corpus);
  });

  it('round-trips int32 tokens for large vocabularies', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cache-'));
    const corpus = { tokens: Int32Array.from([70000, 1, 151643]), docOffsets: Uint32Array.from([0, 3]) };
    writeTokenCache(dir, H1, H2, corpus);
    expect(existsSync(path.join(cacheEntryDir(dir, H1, H2), 'tokens-0000.i32'))).toBe(true);
    expect(readTokenCache(dir, H1, H2)).toEqual(corpus);
  });

  it('misses on other hashes and on a damaged entry', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cache-'));
    writeTokenCache(dir, H1, H2, { tokens: Uint16Array.from([1, 2, 3]), docOffsets: Uint32Array.from([0, 3]) });
    expect(readTokenCache(dir, H2, H1)).toBeNull();
    writeFileSync(path.join(cacheEntryDir(dir, H1, H2), 'tokens-0000.u16'), Buffer.from([1, 0]));
    expect(readTokenCache(dir, H1, H2)).toBeNull();
  });

  it('lives under SPARSE_STUDIO_CACHE when set', () => {
    const before = process.env.SPARSE_STUDIO_CACHE;
    process.env.SPARSE_STUDIO_CACHE = '/tmp/elsewhere';
    try {
      expect(defaultCacheDir()).toBe('/tmp/elsewhere/tokens');
    } finally {
      if (before === undefined) delete process.env.SPARSE_STUDIO_CACHE;
      else process.env.SPARSE_STUDIO_CACHE = before;
    }
    expect(defaultCacheDir().endsWith(path.join('.cache', 'tokens'))).toBe(true);
  });
});
