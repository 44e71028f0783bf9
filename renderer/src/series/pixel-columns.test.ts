import { describe, expect, it } from 'vitest';
import { Column } from './column';
import { downsampleToPixels, drawable, PixelColumns, type PixelSpan } from './pixel-columns';

const arr = (values: number[]) => ({ length: values.length, get: (i: number) => values[i] });

function noisy(n: number, seed = 7): number[] {
  let s = seed;
  const rand = () => { s = (s * 1103515245 + 12345) & 0x7fffffff; return s / 0x7fffffff; };
  return Array.from({ length: n }, (_, i) => Math.sin(i / 500) + (rand() - 0.5) * 0.3 + (rand() < 0.0005 ? 8 : 0));
}

/** Independent reference: every drawable point of each pixel column, by brute force. */
function columnsOf(xs: number[], ys: number[], span: PixelSpan, keep: (y: number) => boolean) {
  const cols = new Map<number, { x: number; y: number }[]>();
  for (let i = 0; i < xs.length; i++) {
    if (!keep(ys[i]) || xs[i] < span.x0 || xs[i] > span.x1) continue;
    const c = Math.min(span.width - 1, Math.floor(((xs[i] - span.x0) / (span.x1 - span.x0)) * span.width));
    if (!cols.has(c)) cols.set(c, []);
    cols.get(c)!.push({ x: xs[i], y: ys[i] });
  }
  return cols;
}

function columnOfX(x: number, span: PixelSpan) {
  return Math.min(span.width - 1, Math.floor(((x - span.x0) / (span.x1 - span.x0)) * span.width));
}

describe('downsampleToPixels', () => {
  const n = 100_000;
  const xs = Array.from({ length: n }, (_, i) => i);
  const ys = noisy(n);
  ys[31_337] = 50;   // a spike
  ys[77_777] = -40;  // a dip
  const span = { x0: 0, x1: 120_000, width: 640 };
  const out = downsampleToPixels(arr(xs), arr(ys), span);

  it('keeps every column\'s lowest, highest, first and last point, and at most 4 points per column', () => {
    const cols = columnsOf(xs, ys, span, drawable(false));
    const drawn = new Map<number, { x: number; y: number }[]>();
    for (const p of out) {
      const c = columnOfX(p.x, span);
      if (!drawn.has(c)) drawn.set(c, []);
      drawn.get(c)!.push(p);
    }
    expect([...drawn.keys()].sort((a, b) => a - b)).toEqual([...cols.keys()].sort((a, b) => a - b));
    for (const [c, points] of cols) {
      const got = drawn.get(c)!;
      expect(got.length).toBeLessThanOrEqual(4);
      const ysOf = points.map((p) => p.y);
      expect(Math.min(...got.map((p) => p.y)), `column ${c} min`).toBe(Math.min(...ysOf));
      expect(Math.max(...got.map((p) => p.y)), `column ${c} max`).toBe(Math.max(...ysOf));
      expect(got[0]).toEqual(points[0]);
      expect(got[got.length - 1]).toEqual(points[points.length - 1]);
    }
    expect(out.some((p) => p.x === 31_337 && p.y === 50)).toBe(true);
    expect(out.some((p) => p.x === 77_777 && p.y === -40)).toBe(true);
  });

  it('ends on the series\' last point and keeps x in order (the line never doubles back)', () => {
    expect(out[out.length - 1]).toEqual({ x: n - 1, y: ys[n - 1] });
    expect(out[0]).toEqual({ x: 0, y: ys[0] });
    for (let i = 1; i < out.length; i++) expect(out[i].x).toBeGreaterThan(out[i - 1].x);
    expect(out.length).toBeLessThanOrEqual(4 * span.width);
  });

  it('returns a sparse series point for point', () => {
    const few = downsampleToPixels(arr([0, 10, 20]), arr([3, 1, 2]), { x0: 0, x1: 20, width: 400 });
    expect(few).toEqual([{ x: 0, y: 3 }, { x: 10, y: 1 }, { x: 20, y: 2 }]);
  });

  it('skips NaN (no value), non-positive values on a log axis, and points outside the span', () => {
    const x = [0, 1, 2, 3, 4, 5, 6];
    const y = [NaN, 1, NaN, -5, 2, 0, 8];
    expect(downsampleToPixels(arr(x), arr(y), { x0: 0, x1: 6, width: 100 }).map((p) => p.y)).toEqual([1, -5, 2, 0, 8]);
    expect(downsampleToPixels(arr(x), arr(y), { x0: 0, x1: 6, width: 100 }, drawable(true)).map((p) => p.y)).toEqual([1, 2, 8]);
    expect(downsampleToPixels(arr(x), arr(y), { x0: 1, x1: 4, width: 100 }).map((p) => p.x)).toEqual([1, 3, 4]);
  });

  it('never writes to the stored columns', () => {
    const c = new Column();
    const s = new Column();
    for (let i = 0; i < 20_000; i++) { c.push(i); s.push(ys[i]); }
    const before = Array.from(s.toArray());
    downsampleToPixels(c, s, { x0: 0, x1: 20_000, width: 300 });
    expect(Array.from(s.toArray())).toEqual(before);
    expect(c.length).toBe(20_000);
  });
});

describe('PixelColumns (incremental)', () => {
  it('after any sequence of appends equals a reduction from scratch', () => {
    const xs = new Column();
    const ys = new Column();
    const values = noisy(30_000, 99);
    const span = { x0: 0, x1: 40_000, width: 333 };
    const live = new PixelColumns(xs, ys, span, drawable(false));
    let i = 0;
    for (const batch of [1, 1, 7, 100, 3, 4096, 1, 25_000, 789]) {
      for (const end = Math.min(values.length, i + batch); i < end; i++) { xs.push(i); ys.push(i % 13 === 0 ? NaN : values[i]); }
      expect(live.points()).toEqual(downsampleToPixels(xs, ys, span));
    }
    expect(live.fits(xs, ys, span, live.keep)).toBe(true);
    expect(live.fits(xs, ys, { ...span, width: 334 }, live.keep)).toBe(false);
  });

  it('hands back the same array while nothing was appended (a cheap memo for redraws)', () => {
    const xs = new Column();
    const ys = new Column();
    for (let i = 0; i < 10; i++) { xs.push(i); ys.push(i * i); }
    const live = new PixelColumns(xs, ys, { x0: 0, x1: 10, width: 50 }, drawable(false));
    const a = live.points();
    expect(live.points()).toBe(a);
    xs.push(10); ys.push(100);
    expect(live.points()).not.toBe(a);
  });
});
