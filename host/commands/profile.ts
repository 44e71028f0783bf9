// `sparse-studio profile --model DIR [--data builtin:brown|FILE] [--seq N] [--block B] [--batches N]
//   [--batch-size N] [--target-kl X] [--per-query-head] [--json]`: the dense teacher's attention
// profile on calibration batches (validation windows of the data).
//
// Per layer: the block-pooled attention mass map and the floor curve, the lowest attention KL
// any student can reach at each density (the oracle masks' mean over rows of -log kept teacher
// mass, with their recall), and the recommended budget: the smallest density whose floor is at
// most --target-kl. Definitions: docs/metrics.md ("Attention profile"). The numbers come from
// the engine (EngineModel.attentionProfile); this module parses, aggregates and prints.
// Bad input: one line on stderr, exit 2.
import { join } from 'node:path';
import type { AttentionProfile } from '../../native/engine-api';
import { loadModelForCommand } from './load-model';

const USAGE = 'usage: sparse-studio profile --model DIR [--data builtin:brown|FILE] [--seq N] [--block B] [--batches N] [--batch-size N] [--target-kl X] [--per-query-head] [--json]';

class UsageError extends Error {}

export interface ProfileArgs {
  model: string; data: string; seq?: number; block: number; batches: number; batchSize: number;
  targetKl: number; shareGqa: boolean; json: boolean;
}

/** Densities the floor curve is measured at: 0.05, 0.10, ..., 1. */
export const PROFILE_DENSITIES: readonly number[] = Array.from({ length: 20 }, (_, i) => Math.round((i + 1) * 5) / 100);

export function parseProfileArgs(args: string[]): ProfileArgs {
  const out: Partial<ProfileArgs> & { json: boolean } = {
    json: false, data: 'builtin:brown', block: 64, batches: 4, batchSize: 2, targetKl: 0.1, shareGqa: true,
  };
  const int = (flag: string, v: string) => {
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`${flag} must be a positive integer, got '${v}'`);
    return Number(v);
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = () => {
      const v = args[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === '--json') out.json = true;
    else if (a === '--per-query-head') out.shareGqa = false;
    else if (a === '--model') out.model = value();
    else if (a === '--data') out.data = value();
    else if (a === '--seq') out.seq = int(a, value());
    else if (a === '--block') out.block = int(a, value());
    else if (a === '--batches') out.batches = int(a, value());
    else if (a === '--batch-size') out.batchSize = int(a, value());
    else if (a === '--target-kl') {
      const v = value();
      const x = Number(v);
      if (!/^[0-9.eE+-]+$/.test(v) || !Number.isFinite(x) || x < 0) throw new UsageError(`--target-kl must be a number >= 0, got '${v}'`);
      out.targetKl = x;
    } else throw new UsageError(`unknown argument '${a}'`);
  }
  if (!out.model) throw new UsageError('--model DIR is required');
  return out as ProfileArgs;
}

export interface CurvePoint { density: number; floor: number; recall: number }

export interface LayerProfile {
  layer: number;
  /** (H, n_blocks, n_blocks): mean teacher attention mass of query block i's rows in key block j. */
  mass: number[][][];
  /** The floor curve: one point per distinct achieved density, ascending. */
  curve: CurvePoint[];
  /** Smallest density whose floor <= target_kl (1 always qualifies: its floor is 0). */
  budget: CurvePoint;
}

/** The `--json` object. */
export interface ProfileReport {
  model: string; data: string; seq: number; block: number; n_blocks: number;
  /** Calibration sequences: batches x batch_size validation windows. */
  sequences: number; batches: number; batch_size: number;
  share_gqa: boolean; mask_heads: number; heads: number;
  target_kl: number;
  layers: LayerProfile[];
  /** Mean over layers of the budgets' densities. */
  mean_budget_density: number;
}

/** The curve without repeated densities (densities below the diagonal-only mask collapse onto it). */
export function floorCurve(density: number[], floor: number[], recall: number[]): CurvePoint[] {
  const out: CurvePoint[] = [];
  density.forEach((d, i) => {
    const p = { density: d, floor: floor[i], recall: recall[i] };
    if (out.length > 0 && Math.abs(out[out.length - 1].density - d) < 1e-12) out[out.length - 1] = p;
    else out.push(p);
  });
  return out;
}

/** The smallest-density point whose floor is at most target (the last point when none is). */
export function budgetFor(curve: CurvePoint[], target: number): CurvePoint {
  return curve.find((p) => p.floor <= target) ?? curve[curve.length - 1];
}

export function buildReport(p: AttentionProfile, args: ProfileArgs, seq: number, heads: number, sequences: number): ProfileReport {
  const nb = p.n_blocks;
  const layers = p.layers.map((l, layer): LayerProfile => {
    const mass = Array.from({ length: heads }, (_, h) =>
      Array.from({ length: nb }, (_, i) => Array.from(l.mass.subarray((h * nb + i) * nb, (h * nb + i + 1) * nb))));
    const curve = floorCurve(l.density, l.floor, l.recall);
    return { layer, mass, curve, budget: budgetFor(curve, args.targetKl) };
  });
  return {
    model: args.model, data: args.data, seq, block: p.block, n_blocks: nb,
    sequences, batches: args.batches, batch_size: args.batchSize,
    share_gqa: args.shareGqa, mask_heads: p.mask_heads, heads, target_kl: args.targetKl,
    layers, mean_budget_density: layers.reduce((s, l) => s + l.budget.density, 0) / Math.max(1, layers.length),
  };
}

/** The curve point of the largest density <= d; null when every mask is denser (the diagonal alone is). */
export function pointAt(curve: CurvePoint[], d: number): CurvePoint | null {
  let best: CurvePoint | null = null;
  for (const p of curve) if (p.density <= d + 1e-12) best = p;
  return best;
}

export function formatReport(r: ProfileReport): string {
  const shown = [0.1, 0.25, 0.5, 0.75];
  const lines = [
    `attention profile: ${r.model}, ${r.sequences} sequences x ${r.seq} tokens of ${r.data}, block ${r.block} (${r.n_blocks} blocks), ` +
      `masks per ${r.share_gqa ? 'KV head (GQA group)' : 'query head'}`,
    `floor = lowest attention KL (nats) any student reaches at that density; budget = smallest density with floor <= ${r.target_kl}`,
    ['layer', ...shown.map((d) => `floor@${d}`), 'budget', 'floor', 'recall', 'diag mass'].map((s) => s.padStart(11)).join(''),
  ];
  for (const l of r.layers) {
    // Mean over heads and query blocks of the diagonal block's mass: how local the layer is.
    let diag = 0;
    for (const head of l.mass) for (let i = 0; i < head.length; i++) diag += head[i][i];
    diag /= l.mass.length * r.n_blocks;
    const cells = [String(l.layer), ...shown.map((d) => pointAt(l.curve, d)?.floor.toFixed(4) ?? '-'), l.budget.density.toFixed(3),
      l.budget.floor.toFixed(4), l.budget.recall.toFixed(4), diag.toFixed(3)];
    lines.push(cells.map((s) => s.padStart(11)).join(''));
  }
  lines.push(`mean budget density ${r.mean_budget_density.toFixed(3)} (floor@d: at the largest measured density <= d; - when even the diagonal alone is denser)`);
  return lines.join('\n');
}

export async function run(args: string[]): Promise<number> {
  let parsed: ProfileArgs;
  try {
    parsed = parseProfileArgs(args);
  } catch (e) {
    console.error(`sparse-studio profile: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const model = await loadModelForCommand('profile', parsed.model);
  if (!model) return 2;
  try {
    if (!model.attentionProfile) throw new Error('this engine has no attentionProfile');
    const maxSeq = model.config.max_position_embeddings;
    const seq = parsed.seq ?? Math.min(maxSeq, 512);
    if (seq > maxSeq) throw new UsageError(`--seq ${seq} exceeds the model's max_position_embeddings (${maxSeq})`);
    const { loadDataset, DataError } = await import('../data/index');
    let data;
    try {
      data = await loadDataset(
        { source: parsed.data, format: 'auto', text_field: 'text', validation_fraction: 0.05, seed: 0, content_hash: '' },
        join(parsed.model, 'tokenizer.json'), { maxSeq: seq },
      );
    } catch (e) {
      if (e instanceof DataError) throw new UsageError(e.message.split('\n')[0]);
      throw e;
    }
    if (data.vocabSize > model.config.vocab_size) throw new UsageError(`the tokenizer has ${data.vocabSize} tokens but the model's vocab_size is ${model.config.vocab_size}`);
    const parts = Array.from({ length: parsed.batches }, (_, i) => data.validationBatch(i, parsed.batchSize, seq).tokens);
    const tokens = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { tokens.set(p, at); at += p.length; }
    const sequences = parsed.batches * parsed.batchSize;
    const profile = await model.attentionProfile({ tokens, batch: sequences, seq }, {
      batch: parsed.batchSize, block: parsed.block, shareGqa: parsed.shareGqa, densities: [...PROFILE_DENSITIES],
    });
    const report = buildReport(profile, parsed, seq, model.config.num_attention_heads, sequences);
    if (parsed.json) console.log(JSON.stringify(report));
    else console.log(formatReport(report));
    return 0;
  } catch (e) {
    console.error(`sparse-studio profile: ${(e as Error).message.split('\n')[0]}`);
    return e instanceof UsageError ? 2 : 1;
  } finally {
    model.dispose();
  }
}
