import { describe, expect, it } from 'vitest';
import { Column, Series } from './column';
import { emaSmooth, minMaxDecimate } from './downsample';

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

describe('minMaxDecimate', () => {
  it('returns small series unchanged', () => {
    const s = seriesOf([3, 1, 2]);
    expect(minMaxDecimate(s.step, s.value, 100)).toEqual([{ x: 0, y: 3 }, { x: 1, y: 1 }, { x: 2, y: 2 }]);
  });

  it('reduces 100k points to about 2 per bucket and keeps every extreme', () => {
    const values: number[] = [];
    for (let i = 0; i < 100_000; i++) values.push(Math.sin(i / 1000));
    values[31_337] = 50;   // a spike
    values[77_777] = -40;  // a dip
    const s = seriesOf(values);
    const out = minMaxDecimate(s.step, s.value, 1000);
    expect(out.length).toBeLessThanOrEqual(2002);
    expect(out.length).toBeGreaterThan(1000);
    expect(out.some((p) => p.x === 31_337 && p.y === 50)).toBe(true);
    expect(out.some((p) => p.x === 77_777 && p.y === -40)).toBe(true);
    expect(out[0]).toEqual({ x: 0, y: 0 });
    expect(out[out.length - 1].x).toBe(99_999);
    // x stays sorted, so the line never doubles back
    for (let i = 1; i < out.length; i++) expect(out[i].x).toBeGreaterThan(out[i - 1].x);
    // every bucket's true min and max survive
    const bucketWidth = 99_999 / 1000;
    for (let b = 0; b < 1000; b += 97) {
      let min = Infinity; let max = -Infinity;
      for (let i = 0; i < 100_000; i++) {
        const bucket = Math.min(999, Math.floor(i / bucketWidth));
        if (bucket !== b) continue;
        min = Math.min(min, values[i]); max = Math.max(max, values[i]);
      }
      expect(out.some((p) => p.y === min)).toBe(true);
      expect(out.some((p) => p.y === max)).toBe(true);
    }
  });

  it('never mutates the stored data', () => {
    const values = Array.from({ length: 50_000 }, (_, i) => (i % 7) - 3);
    const s = seriesOf(values);
    const before = s.value.toArray().slice();
    minMaxDecimate(s.step, s.value, 500);
    emaSmooth(s.value, 0.9);
    expect(Array.from(s.value.toArray())).toEqual(Array.from(before));
    expect(s.length).toBe(50_000);
  });

  it('skips NaN (no value) and restricts to an x range', () => {
    const s = seriesOf([NaN, 1, NaN, 5, 2, 8, NaN]);
    expect(minMaxDecimate(s.step, s.value, 100)).toEqual([{ x: 1, y: 1 }, { x: 3, y: 5 }, { x: 4, y: 2 }, { x: 5, y: 8 }]);
    expect(minMaxDecimate(s.step, s.value, 100, [3, 4])).toEqual([{ x: 3, y: 5 }, { x: 4, y: 2 }]);
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
