import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { binaryReason, firstInvalidUtf8, readTextFile } from './text-file';

const dir = mkdtempSync(path.join(tmpdir(), 'text-file-'));
const file = (name: string, content: string | Uint8Array) => {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
};

describe('readTextFile', () => {
  it('reads UTF-8 text and drops a byte-order mark', () => {
    expect(readTextFile(file('ok.txt', '\ufeffHéllo wörld ✓\n'))).toBe('Héllo wörld ✓\n');
  });
  it('rejects an empty or whitespace-only file, naming it', () => {
    const empty = file('empty.txt', '');
    expect(() => readTextFile(empty)).toThrow(`${empty}: file is empty`);
    const blank = file('blank.txt', ' \n\t\n');
    expect(() => readTextFile(blank)).toThrow(`${blank}: file has only whitespace`);
  });
  it('rejects binary files: NUL bytes, or mostly control bytes', () => {
    const nul = file('nul.txt', new Uint8Array([0x61, 0x62, 0x00, 0x63]));
    expect(() => readTextFile(nul)).toThrow(`${nul}: binary file (NUL byte at offset 2), expected UTF-8 text`);
    const control = file('ctl.txt', new Uint8Array(Array.from({ length: 100 }, (_, i) => (i % 3 === 0 ? 0x01 : 0x41))));
    expect(() => readTextFile(control)).toThrow(/ctl\.txt: binary file \(34% control bytes\)/);
  });
  it('rejects invalid UTF-8 with the line and byte offset', () => {
    const bad = file('latin1.txt', Buffer.concat([Buffer.from('line one\ncaf'), Buffer.from([0xe9]), Buffer.from(' au lait\n')]));
    expect(() => readTextFile(bad)).toThrow(`${bad}:2: invalid UTF-8 (byte 0xe9 at offset 12)`);
  });
  it('reports a missing file', () => {
    expect(() => readTextFile(path.join(dir, 'nope.txt'))).toThrow(/nope\.txt: cannot read \(ENOENT\)/);
  });
});

describe('firstInvalidUtf8 and binaryReason', () => {
  it('accepts valid multi-byte text and finds the first bad sequence', () => {
    expect(firstInvalidUtf8(Buffer.from('añ€𝄞'))).toBe(-1);
    expect(firstInvalidUtf8(new Uint8Array([0x61, 0xc0, 0xaf]))).toBe(1); // overlong '/'
    expect(firstInvalidUtf8(new Uint8Array([0x61, 0xed, 0xa0, 0x80]))).toBe(1); // surrogate
    expect(firstInvalidUtf8(new Uint8Array([0x61, 0x62, 0xe2, 0x82]))).toBe(2); // truncated
  });
  it('treats tabs, newlines and form feeds as text', () => {
    expect(binaryReason(Buffer.from('a\tb\r\nc\fd'))).toBeNull();
  });
});
