// Reads one file as text, refusing what would silently poison training: empty files,
// binary files and invalid UTF-8. Every refusal is one line naming the file.
import { isUtf8 } from 'node:buffer';
import { FileRefused, readRegularFile } from '../safe-read';
import { DataError } from './errors';

/**
 * Largest text file read (one file of a dataset): V8 strings stop near 2^29 characters, and a
 * larger file is better split. Files are opened non-blocking and must be regular files, so a
 * FIFO cannot hang the reader and /dev/zero cannot fill memory.
 */
export const MAX_TEXT_FILE_BYTES = 512 * 1024 * 1024;

// Share of control bytes (other than tab, newline, carriage return, form feed) above which a
// file counts as binary even without NUL bytes. Real text has almost none.
const MAX_CONTROL_SHARE = 0.05;
const SNIFF_BYTES = 1 << 16;

/** Byte offset of the first invalid UTF-8 sequence, or -1 when the buffer is valid. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i];
    let extra: number;
    let min: number;
    if (b < 0x80) { i++; continue; }
    else if (b >= 0xc2 && b <= 0xdf) { extra = 1; min = 0x80; }
    else if (b >= 0xe0 && b <= 0xef) { extra = 2; min = 0x800; }
    else if (b >= 0xf0 && b <= 0xf4) { extra = 3; min = 0x10000; }
    else return i;
    let cp = b & (0x3f >> extra);
    for (let k = 1; k <= extra; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i; // truncated or broken sequence
      cp = (cp << 6) | (c & 0x3f);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are invalid too.
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return i;
    i += extra + 1;
  }
  return -1;
}

/** 1-based line number of a byte offset. */
function lineOfOffset(bytes: Uint8Array, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
  return line;
}

/** Why these bytes are not text, or null when they look like text. */
export function binaryReason(bytes: Uint8Array): string | null {
  const nul = bytes.indexOf(0);
  if (nul >= 0) return `binary file (NUL byte at offset ${nul})`;
  const sniff = bytes.subarray(0, SNIFF_BYTES);
  let control = 0;
  for (const b of sniff) {
    if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c) || b === 0x7f) control++;
  }
  if (sniff.length > 0 && control / sniff.length > MAX_CONTROL_SHARE) {
    return `binary file (${Math.round((100 * control) / sniff.length)}% control bytes)`;
  }
  return null;
}

/** Decodes bytes as UTF-8 text or throws a DataError naming `file`. */
export function decodeText(bytes: Uint8Array, file: string): string {
  if (bytes.length === 0) throw new DataError('DATA_EMPTY', `${file}: file is empty`);
  const binary = binaryReason(bytes);
  if (binary) throw new DataError('DATA_BINARY', `${file}: ${binary}, expected UTF-8 text`);
  if (!isUtf8(bytes)) {
    const at = firstInvalidUtf8(bytes);
    throw new DataError('DATA_BAD_UTF8', `${file}:${lineOfOffset(bytes, at)}: invalid UTF-8 (byte 0x${bytes[at].toString(16).padStart(2, '0')} at offset ${at})`);
  }
  let text = new TextDecoder('utf-8').decode(bytes);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // byte-order mark
  if (text.trim().length === 0) throw new DataError('DATA_EMPTY', `${file}: file has only whitespace`);
  return text;
}

/** Reads a file as UTF-8 text; missing, empty, binary or mis-encoded files throw a DataError. */
export function readTextFile(file: string, maxBytes = MAX_TEXT_FILE_BYTES): string {
  let bytes: Buffer;
  try {
    bytes = readRegularFile(file, maxBytes);
  } catch (e) {
    if (e instanceof FileRefused && e.code === 'not_regular') throw new DataError('DATA_NOT_REGULAR', e.message);
    if (e instanceof FileRefused && e.code === 'too_large') throw new DataError('DATA_TOO_LARGE', `${e.message} (split it into several files in a folder)`);
    if (e instanceof FileRefused && e.code === 'not_found') throw new DataError('DATA_NOT_FOUND', `${file}: cannot read (ENOENT)`);
    throw new DataError('DATA_NOT_FOUND', `${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return decodeText(bytes, file);
}
