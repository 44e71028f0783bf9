// Smoothing for drawing: the store keeps every raw point; the charts draw an EMA of them
// (pixel-column reduction is in pixel-columns.ts). Nothing here writes to the input columns.
import { Column as ColumnCtor, type Column } from './column';

export interface XY { x: number; y: number }

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
