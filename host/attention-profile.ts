// Profiling the dense teacher on calibration data: shared by `sparse-studio profile` and the
// studio's profile process (host/profile-process.ts), so both report the same numbers for the
// same request. The engine measures (EngineModel.attentionProfile); this module picks the
// calibration batches and shapes the report (core/attention-profile.ts, docs/metrics.md).
import { join } from 'node:path';
import type { DatasetParams } from '../core/schema';
import { budgetFor, floorCurve, PROFILE_DENSITIES, type LayerProfile, type ProfileReport } from '../core/attention-profile';
import type { AttentionProfile, EngineModel } from '../native/engine-api';

/** Bad input (a length past the model's, data that will not load): one line, the caller's fault. */
export class ProfileInputError extends Error {}

export interface ProfileOptions {
  /** Names the report carries (the source as the user wrote it). */
  modelLabel: string; dataLabel: string;
  /** The model's folder (its tokenizer.json tokenizes the data). */
  modelDir: string;
  data: DatasetParams;
  /** Default: the model's max_position_embeddings, at most 512. */
  seq?: number;
  block: number; batches: number; batchSize: number; shareGqa: boolean; targetKl: number;
  /** Relative dataset paths resolve here. */
  baseDir?: string;
}

export interface ReportMeta {
  model: string; data: string; seq: number; batches: number; batchSize: number; shareGqa: boolean; targetKl: number; heads: number;
}

export function buildReport(p: AttentionProfile, meta: ReportMeta): ProfileReport {
  const nb = p.n_blocks;
  const layers = p.layers.map((l, layer): LayerProfile => {
    const mass = Array.from({ length: meta.heads }, (_, h) =>
      Array.from({ length: nb }, (_, i) => Array.from(l.mass.subarray((h * nb + i) * nb, (h * nb + i + 1) * nb))));
    const curve = floorCurve(l.density, l.floor, l.recall);
    return { layer, mass, curve, budget: budgetFor(curve, meta.targetKl) };
  });
  return {
    model: meta.model, data: meta.data, seq: meta.seq, block: p.block, n_blocks: nb,
    sequences: meta.batches * meta.batchSize, batches: meta.batches, batch_size: meta.batchSize,
    share_gqa: meta.shareGqa, mask_heads: p.mask_heads, heads: meta.heads, target_kl: meta.targetKl,
    layers, mean_budget_density: layers.reduce((s, l) => s + l.budget.density, 0) / Math.max(1, layers.length),
  };
}

/** The teacher's profile on `batches x batchSize` validation windows of the data. */
export async function profileTeacher(model: EngineModel, o: ProfileOptions): Promise<ProfileReport> {
  if (!model.attentionProfile) throw new Error('this engine has no attentionProfile');
  const maxSeq = model.config.max_position_embeddings;
  const seq = o.seq ?? Math.min(maxSeq, 512);
  if (seq > maxSeq) throw new ProfileInputError(`seq ${seq} exceeds the model's max_position_embeddings (${maxSeq})`);
  if (o.block > seq) throw new ProfileInputError(`block ${o.block} is longer than seq ${seq}`);
  const { loadDataset, DataError } = await import('./data/index');
  let data;
  try {
    data = await loadDataset(o.data, join(o.modelDir, 'tokenizer.json'), { maxSeq: seq, ...(o.baseDir ? { baseDir: o.baseDir } : {}) });
  } catch (e) {
    if (e instanceof DataError) throw new ProfileInputError(e.message.split('\n')[0]);
    throw e;
  }
  if (data.vocabSize > model.config.vocab_size) throw new ProfileInputError(`the tokenizer has ${data.vocabSize} tokens but the model's vocab_size is ${model.config.vocab_size}`);
  const parts = Array.from({ length: o.batches }, (_, i) => data.validationBatch(i, o.batchSize, seq).tokens);
  const tokens = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (tokens.set(p, at), at + p.length), 0);
  const profile = await model.attentionProfile({ tokens, batch: o.batches * o.batchSize, seq }, {
    batch: o.batchSize, block: o.block, shareGqa: o.shareGqa, densities: [...PROFILE_DENSITIES],
  });
  return buildReport(profile, {
    model: o.modelLabel, data: o.dataLabel, seq, batches: o.batches, batchSize: o.batchSize, shareGqa: o.shareGqa,
    targetKl: o.targetKl, heads: model.config.num_attention_heads,
  });
}
