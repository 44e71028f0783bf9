import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DatasetParams } from '../../core/schema';
import { readDocuments } from './documents';

const root = mkdtempSync(path.join(tmpdir(), 'documents-'));
const write = (rel: string, content: string | Uint8Array) => {
  const p = path.join(root, rel);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, content);
  return p;
};
const params = (source: string, extra: Partial<DatasetParams> = {}): DatasetParams => ({
  source, format: 'auto', text_field: 'text', validation_fraction: 0.1, seed: 1, content_hash: '', ...extra,
});

describe('readDocuments', () => {
  it('reads a .txt file as one document', () => {
    const f = write('one.txt', 'Hello there.\n');
    expect(readDocuments(params(f))).toEqual([{ id: 'one.txt', group: 'all', text: 'Hello there.\n' }]);
  });

  it('reads JSONL with a configurable field, skipping blank lines and empty texts', () => {
    const f = write('data.jsonl', '{"body":"first"}\n\n{"body":"second","x":1}\n{"body":""}\n');
    const docs = readDocuments(params(f, { text_field: 'body' }));
    expect(docs.map((d) => [d.id, d.text])).toEqual([['data.jsonl:1', 'first'], ['data.jsonl:3', 'second']]);
  });

  it('reads a folder recursively, sorted, grouped by sub-folder, relative paths resolved against baseDir', () => {
    write('corpus/b.txt', 'bee');
    write('corpus/a.txt', 'ay');
    write('corpus/poems/c.txt', 'sea');
    write('corpus/notes.csv', 'ignored');
    write('corpus/.hidden.txt', 'ignored');
    const docs = readDocuments(params('corpus'), root);
    expect(docs.map((d) => [d.id, d.group, d.text])).toEqual([
      ['a.txt', 'all', 'ay'], ['b.txt', 'all', 'bee'], [path.join('poems', 'c.txt'), 'poems', 'sea'],
    ]);
  });

  it('names the file and line of a broken JSONL line', () => {
    const f = write('broken.jsonl', '{"text":"fine"}\n{"text": "oops"\n');
    expect(() => readDocuments(params(f))).toThrow(new RegExp(`^${f}:2: not valid JSON`));
  });

  it('names the file and line of a JSONL record without the field, or with a non-string', () => {
    const missing = write('missing.jsonl', '{"text":"fine"}\n{"content":"elsewhere"}\n');
    expect(() => readDocuments(params(missing))).toThrow(`${missing}:2: missing field "text"`);
    const number = write('number.jsonl', '{"text":42}\n');
    expect(() => readDocuments(params(number))).toThrow(`${number}:1: field "text" is number, expected a string`);
    const array = write('array.jsonl', '["text"]\n');
    expect(() => readDocuments(params(array))).toThrow(`${array}:1: expected a JSON object with a "text" field`);
  });

  it('rejects a folder with no text files', () => {
    write('empty-folder/readme.csv', 'a,b');
    const dir = path.join(root, 'empty-folder');
    expect(() => readDocuments(params(dir))).toThrow(`${dir}: folder has no .txt or .jsonl files`);
  });

  it('rejects an empty, binary or mis-encoded file inside a folder, naming that file', () => {
    const bad = write('mixed/z.txt', new Uint8Array([0x41, 0xff, 0x42]));
    write('mixed/a.txt', 'good text');
    expect(() => readDocuments(params(path.join(root, 'mixed')))).toThrow(`${bad}:1: invalid UTF-8 (byte 0xff at offset 1)`);
  });

  it('rejects unknown sources and extensions clearly', () => {
    expect(() => readDocuments(params('builtin:wiki'))).toThrow('dataset.source: unknown built-in "builtin:wiki" (known: builtin:brown)');
    expect(() => readDocuments(params(path.join(root, 'nowhere')))).toThrow(`${path.join(root, 'nowhere')}: no such file or folder`);
    const csv = write('table.csv', 'a,b');
    expect(() => readDocuments(params(csv))).toThrow(`${csv}: cannot tell the format from the extension ".csv"; set format to "txt" or "jsonl"`);
    expect(readDocuments(params(csv, { format: 'txt' }))[0].text).toBe('a,b');
    const jsonl = write('x.jsonl', '{"text":"a"}');
    expect(() => readDocuments(params(jsonl, { text_field: '' }))).toThrow('dataset.text_field: empty');
  });

  it('returns the built-in Brown Corpus', () => {
    expect(readDocuments(params('builtin:brown'))).toHaveLength(500);
  });
});
