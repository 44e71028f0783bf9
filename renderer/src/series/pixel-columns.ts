// Downsampling for drawing, one bucket per pixel column of the plot (the "M4" reduction that
// live-metric charts use): per column the first, lowest, highest and last point, in their
// original order. A line through them covers exactly the pixels the full line would, so every
// spike and dip stays visible, and the cost of a redraw no longer grows with the run.
//
// `PixelColumns` folds points in as they arrive: a live run appends a few points per redraw,
// and only those are read (columns are fixed by the x span, so old points never move).
import type { XY } from './downsample';

/** What the reducer reads: a Column, or any array-like of numbers (tests, smoothed copies). */
export interface Values { readonly length: number; get(i: number): number }

export interface PixelSpan {
  /** The x range drawn across the plot; points outside it are not drawn. */
  x0: number;
  x1: number;
  /** Pixel columns across the plot (>= 1). */
  width: number;
}

const isValue = (y: number) => !Number.isNaN(y);
const isPositive = (y: number) => y > 0;

/** Which y values can be drawn (NaN is "no value"; a log axis also drops y <= 0). */
export const drawable = (logScale: boolean) => (logScale ? isPositive : isValue);

/** Reduces (xs, ys) to at most 4 points per pixel column of `span`; the input is never written. */
export function downsampleToPixels(xs: Values, ys: Values, span: PixelSpan, keep = drawable(false)): XY[] {
  return new PixelColumns(xs, ys, span, keep).points();
}

export class PixelColumns {
  private readonly firstI: Int32Array;
  private readonly minI: Int32Array;
  private readonly maxI: Int32Array;
  private readonly lastI: Int32Array;
  private readonly minY: Float64Array;
  private readonly maxY: Float64Array;
  private readonly range: number;
  /** Where each column's points start in `out` (valid below `dirty`). */
  private readonly start: Int32Array;
  private readonly out: XY[] = [];
  /** First column changed since the last emit: only it and those after it are re-emitted. */
  private dirty = 0;
  private read = 0;
  private cached: XY[] | null = null;

  constructor(readonly xs: Values, readonly ys: Values, readonly span: PixelSpan, readonly keep: (y: number) => boolean) {
    const width = Math.max(1, Math.floor(span.width));
    this.firstI = new Int32Array(width).fill(-1);
    this.minI = new Int32Array(width);
    this.maxI = new Int32Array(width);
    this.lastI = new Int32Array(width);
    this.minY = new Float64Array(width);
    this.maxY = new Float64Array(width);
    this.start = new Int32Array(width);
    this.range = span.x1 > span.x0 ? span.x1 - span.x0 : Infinity;
  }

  /** True when this reducer was built for these inputs (otherwise build a new one). */
  fits(xs: Values, ys: Values, span: PixelSpan, keep: (y: number) => boolean): boolean {
    return xs === this.xs && ys === this.ys && keep === this.keep && span.x0 === this.span.x0 && span.x1 === this.span.x1 && span.width === this.span.width && ys.length >= this.read;
  }

  /** The reduced points, after folding in whatever was appended since the last call. */
  points(): XY[] {
    const n = Math.min(this.xs.length, this.ys.length);
    if (this.cached && n === this.read) return this.cached;
    const { xs, ys, keep, firstI, minI, maxI, lastI, minY, maxY, range } = this;
    const { x0, x1 } = this.span;
    const width = firstI.length;
    const last = width - 1;
    let dirty = this.dirty;
    for (let i = this.read; i < n; i++) {
      const y = ys.get(i);
      if (!keep(y)) continue;
      const x = xs.get(i);
      if (!(x >= x0 && x <= x1)) continue;
      const c = Math.min(last, Math.floor(((x - x0) / range) * width));
      if (c < dirty) dirty = c;
      if (firstI[c] < 0) {
        firstI[c] = minI[c] = maxI[c] = lastI[c] = i;
        minY[c] = maxY[c] = y;
        continue;
      }
      if (y < minY[c]) { minY[c] = y; minI[c] = i; }
      if (y > maxY[c]) { maxY[c] = y; maxI[c] = i; }
      lastI[c] = i;
    }
    this.read = n;
    this.emitFrom(dirty);
    this.dirty = width;
    this.cached = this.out.slice();
    return this.cached;
  }

  /** Rewrites the output from column `from` on; the columns before it are unchanged. */
  private emitFrom(from: number): void {
    const { xs, ys, firstI, minI, maxI, lastI, out, start } = this;
    if (from >= firstI.length) return;
    out.length = start[from];
    for (let c = from; c < firstI.length; c++) {
      start[c] = out.length;
      if (firstI[c] < 0) continue;
      // first <= last, and min and max lie between them: insert those two in index order.
      const a = Math.min(minI[c], maxI[c]);
      const b = Math.max(minI[c], maxI[c]);
      let prev = -1;
      for (const i of [firstI[c], a, b, lastI[c]]) {
        if (i === prev) continue;
        out.push({ x: xs.get(i), y: ys.get(i) });
        prev = i;
      }
    }
  }
}
