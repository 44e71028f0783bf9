// The dense teacher's attention profile as the CLI (`sparse-studio profile --json`) and the studio
// (StudioApi.analyzeAttention) report it, and what the studio asks for when a person clicks
// "Analyze attention" on a Model or Replace node. Definitions: docs/metrics.md ("Attention profile").
//
// Owned by core/: no Node, DOM or Electron imports here.
import type { DatasetParams, Pipeline } from './schema';
import { executionOrder, stagesOf } from './order';

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

/** The `--json` object of `sparse-studio profile`, and analyzeAttention's answer. */
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

/** The CLI's defaults, which the studio uses too. */
export const PROFILE_DEFAULTS = { block: 64, batches: 4, batchSize: 2, targetKl: 0.1, seq: 512 } as const;

/** Densities the floor curve is measured at: 0.05, 0.10, ..., 1. */
export const PROFILE_DENSITIES: readonly number[] = Array.from({ length: 20 }, (_, i) => Math.round((i + 1) * 5) / 100);

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

/** The curve point of the largest density <= d; null when every mask is denser (the diagonal alone is). */
export function pointAt(curve: CurvePoint[], d: number): CurvePoint | null {
  let best: CurvePoint | null = null;
  for (const p of curve) if (p.density <= d + 1e-12) best = p;
  return best;
}

/** What analyzeAttention profiles: the teacher of `model` on validation windows of `data`. */
export interface AttentionProfileRequest {
  /** A Model node's source: 'builtin:demo' or a Hugging Face directory (relative to the studio's working folder). */
  model: string;
  /** A Dataset node's parameters; the calibration batches are validation windows of it. */
  data: DatasetParams;
  seq: number;
  block: number;
  /** One mask per GQA group (the floor curve's oracle masks share blocks like the Replace node's). */
  share_gqa: boolean;
  batches: number;
  batch_size: number;
  target_kl: number;
}

/**
 * The profile the studio runs for a Model or Replace node: the model of the pipeline, the data of
 * the stage that applies the node (for a Model node, the first stage), that stage's longest
 * curriculum length (what its evaluations and gates use), and the block size and sharing of the
 * node's mask (for a Model node, of the first Replace node; else the CLI's default block).
 * A string is the one-line reason it cannot be derived.
 */
export function attentionProfileRequest(p: Pipeline, nodeId: string): AttentionProfileRequest | string {
  const node = p.nodes.find((n) => n.id === nodeId);
  if (!node || (node.kind !== 'model' && node.kind !== 'replace')) return `'${nodeId}' is not a Model or Replace node`;
  const model = p.nodes.find((n) => n.kind === 'model');
  if (!model || model.kind !== 'model' || typeof model.params.source !== 'string' || model.params.source === '') return 'the pipeline has no Model node with a source';
  let stages;
  try { stages = stagesOf(p); } catch (e) { return (e as Error).message; }
  const stage = node.kind === 'model' ? stages[0] : stages.find((s) => s.ops.includes(nodeId));
  if (!stage) return node.kind === 'model' ? 'the pipeline has no Train node (its data and length set the calibration)' : `no Train node follows '${nodeId}' (its stage's data and length set the calibration)`;
  const dataNode = p.nodes.find((n) => n.id === stage.dataset);
  if (!dataNode || dataNode.kind !== 'dataset') return `the Train node '${stage.train}' has no Dataset node linked`;
  const train = p.nodes.find((n) => n.id === stage.train);
  const curriculum = train?.kind === 'train' && Array.isArray(train.params.curriculum) ? train.params.curriculum : [];
  const seq = curriculum.reduce((m, c) => Math.max(m, Number(c?.seq_len) || 0), 0) || PROFILE_DEFAULTS.seq;
  const maskNode = node.kind === 'replace' ? node : executionOrder(p).map((id) => p.nodes.find((n) => n.id === id)!).find((n) => n.kind === 'replace');
  const mask = maskNode?.kind === 'replace' ? maskNode.params.mask : undefined;
  return {
    model: model.params.source, data: dataNode.params, seq,
    block: mask?.block_size ?? PROFILE_DEFAULTS.block, share_gqa: mask?.share_gqa_group ?? true,
    batches: PROFILE_DEFAULTS.batches, batch_size: PROFILE_DEFAULTS.batchSize, target_kl: PROFILE_DEFAULTS.targetKl,
  };
}

/** One key per distinct profile (the host's cache and the page's store use it). */
export function profileRequestKey(r: AttentionProfileRequest): string {
  const d = r.data;
  return JSON.stringify([r.model, d.source, d.format, d.text_field, d.validation_fraction, d.seed, d.content_hash, r.seq, r.block, r.share_gqa, r.batches, r.batch_size, r.target_kl]);
}
