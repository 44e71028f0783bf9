// Decimation for drawing: the store keeps every point, the charts draw at most a few
// thousand. Min-max per pixel bucket keeps every spike (a loss blow-up must stay visible),
// which LTTB does not guarantee. Nothing here writes to the input columns.
import { Column as ColumnCtor, type Column } from './column';

export interface XY { x: number; y: number }

/**
 * Reduce (xs, ys) to at most ~2*buckets points: per bucket of equal x width, the minimum and
 * the maximum in their original order, plus the first and last points. NaN values are skipped.
 * `ys` may be a Column or a plain array (smoothed values).
 */
export function minMaxDecimate(xs: Column, ys: Column | ArrayLike<number>, buckets: number, xRange?: [number, number]): XY[] {
  const n = xs.length;
  const yAt = 'get' in ys ? (i: number) => (ys as Column).get(i) : (i: number) => (ys as ArrayLike<number>)[i];
  if (n === 0) return [];
  const start = xRange ? xs.lowerBound(xRange[0]) : 0;
  const end = xRange ? xs.upperBound(xRange[1]) : n;
  const count = end - start;
  if (count <= 0) return [];
  const out: XY[] = [];
  if (count <= buckets * 2) {
    for (let i = start; i < end; i++) {
      const y = yAt(i);
      if (!Number.isNaN(y)) out.push({ x: xs.get(i), y });
    }
    return out;
  }
  const x0 = xs.get(start);
  const x1 = xs.get(end - 1);
  const width = (x1 - x0) / buckets || 1;
  let i = start;
  let lastPushed = -1;
  const pushIndex = (k: number) => {
    if (k === lastPushed || k < 0) return;
    out.push({ x: xs.get(k), y: yAt(k) });
    lastPushed = k;
  };
  const firstValid = findValid(start, end, 1, yAt);
  pushIndex(firstValid);
  for (let b = 0; b < buckets && i < end; b++) {
    const limit = b === buckets - 1 ? Infinity : x0 + (b + 1) * width;
    let minI = -1;
    let maxI = -1;
    let minY = Infinity;
    let maxY = -Infinity;
    for (; i < end && xs.get(i) < limit; i++) {
      const y = yAt(i);
      if (Number.isNaN(y)) continue;
      if (y < minY) { minY = y; minI = i; }
      if (y > maxY) { maxY = y; maxI = i; }
    }
    if (minI < 0) continue;
    if (minI <= maxI) { pushIndex(minI); pushIndex(maxI); } else { pushIndex(maxI); pushIndex(minI); }
  }
  pushIndex(findValid(end - 1, start - 1, -1, yAt));
  return out;
}

function findValid(from: number, stop: number, dir: 1 | -1, yAt: (i: number) => number): number {
  for (let i = from; i !== stop; i += dir) if (!Number.isNaN(yAt(i))) return i;
  return -1;
}

/**
 * Exponential moving average with TensorBoard's debiasing, into a new array (the stored
 * values are never touched). weight 0 = raw values, 0.99 = very smooth.
 */
export function emaSmooth(values: Column, weight: number): Float64Array {
  const raw = values.toArray();
  if (weight <= 0) return raw;
  const out = new Float64Array(raw.length);
  let last = 0;
  let debias = 1;
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i];
    if (Number.isNaN(v)) { out[i] = NaN; continue; }
    last = last * weight + (1 - weight) * v;
    debias *= weight;
    out[i] = last / (1 - debias);
  }
  return out;
}

/**
 * Incremental EMA: the smoothed copy of a growing column, extended only by the points added
 * since the last call (a live run appends; recomputing 100k points per frame would churn
 * memory). Recomputed from scratch when the weight changes.
 */
export class SmoothedColumn {
  private out = new ColumnCtor();
  private last = 0;
  private debias = 1;
  private weight = -1;

  constructor(private readonly source: Column) {}

  values(weight: number): Column {
    if (weight !== this.weight) {
      this.out = new ColumnCtor();
      this.last = 0;
      this.debias = 1;
      this.weight = weight;
    }
    for (let i = this.out.length; i < this.source.length; i++) {
      const v = this.source.get(i);
      if (Number.isNaN(v)) { this.out.push(NaN); continue; }
      this.last = this.last * weight + (1 - weight) * v;
      this.debias *= weight;
      this.out.push(this.debias === 1 ? v : this.last / (1 - this.debias));
    }
    return this.out;
  }
}
