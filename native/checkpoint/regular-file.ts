// Reading files whose names come from outside (a pipeline, a client of `serve`, a command
// line, a model folder) without letting the name decide how much the studio does. The one home
// of bounded reads: config.json here, the host's data, tokenizer and pipeline files:
// - opened non-blocking, so a FIFO or a device cannot hang the open (and the thread pool);
// - fstat on the open descriptor: only regular files pass, so /dev/zero or a folder cannot
//   stream into memory;
// - the size is checked before reading and the read is bounded by it.
// Every refusal is one line naming the file and why.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

export class FileRefused extends Error {
  constructor(readonly code: 'not_found' | 'not_regular' | 'too_large' | 'unreadable', message: string) {
    super(message);
    this.name = 'FileRefused';
  }
}

/** The bytes of a regular file of at most `maxBytes`; anything else throws FileRefused. */
export function readRegularFile(file: string, maxBytes: number): Buffer {
  const fd = openNonBlocking(file);
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw new FileRefused('not_regular', `${file}: is a directory`);
    if (!stat.isFile()) throw new FileRefused('not_regular', `${file}: not a regular file`);
    if (stat.size > maxBytes) throw new FileRefused('too_large', `${file}: file is ${stat.size} bytes; at most ${maxBytes} are read`);
    // Read at most maxBytes + 1: a file that grew since fstat is refused, not read without end.
    const buf = Buffer.alloc(Math.min(stat.size, maxBytes) + 1);
    let got = 0;
    for (;;) {
      const n = readSync(fd, buf, got, buf.length - got, got);
      if (n === 0) break;
      got += n;
      if (got === buf.length) break;
    }
    if (got > maxBytes) throw new FileRefused('too_large', `${file}: file is larger than ${maxBytes} bytes`);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

function openNonBlocking(file: string): number {
  try {
    return openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new FileRefused('not_found', `${file}: no such file`);
    if (code === 'EISDIR') throw new FileRefused('not_regular', `${file}: is a directory`);
    throw new FileRefused('unreadable', `${file}: cannot open (${code ?? (e as Error).message})`);
  }
}

