// Sequence lengths: buckets at multiples of the attention block size and a short-to-long
// curriculum over them (docs/method.md). Block-aligned lengths keep every block full,
// so block-sparse masks cover whole blocks and no compute is spent on padding.
import type { CurriculumStep } from '../../core/schema';
import { DataError } from './errors';

/** Block-aligned bucket lengths: blockSize, 2x, 4x, ... up to maxSeq (maxSeq itself rounded down to a block). */
export function lengthBuckets(blockSize: number, maxSeq: number): number[] {
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new DataError('DATA_BAD_PARAMS', `block size: ${blockSize} is not a positive integer`);
  const top = Math.floor(maxSeq / blockSize) * blockSize;
  if (top < blockSize) throw new DataError('DATA_BAD_PARAMS', `sequence length ${maxSeq} is shorter than one block of ${blockSize}`);
  const buckets: number[] = [];
  for (let len = blockSize; len < top; len *= 2) buckets.push(len);
  buckets.push(top);
  return buckets;
}

/** Index of the smallest bucket that holds `length` tokens (the last bucket for longer ones). */
export function bucketOf(length: number, buckets: number[]): number {
  const i = buckets.findIndex((b) => length <= b);
  return i < 0 ? buckets.length - 1 : i;
}

/** How many documents fall in each bucket: a quick view of how long the data really is. */
export function bucketHistogram(lengths: Iterable<number>, buckets: number[]): number[] {
  const counts = new Array<number>(buckets.length).fill(0);
  for (const len of lengths) counts[bucketOf(len, buckets)]++;
  return counts;
}

/**
 * A short-to-long curriculum: the buckets from `minSeq` to `maxSeq`, each for an equal share of
 * `steps`. Example: (64, 64, 512, 1200) -> 64 from 0, 128 from 300, 256 from 600, 512 from 900.
 */
export function shortToLongCurriculum(blockSize: number, minSeq: number, maxSeq: number, steps: number): CurriculumStep[] {
  const buckets = lengthBuckets(blockSize, maxSeq).filter((b) => b >= minSeq);
  if (buckets.length === 0) throw new DataError('DATA_BAD_PARAMS', `curriculum: no block-aligned length between ${minSeq} and ${maxSeq}`);
  return buckets.map((seq_len, i) => ({ from_step: Math.floor((i * steps) / buckets.length), seq_len }));
}

/** Checks a curriculum: non-empty, first entry from step 0, strictly increasing steps, positive lengths. */
export function checkCurriculum(curriculum: CurriculumStep[], where = 'curriculum'): void {
  if (!Array.isArray(curriculum) || curriculum.length === 0) throw new DataError('DATA_BAD_PARAMS', `${where}: needs at least one entry`);
  curriculum.forEach((c, i) => {
    if (!Number.isInteger(c.seq_len) || c.seq_len < 1) throw new DataError('DATA_BAD_PARAMS', `${where}[${i}].seq_len: ${c.seq_len} is not a positive integer`);
    if (!Number.isInteger(c.from_step) || c.from_step < 0) throw new DataError('DATA_BAD_PARAMS', `${where}[${i}].from_step: ${c.from_step} is not a non-negative integer`);
    if (i === 0 && c.from_step !== 0) throw new DataError('DATA_BAD_PARAMS', `${where}[0].from_step: must be 0`);
    if (i > 0 && c.from_step <= curriculum[i - 1].from_step) throw new DataError('DATA_BAD_PARAMS', `${where}[${i}].from_step: must be after ${curriculum[i - 1].from_step}`);
  });
}

/** The sequence length in force at `step` (0-based). */
export function seqLenAt(curriculum: CurriculumStep[], step: number): number {
  if (curriculum.length === 0) throw new DataError('DATA_BAD_PARAMS', 'curriculum: needs at least one entry');
  let seq = curriculum[0].seq_len;
  for (const c of curriculum) if (c.from_step <= step) seq = c.seq_len;
  return seq;
}

/** The longest sequence a curriculum asks for (what the data must fill; sizes evaluation batches and memory estimates). */
export function maxSeqLen(curriculum: CurriculumStep[]): number {
  return curriculum.reduce((m, c) => Math.max(m, c.seq_len), 0);
}
