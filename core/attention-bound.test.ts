// The attention-KL bound at a mask: equal to a brute-force computation from per-row teacher
// masses (float64), never above the exact floor (the teacher restricted to the mask), monotone
// for nested masks; masks with top-k blocks read the oracle curve conservatively.
import { describe, expect, it } from 'vitest';
import { maskKlBound, oracleFloorAt, rowsInBlock, staticKlBound } from './attention-bound';
import { seededRandom as rng } from '../host/data/rng';

/**
 * Random teacher rows: R[s][h][t][j] = row t's attention mass in key block j (causal, sums to 1),
 * peaked like real attention (exponentials of scaled normals-ish), and the pooled map from them.
 */
function randomRows(r: () => number, S: number, H: number, T: number, B: number) {
  const n = Math.ceil(T / B);
  const rows: number[][][][] = [];
  for (let s = 0; s < S; s++) {
    rows.push([]);
    for (let h = 0; h < H; h++) {
      rows[s].push([]);
      for (let t = 0; t < T; t++) {
        const qi = Math.floor(t / B);
        const w = Array.from({ length: n }, (_, j) => (j <= qi ? Math.exp(4 * (r() - 0.5) * (1 + h)) : 0));
        const z = w.reduce((a, b) => a + b, 0);
        rows[s][h].push(w.map((x) => x / z));
      }
    }
  }
  const mass = Array.from({ length: H }, (_, h) => Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => {
    let sum = 0, count = 0;
    for (let s = 0; s < S; s++) for (let t = i * B; t < Math.min(T, (i + 1) * B); t++) { sum += rows[s][h][t][j]; count++; }
    return sum / count;
  })));
  return { rows, mass, n };
}

function randomKept(r: () => number, M: number, n: number, p: number): Uint8Array[] {
  return Array.from({ length: M }, () => {
    const k = new Uint8Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) k[i * n + j] = j === i || r() < p ? 1 : 0;
    return k;
  });
}

describe('staticKlBound', () => {
  it('equals the brute-force Jensen bound from per-row masses and stays under the exact floor', () => {
    const r = rng(7);
    for (const [S, H, M, T, B] of [[2, 4, 2, 40, 8], [3, 2, 2, 37, 8], [1, 4, 1, 16, 4], [2, 6, 3, 50, 16]]) {
      const { rows, mass, n } = randomRows(r, S, H, T, B);
      for (const p of [0, 0.3, 0.7, 1]) {
        const kept = randomKept(r, M, n, p);
        const got = staticKlBound(mass, kept, T, B);
        // Brute force: per (head, query block) group, the mean kept mass over its rows of every sequence.
        let bound = 0, exact = 0, recall = 0;
        for (let h = 0; h < H; h++) {
          const keep = kept[Math.floor(h / (H / M))];
          for (let i = 0; i < n; i++) {
            let groupKept = 0, groupRows = 0;
            for (let s = 0; s < S; s++) for (let t = i * B; t < Math.min(T, (i + 1) * B); t++) {
              let k = 0;
              for (let j = 0; j < n; j++) if (keep[i * n + j]) k += rows[s][h][t][j];
              groupKept += k; groupRows++;
              exact += Math.max(0, -Math.log(k)); // the teacher restricted to the mask: row KL = -log(kept)
              recall += k;
            }
            bound += groupRows * Math.max(0, -Math.log(groupKept / groupRows));
          }
        }
        const rowsAll = S * H * T;
        expect(got.value).toBeCloseTo(bound / rowsAll, 12);
        expect(got.recall).toBeCloseTo(recall / rowsAll, 12);
        expect(got.value).toBeLessThanOrEqual(exact / rowsAll + 1e-12);
        if (p === 1) expect(got.value).toBeCloseTo(0, 12);
      }
    }
  });

  it('does not increase as blocks are added to a mask (nested masks)', () => {
    const r = rng(11);
    const T = 64, B = 8, H = 4, M = 2;
    const { mass, n } = randomRows(r, 2, H, T, B);
    const kept = randomKept(r, M, n, 0);
    const free: [number, number][] = [];
    for (let m = 0; m < M; m++) for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) free.push([m, i * n + j]);
    for (let a = free.length - 1; a > 0; a--) { const b = Math.floor(r() * (a + 1)); [free[a], free[b]] = [free[b], free[a]]; }
    let last = staticKlBound(mass, kept, T, B).value;
    expect(last).toBeGreaterThan(0);
    for (const [m, at] of free) {
      kept[m][at] = 1;
      const v = staticKlBound(mass, kept, T, B).value;
      expect(v).toBeLessThanOrEqual(last + 1e-15);
      last = v;
    }
    expect(last).toBeCloseTo(0, 12);
  });

  it('names a map and mask that do not fit', () => {
    const mass = [[[1, 0], [0.5, 0.5]]];
    expect(() => staticKlBound(mass, [new Uint8Array(4)], 40, 8)).toThrow('the map has 2 blocks, the mask 5');
    expect(() => staticKlBound(mass, [new Uint8Array(4), new Uint8Array(4)], 16, 8)).toThrow('2 mask heads do not divide 1 heads');
    expect(rowsInBlock(4, 37, 8)).toBe(5);
  });
});

describe('maskKlBound', () => {
  const curve = [{ density: 0.2, floor: 1.5, recall: 0.3 }, { density: 0.5, floor: 0.4, recall: 0.7 }, { density: 1, floor: 0, recall: 1 }];
  it('reads the oracle floor at the first curve point at least as dense as a mask with top-k blocks', () => {
    const mass = [[[1, 0], [0.5, 0.5]]];
    const b = maskKlBound({ mass, curve }, { kept: [new Uint8Array([1, 0, 0, 1])], dynamicPerRow: [0, 1], density: 0.45 }, 16, 8);
    expect(b).toEqual({ kind: 'oracle', value: 0.4, recall: 0.7, density: 0.45, oracleDensity: 0.5 });
    expect(oracleFloorAt(curve, 0.5).density).toBe(0.5);
    expect(oracleFloorAt(curve, 0.1).density).toBe(0.2);
    const s = maskKlBound({ mass, curve }, { kept: [new Uint8Array([1, 0, 0, 1])], dynamicPerRow: [0, 0], density: 2 / 3 }, 16, 8);
    expect(s.kind).toBe('static');
    expect(s.value).toBeCloseTo(-Math.log(0.5) / 2, 14);
  });
});
