// A lower bound of a layer's attention KL at a given block mask, from the teacher's pooled
// attention mass map (core/attention-profile.ts). Definitions and the argument: docs/metrics.md
// ("Attention KL bound at a mask").
//
// Why it holds: any student confined to the mask has row KL >= -log(teacher mass kept in the
// row). Rows are grouped by (query head h, query block i); the map holds the group's MEAN row
// block mass over the calibration sequences, and -log is convex, so by Jensen the group's mean of
// -log(kept) is >= -log(mean kept) = -log(sum of the map's kept entries). The layer's attn_kl is
// the mean over rows, so the row-weighted mean of the groups' values bounds it from below. The
// bound is loose where rows of one group keep very different mass, and it is a bound on the
// calibration data: other text can score differently.
//
// Top-k blocks are chosen per input at run time, so the pooled map cannot bound them; for masks
// with top-k blocks the result is the oracle's floor at the mask's density instead (the best a
// fixed mask of that density reaches on the calibration data), and says so (`kind: 'oracle'`).
//
// Owned by core/: no Node, DOM or Electron imports here.
import type { CurvePoint } from './attention-profile';

export interface MaskKeep {
  /** Per mask head: (n, n) row-major, 1 where the mask keeps block pair (query i, key j) for every input. */
  kept: Uint8Array[];
  /** Per query block: blocks chosen at run time on top of `kept` (top-k); all 0 for a static mask. */
  dynamicPerRow: number[];
  /** Kept causal block pairs / all causal block pairs, counting the dynamic blocks. */
  density: number;
}

export interface KlBound {
  /** 'static': the Jensen lower bound from the map; 'oracle': the oracle floor at the mask's density. */
  kind: 'static' | 'oracle';
  /** Nats; attention KL of any student confined to the mask is >= this ('static') on the calibration data. */
  value: number;
  /** 'static': the mean over rows of the teacher mass the mask keeps (= the teacher-restricted student's attn_recall). */
  recall: number;
  /** The mask's density; for 'oracle', `oracleDensity` is the curve point used. */
  density: number;
  oracleDensity?: number;
}

/** Query rows of block i in a sequence of `seq` tokens cut into blocks of `block`. */
export function rowsInBlock(i: number, seq: number, block: number): number {
  return Math.max(0, Math.min(block, seq - i * block));
}

/**
 * The static bound: mean over rows (weighted by query block length) of -log(kept pooled mass),
 * each group clamped at >= 0 like attn_kl's rows. `mass` is one layer's (H, n, n) map; query
 * head h uses mask head floor(h / (H / kept.length)).
 */
export function staticKlBound(mass: number[][][], kept: Uint8Array[], seq: number, block: number): { value: number; recall: number } {
  const heads = mass.length;
  const maskHeads = kept.length;
  if (maskHeads < 1 || heads % maskHeads !== 0) throw new Error(`attention bound: ${maskHeads} mask heads do not divide ${heads} heads`);
  const n = mass[0]?.length ?? 0;
  if (n !== Math.ceil(seq / block)) throw new Error(`attention bound: the map has ${n} blocks, the mask ${Math.ceil(seq / block)} (seq ${seq}, block ${block})`);
  const group = heads / maskHeads;
  let sum = 0, recall = 0;
  for (let h = 0; h < heads; h++) {
    const keep = kept[Math.floor(h / group)];
    if (keep.length !== n * n) throw new Error(`attention bound: a kept map has ${keep.length} entries, expected ${n * n}`);
    for (let i = 0; i < n; i++) {
      let m = 0;
      for (let j = 0; j <= i; j++) if (keep[i * n + j]) m += mass[h][i][j];
      const rows = rowsInBlock(i, seq, block);
      sum += rows * Math.max(0, -Math.log(m));
      recall += rows * Math.min(1, m);
    }
  }
  return { value: sum / (heads * seq), recall: recall / (heads * seq) };
}

/** The oracle's floor at density d, read conservatively: the first curve point at least as dense. */
export function oracleFloorAt(curve: CurvePoint[], d: number): CurvePoint {
  return curve.find((p) => p.density >= d - 1e-12) ?? curve[curve.length - 1];
}

/** The attention-KL bound of one layer at `mask` (static bound, or the oracle floor when it has top-k blocks). */
export function maskKlBound(layer: { mass: number[][][]; curve: CurvePoint[] }, mask: MaskKeep, seq: number, block: number): KlBound {
  if (mask.dynamicPerRow.some((k) => k > 0)) {
    const p = oracleFloorAt(layer.curve, mask.density);
    return { kind: 'oracle', value: p.floor, recall: p.recall, density: mask.density, oracleDensity: p.density };
  }
  const { value, recall } = staticKlBound(layer.mass, mask.kept, seq, block);
  return { kind: 'static', value, recall, density: mask.density };
}
