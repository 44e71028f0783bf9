import { describe, expect, it } from 'vitest';
import { learningRateAt, lrScaleOf } from './lr-schedule';
import { seqLenAt, maxSeqLen } from '../data/curriculum';
import { PlateauTracker } from './plateau';

describe('learningRateAt', () => {
  const base = { lr: 1e-3, steps: 10, warmup_steps: 2 };
  it('constant keeps the peak times the multiplier', () => {
    expect(learningRateAt({ ...base, schedule: 'constant' }, 7)).toBe(1e-3);
    expect(learningRateAt({ ...base, schedule: 'constant' }, 7, 0.7)).toBeCloseTo(7e-4, 12);
  });
  it('cosine starts at the peak and decays to near zero', () => {
    const s = { ...base, schedule: 'cosine' as const };
    expect(learningRateAt(s, 0)).toBe(1e-3);
    expect(learningRateAt(s, 5)).toBeCloseTo(5e-4, 12);
    expect(learningRateAt(s, 9)).toBeLessThan(learningRateAt(s, 8));
    expect(learningRateAt(s, 9)).toBeGreaterThan(0);
  });
  it('warmup_cosine ramps linearly then decays', () => {
    const s = { ...base, schedule: 'warmup_cosine' as const };
    expect(learningRateAt(s, 0)).toBeCloseTo(5e-4, 12);
    expect(learningRateAt(s, 1)).toBeCloseTo(1e-3, 12);
    expect(learningRateAt(s, 2)).toBeCloseTo(1e-3, 12);
    expect(learningRateAt(s, 6)).toBeCloseTo(5e-4, 12);
  });
});

describe('seqLenAt', () => {
  const c = [{ from_step: 0, seq_len: 64 }, { from_step: 5, seq_len: 128 }, { from_step: 8, seq_len: 256 }];
  it('picks the latest entry that has started', () => {
    expect([0, 4, 5, 7, 8, 100].map((s) => seqLenAt(c, s))).toEqual([64, 64, 128, 128, 256, 256]);
    expect(maxSeqLen(c)).toBe(256);
  });
  it('rejects an empty curriculum', () => {
    expect(() => seqLenAt([], 0)).toThrow(/curriculum/);
  });
});

describe('PlateauTracker', () => {
  it('fires after `patience` evaluations without improvement, then restarts counting', () => {
    const p = new PlateauTracker(3);
    expect([5, 4, 4.5, 4.2, 4.1].map((l) => p.observe(l))).toEqual([false, false, false, false, true]);
    expect([4.3, 3.9, 4, 4, 4].map((l) => p.observe(l))).toEqual([false, false, false, false, true]);
  });
  it('is off with patience 0', () => {
    const p = new PlateauTracker(0);
    expect([1, 1, 1, 1].some((l) => p.observe(l))).toBe(false);
  });
});

describe('lrScaleOf', () => {
  it('turns per-kind learning rates into multipliers of lr for the engine', () => {
    expect(lrScaleOf({ lr: 1e-4 })).toBeUndefined();
    expect(lrScaleOf({ lr: 1e-4, lr_selector: 2e-4 })).toEqual({ selector: 2 });
    const s = lrScaleOf({ lr: 1e-4, lr_attention: 1e-5 })!;
    expect(Object.keys(s)).toEqual(['q', 'k', 'v', 'o']);
    for (const k of ['q', 'k', 'v', 'o'] as const) expect(s[k]).toBeCloseTo(0.1, 15);
    expect(lrScaleOf({ lr: 1e-4, lr_attention: 0, lr_selector: 1e-4 })).toEqual({ selector: 1, q: 0, k: 0, v: 0, o: 0 });
  });
});
