import { describe, expect, it } from 'vitest';
import { bucketHistogram, bucketOf, checkCurriculum, lengthBuckets, maxSeqLen, seqLenAt, shortToLongCurriculum } from './curriculum';

describe('length buckets and curriculum', () => {
  it('makes block-aligned buckets, doubling up to the maximum', () => {
    expect(lengthBuckets(64, 512)).toEqual([64, 128, 256, 512]);
    expect(lengthBuckets(64, 700)).toEqual([64, 128, 256, 512, 640]);
    expect(() => lengthBuckets(64, 40)).toThrow('sequence length 40 is shorter than one block of 64');
  });

  it('puts lengths in the smallest bucket that holds them', () => {
    const buckets = [64, 128, 256];
    expect([1, 64, 65, 256, 9999].map((n) => bucketOf(n, buckets))).toEqual([0, 0, 1, 2, 2]);
    expect(bucketHistogram([10, 100, 100, 300], buckets)).toEqual([1, 2, 1]);
  });

  it('builds a short-to-long curriculum and looks up the length at a step', () => {
    const c = shortToLongCurriculum(64, 64, 512, 1200);
    expect(c).toEqual([{ from_step: 0, seq_len: 64 }, { from_step: 300, seq_len: 128 }, { from_step: 600, seq_len: 256 }, { from_step: 900, seq_len: 512 }]);
    expect([0, 299, 300, 899, 900, 5000].map((s) => seqLenAt(c, s))).toEqual([64, 64, 128, 256, 512, 512]);
    expect(maxSeqLen(c)).toBe(512);
    expect(() => checkCurriculum(c)).not.toThrow();
  });

  it('rejects malformed curricula with the offending entry', () => {
    expect(() => checkCurriculum([])).toThrow('curriculum: needs at least one entry');
    expect(() => checkCurriculum([{ from_step: 5, seq_len: 64 }])).toThrow('curriculum[0].from_step: must be 0');
    expect(() => checkCurriculum([{ from_step: 0, seq_len: 64 }, { from_step: 0, seq_len: 128 }])).toThrow('curriculum[1].from_step: must be after 0');
    expect(() => checkCurriculum([{ from_step: 0, seq_len: 0 }])).toThrow('curriculum[0].seq_len: 0 is not a positive integer');
  });
});
