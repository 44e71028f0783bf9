import { describe, expect, it } from 'vitest';
import { Column, Series } from './column';
import { emaSmooth } from './downsample';

function seriesOf(values: number[]): Series {
  const s = new Series();
  values.forEach((v, i) => s.push(i, i * 10, v));
  return s;
}

describe('Column', () => {
  it('grows across chunk boundaries and reads back every value', () => {
    const c = new Column();
    for (let i = 0; i < 20_000; i++) c.push(i * 0.5);
    expect(c.length).toBe(20_000);
    expect(c.get(8191)).toBe(4095.5);
    expect(c.get(8192)).toBe(4096);
    expect(c.toArray()[19_999]).toBe(9999.5);
    expect(c.lowerBound(100)).toBe(200);
    expect(c.upperBound(100)).toBe(201);
  });
});

describe('emaSmooth', () => {
  it('never mutates the stored data', () => {
    const values = Array.from({ length: 50_000 }, (_, i) => (i % 7) - 3);
    const s = seriesOf(values);
    const before = s.value.toArray().slice();
    emaSmooth(s.value, 0.9);
    expect(Array.from(s.value.toArray())).toEqual(Array.from(before));
    expect(s.length).toBe(50_000);
  });
});

describe('emaSmooth', () => {
  it('is the identity at weight 0 and debiased otherwise', () => {
    const s = seriesOf([2, 2, 2, 4]);
    expect(Array.from(emaSmooth(s.value, 0))).toEqual([2, 2, 2, 4]);
    const smooth = emaSmooth(s.value, 0.5);
    expect(smooth[0]).toBeCloseTo(2); // debiased: first value is not pulled toward 0
    expect(smooth[3]).toBeGreaterThan(2);
    expect(smooth[3]).toBeLessThan(4);
  });
});

describe('SmoothedColumn', () => {
  it('extends incrementally and equals a full EMA recompute', async () => {
    const { SmoothedColumn } = await import('./downsample');
    const s = seriesOf([1, 5, 2, 8, 3]);
    const smooth = new SmoothedColumn(s.value);
    expect(smooth.values(0.5).length).toBe(5);
    s.push(5, 50, 10);
    s.push(6, 60, NaN);
    const inc = smooth.values(0.5).toArray();
    const full = emaSmooth(s.value, 0.5);
    expect(Array.from(inc)).toEqual(Array.from(full));
    // a new weight recomputes
    expect(Array.from(smooth.values(0.9).toArray())).toEqual(Array.from(emaSmooth(s.value, 0.9)));
  });
});
