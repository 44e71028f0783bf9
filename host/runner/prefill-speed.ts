// Measured speed-up of block-sparse attention: the student's prefill (forward only) with its
// masks against the same student with every layer dense, timed in one process, interleaved,
// best of PREFILL_REPS each (native EngineModel.timePrefill). Wall-clock numbers, so they go to
// the run log, the stage summary and the gate verdict, never to metrics.jsonl (whose lines are
// byte-identical across reproducible runs).
import type { Batch, EngineModel } from '../../native/engine-api';

/** Timed runs of each kind; the best counts (the first ones pay for warm-up). */
export const PREFILL_REPS = 3;

export interface PrefillSpeed {
  /** Tokens per sequence and sequences timed. */
  seq: number; batch: number;
  dense_ms: number; sparse_ms: number;
  /** dense_ms / sparse_ms: above 1 the masks make prefill faster. */
  speedup: number;
}

/** Times one sequence of `batch` (its first row); null when the engine cannot time prefill. */
export async function measurePrefillSpeed(model: EngineModel, batch: Batch): Promise<PrefillSpeed | null> {
  if (!model.timePrefill) return null;
  const one: Batch = { tokens: batch.tokens.subarray(0, batch.seq + 1), batch: 1, seq: batch.seq };
  const t = await model.timePrefill(one, PREFILL_REPS);
  const dense_ms = t.dense_s * 1e3, sparse_ms = t.sparse_s * 1e3;
  return { seq: batch.seq, batch: 1, dense_ms, sparse_ms, speedup: sparse_ms > 0 ? dense_ms / sparse_ms : NaN };
}

export function describePrefillSpeed(s: PrefillSpeed): string {
  return `prefill of ${s.batch} x ${s.seq} tokens: dense ${s.dense_ms.toFixed(2)} ms, sparse ${s.sparse_ms.toFixed(2)} ms (best of ${PREFILL_REPS}), speed-up ${s.speedup.toFixed(3)}x`;
}
