// Test support: InfLLM-V2 block selection as published (MiniCPM 4.1), in float64, written from the
// published algorithm independently of native/src/block_selector.cpp. q (H, T, D), k (Hkv, T, D) of
// one sequence; returns, per KV head and query token, the selected key blocks in ascending order.

export interface InfllmV2Params { block: number; kernel: number; stride: number; init: number; local: number; extra: number; denseLen: number }

/**
 * Reference: compressed keys are means of `kernel` keys every `stride` tokens (visible to a token
 * once the whole window lies at or before it); each query token scores them with a softmax, summed
 * over its GQA group; a block scores the max over the compressed windows overlapping its tokens;
 * the init blocks and the local blocks ending at the token's block are always in; the top
 * k = init + local + extra blocks by score are selected (ties to the lower block).
 */
export function referenceSelection(q: ArrayLike<number>, k: ArrayLike<number>, H: number, Hkv: number, T: number, D: number, p: InfllmV2Params): number[][][] {
  const nb = Math.ceil(T / p.block), G = H / Hkv;
  const out: number[][][] = [];
  const nc = T >= p.kernel ? Math.floor((T - p.kernel) / p.stride) + 1 : 0;
  for (let g = 0; g < Hkv; g++) {
    const rows: number[][] = [];
    const kc: number[][] = [];
    for (let j = 0; j < nc; j++) {
      const m = new Array<number>(D).fill(0);
      for (let i = j * p.stride; i < j * p.stride + p.kernel; i++) for (let d = 0; d < D; d++) m[d] += k[(g * T + i) * D + d] / p.kernel;
      kc.push(m);
    }
    for (let t = 0; t < T; t++) {
      const qb = Math.floor(t / p.block);
      if (T < p.denseLen) { rows.push(Array.from({ length: qb + 1 }, (_, b) => b)); continue; }
      const visible = kc.map((_, j) => j).filter((j) => j * p.stride + p.kernel - 1 <= t);
      const score = new Array<number>(nc).fill(0);
      for (let h = g * G; h < (g + 1) * G; h++) {
        const logits = visible.map((j) => { let s = 0; for (let d = 0; d < D; d++) s += q[(h * T + t) * D + d] * kc[j][d]; return s / Math.sqrt(D); });
        const mx = Math.max(...logits);
        const e = logits.map((x) => Math.exp(x - mx));
        const sum = e.reduce((a, b) => a + b, 0);
        visible.forEach((j, i) => { score[j] += e[i] / sum; });
      }
      const cands: { b: number; s: number }[] = [];
      for (let b = 0; b <= qb; b++) {
        let s: number;
        if (b < p.init || b > qb - p.local) s = Infinity;
        else {
          s = 0;
          for (let j = 0; j < nc; j++) {
            const overlaps = j * p.stride < (b + 1) * p.block && j * p.stride + p.kernel > b * p.block;
            if (overlaps) s = Math.max(s, score[j]);
          }
        }
        cands.push({ b, s });
      }
      cands.sort((x, y) => (x.s !== y.s ? y.s - x.s : x.b - y.b));
      rows.push(cands.slice(0, p.init + p.local + p.extra).map((c) => c.b).sort((x, y) => x - y));
    }
    out.push(rows);
  }
  return out;
}
