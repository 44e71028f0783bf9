// Hostile safetensors files: each is refused with one line naming the file and the problem.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseHeader, SafetensorsFile } from './safetensors';

const root = mkdtempSync(join(tmpdir(), 'safetensors-hostile-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A file with the given raw header bytes and `dataBytes` zero bytes of data. */
function withHeader(name: string, header: Buffer, dataBytes = 0): string {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  const file = join(root, name);
  writeFileSync(file, Buffer.concat([len, header, Buffer.alloc(dataBytes)]));
  return file;
}

describe('safetensors: hostile input', () => {
  it('refuses a dtype that is only on the prototype chain', () => {
    for (const dtype of ['toString', 'constructor', '__proto__', 'hasOwnProperty']) {
      const header = JSON.stringify({ w: { dtype, shape: [1], data_offsets: [0, 4] } });
      expect(() => parseHeader(header, 4, 'f.safetensors')).toThrow(`f.safetensors: tensor w: unsupported dtype "${dtype}" (supported: F32, F16, BF16)`);
    }
  });

  it('refuses a header that is not valid UTF-8 instead of replacing the bytes', () => {
    const text = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, __metadata__: { note: 'XX' } }));
    const at = text.indexOf('XX');
    text[at] = 0xff; text[at + 1] = 0xfe;
    const file = withHeader('bad-utf8.safetensors', text, 4);
    expect(() => SafetensorsFile.open(file)).toThrow(`${file}: header is not valid UTF-8`);
  });

  it('refuses a FIFO or a folder without blocking on it', () => {
    const fifo = join(root, 'fifo.safetensors');
    execFileSync('mkfifo', [fifo]);
    expect(() => SafetensorsFile.open(fifo)).toThrow(`${fifo}: not a regular file`);
    expect(() => SafetensorsFile.open(root)).toThrow(new RegExp(`^${root}: (not a regular file|cannot open \\(EISDIR\\))$`));
  });
});
