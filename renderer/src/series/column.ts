// A growable column of float64 values stored in fixed-size chunks: appending never copies
// what is already stored, so a 100k-point series grows in O(1) per point and old chunks
// stay untouched (the charts read them while new points arrive).
const CHUNK_BITS = 13;
const CHUNK_SIZE = 1 << CHUNK_BITS;
const CHUNK_MASK = CHUNK_SIZE - 1;

export class Column {
  private chunks: Float64Array[] = [];
  length = 0;

  push(value: number): void {
    const index = this.length & CHUNK_MASK;
    if (index === 0) this.chunks.push(new Float64Array(CHUNK_SIZE));
    this.chunks[this.chunks.length - 1][index] = value;
    this.length++;
  }

  get(i: number): number {
    return this.chunks[i >>> CHUNK_BITS][i & CHUNK_MASK];
  }

  last(): number {
    return this.length ? this.get(this.length - 1) : NaN;
  }

  /** First index whose value is >= x, for a column sorted ascending (steps, times). */
  lowerBound(x: number): number {
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.get(mid) < x) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  /** First index whose value is > x, for a column sorted ascending. */
  upperBound(x: number): number {
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.get(mid) <= x) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  toArray(): Float64Array {
    const out = new Float64Array(this.length);
    for (let c = 0; c < this.chunks.length; c++) {
      const start = c << CHUNK_BITS;
      const n = Math.min(CHUNK_SIZE, this.length - start);
      out.set(n === CHUNK_SIZE ? this.chunks[c] : this.chunks[c].subarray(0, n), start);
    }
    return out;
  }
}

/** One metric over a run: value at each (step, time). NaN marks "no value" (a dense layer). */
export class Series {
  readonly step = new Column();
  readonly time = new Column();
  readonly value = new Column();

  push(step: number, time: number, value: number): void {
    this.step.push(step);
    this.time.push(time);
    this.value.push(value);
  }

  get length(): number {
    return this.value.length;
  }
}
