// safetensors read and write. Format: u64 little-endian header length N, N bytes of JSON
// ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {...}}), then the data.
// Reading is strict (every structural fault is a one-line CheckpointError naming the file and
// tensor) and goes through a file descriptor, so a multi-GB shard never becomes one Buffer.
// F32, F16 and BF16 are widened to Float32Array; writing produces F32, or BF16 when asked
// (rounded to nearest even, as torch's float->bfloat16 conversion; to halve a shipped file).
import { closeSync, constants, fstatSync, openSync, readSync, writeFileSync } from 'node:fs';
import { CheckpointError } from './config';

export interface TensorInfo { dtype: string; shape: number[]; begin: number; end: number }
export interface Tensor { shape: number[]; data: Float32Array }

const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
const MAX_HEADER = 100 * 1024 * 1024;

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Parses and checks the header against the data size; returns the tensors by name and the data start. */
export function parseHeader(headerText: string, dataBytes: number, file: string): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> | null } {
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (e) {
    throw new CheckpointError(`${file}: header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new CheckpointError(`${file}: header must be a JSON object`);
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> | null = null;
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new CheckpointError(`${file}: __metadata__ must be an object`);
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as Record<string, unknown>;
    if (typeof e !== 'object' || e === null) throw new CheckpointError(`${file}: tensor ${name}: entry must be an object`);
    const dtype = e.dtype;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
      throw new CheckpointError(`${file}: tensor ${name}: unsupported dtype ${JSON.stringify(dtype)} (supported: F32, F16, BF16)`);
    }
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new CheckpointError(`${file}: tensor ${name}: shape must be an array of non-negative integers`);
    }
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
      throw new CheckpointError(`${file}: tensor ${name}: data_offsets must be [begin, end] non-negative integers`);
    }
    const [begin, end] = offsets as number[];
    if (begin > end || end > dataBytes) {
      throw new CheckpointError(`${file}: tensor ${name}: data_offsets [${begin}, ${end}] outside the data (${dataBytes} bytes)`);
    }
    const want = numel(shape as number[]) * DTYPE_BYTES[dtype];
    if (end - begin !== want) {
      throw new CheckpointError(`${file}: tensor ${name}: data_offsets span ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${want}`);
    }
    tensors.set(name, { dtype, shape: shape as number[], begin, end });
  }
  const sorted = [...tensors.entries()].filter(([, t]) => t.end > t.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i][1].begin < sorted[i - 1][1].end) {
      throw new CheckpointError(`${file}: tensors ${sorted[i - 1][0]} and ${sorted[i][0]} overlap in the data`);
    }
  }
  return { tensors, metadata };
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function decode(bytes: Buffer, dtype: string): Float32Array {
  // Copy into a fresh, aligned ArrayBuffer so typed views can read it directly (little-endian host).
  const aligned = new Uint8Array(bytes.length);
  aligned.set(bytes);
  if (dtype === 'F32') return new Float32Array(aligned.buffer);
  const u16 = new Uint16Array(aligned.buffer);
  const out = new Float32Array(u16.length);
  if (dtype === 'BF16') {
    const u32 = new Uint32Array(out.buffer);
    for (let i = 0; i < u16.length; i++) u32[i] = u16[i] << 16;
  } else {
    for (let i = 0; i < u16.length; i++) out[i] = halfToFloat(u16[i]);
  }
  return out;
}

/** An open safetensors file: header checked, tensors read on demand. */
export class SafetensorsFile {
  readonly tensors: Map<string, TensorInfo>;
  readonly metadata: Record<string, string> | null;
  private readonly fd: number;
  private readonly dataStart: number;

  /** Bytes of tensor data after the header. */
  get dataBytes(): number {
    let n = 0;
    for (const t of this.tensors.values()) n += t.end - t.begin;
    return n;
  }

  private constructor(readonly file: string, fd: number, tensors: Map<string, TensorInfo>, metadata: Record<string, string> | null, dataStart: number) {
    this.fd = fd;
    this.tensors = tensors;
    this.metadata = metadata;
    this.dataStart = dataStart;
  }

  static open(file: string): SafetensorsFile {
    let fd: number;
    try {
      // Non-blocking, so a FIFO in a model folder cannot hang the open; only regular files pass.
      fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (e) {
      throw new CheckpointError(`${file}: cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) throw new CheckpointError(`${file}: not a regular file`);
      const size = stat.size;
      if (size < 8) throw new CheckpointError(`${file}: too short for a safetensors header (${size} bytes)`);
      const lenBuf = Buffer.alloc(8);
      readSync(fd, lenBuf, 0, 8, 0);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen > size - 8) throw new CheckpointError(`${file}: header length ${headerLen} goes beyond the file (${size} bytes)`);
      if (headerLen > MAX_HEADER) throw new CheckpointError(`${file}: header length ${headerLen} exceeds ${MAX_HEADER} bytes`);
      const headerBuf = Buffer.alloc(headerLen);
      readSync(fd, headerBuf, 0, headerLen, 8);
      let headerText: string;
      try {
        headerText = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBuf);
      } catch {
        throw new CheckpointError(`${file}: header is not valid UTF-8`);
      }
      const { tensors, metadata } = parseHeader(headerText, size - 8 - headerLen, file);
      return new SafetensorsFile(file, fd, tensors, metadata, 8 + headerLen);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  read(name: string): Tensor {
    const info = this.tensors.get(name);
    if (!info) throw new CheckpointError(`${this.file}: no tensor ${name}`);
    const bytes = Buffer.alloc(info.end - info.begin);
    if (bytes.length > 0) readSync(this.fd, bytes, 0, bytes.length, this.dataStart + info.begin);
    return { shape: info.shape, data: decode(bytes, info.dtype) };
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Reads every tensor of one file. */
export function readSafetensors(file: string): Map<string, Tensor> {
  const st = SafetensorsFile.open(file);
  try {
    const out = new Map<string, Tensor>();
    for (const name of st.tensors.keys()) out.set(name, st.read(name));
    return out;
  } finally {
    st.close();
  }
}

/** Float32 values rounded to bfloat16 (nearest, ties to even; NaN stays a quiet NaN), as raw u16. */
export function toBf16(data: Float32Array): Uint16Array {
  const u32 = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const x = u32[i];
    if ((x & 0x7fffffff) > 0x7f800000) { out[i] = (x >>> 16) | 0x40; continue; }
    out[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

export type WriteDtype = 'F32' | 'BF16';

/** Encodes tensors as F32 (default) or BF16 safetensors, in the given order, with optional string metadata. */
export function encodeSafetensors(tensors: { name: string; shape: number[]; data: Float32Array }[], metadata?: Record<string, string>, dtype: WriteDtype = 'F32'): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const size = DTYPE_BYTES[dtype];
  let offset = 0;
  for (const t of tensors) {
    if (t.data.length !== numel(t.shape)) throw new CheckpointError(`tensor ${t.name}: ${t.data.length} values for shape ${JSON.stringify(t.shape)}`);
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length * size] };
    offset += t.data.length * size;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // keep the data 8-byte aligned
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors) {
    const raw = dtype === 'BF16' ? toBf16(t.data) : t.data;
    Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).copy(out, at);
    at += raw.byteLength;
  }
  return out;
}

export function writeSafetensors(file: string, tensors: { name: string; shape: number[]; data: Float32Array }[], metadata?: Record<string, string>, dtype: WriteDtype = 'F32'): void {
  writeFileSync(file, encodeSafetensors(tensors, metadata, dtype));
}
