// `sparse-studio profile --model DIR [--data builtin:brown|FILE] [--seq N] [--block B] [--batches N]
//   [--batch-size N] [--target-kl X] [--per-query-head] [--json]`: the dense teacher's attention
// profile on calibration batches (validation windows of the data).
//
// Per layer: the block-pooled attention mass map and the floor curve, the lowest attention KL
// any student can reach at each density (the oracle masks' mean over rows of -log kept teacher
// mass, with their recall), and the recommended budget: the smallest density whose floor is at
// most --target-kl. With --pipeline FILE, also the attention-KL bound of each Replace node's
// mask (host/mask-bounds.ts; docs/metrics.md "Attention KL bound at a mask"). Definitions: docs/metrics.md ("Attention profile"). The numbers come from
// the engine (EngineModel.attentionProfile); this module parses, aggregates and prints.
// Bad input: one line on stderr, exit 2.
import { pointAt, PROFILE_DEFAULTS, type ProfileReport } from '../../core/attention-profile';
import { ProfileInputError, profileTeacher } from '../attention-profile';
import { loadModelForCommand } from './load-model';
import { parsePipelineText } from '../../core/parse';
import type { Pipeline } from '../../core/schema';
import { formatMaskBounds, pipelineMaskBounds } from '../mask-bounds';
import { readPipelineText } from '../safe-read';

const USAGE = 'usage: sparse-studio profile --model DIR [--data builtin:brown|FILE] [--seq N] [--block B] [--batches N] [--batch-size N] [--target-kl X] [--per-query-head] [--pipeline FILE] [--json]';

class UsageError extends Error {}

// The report's types and curve helpers live in core/ (the studio reads them too).
export { buildReport } from '../attention-profile';
export { budgetFor, floorCurve, pointAt, PROFILE_DENSITIES, type CurvePoint, type LayerProfile, type ProfileReport } from '../../core/attention-profile';

export interface ProfileArgs {
  model: string; data: string; seq?: number; block: number; batches: number; batchSize: number;
  targetKl: number; shareGqa: boolean; json: boolean;
  /** A pipeline whose Replace nodes' masks get the attention-KL bound from this profile. */
  pipeline?: string;
}

export function parseProfileArgs(args: string[]): ProfileArgs {
  const out: Partial<ProfileArgs> & { json: boolean } = {
    json: false, data: 'builtin:brown', block: PROFILE_DEFAULTS.block, batches: PROFILE_DEFAULTS.batches,
    batchSize: PROFILE_DEFAULTS.batchSize, targetKl: PROFILE_DEFAULTS.targetKl, shareGqa: true,
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
    else if (a === '--pipeline') out.pipeline = value();
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
  let pipeline: Pipeline | undefined;
  if (parsed.pipeline) {
    const read = readPipelineText(parsed.pipeline);
    const result = 'error' in read ? null : parsePipelineText(read.text, parsed.pipeline);
    if (!result || !('pipeline' in result)) {
      const why = 'error' in read ? `cannot read: ${read.error}` : `${result!.problems[0].path}: ${result!.problems[0].message}`;
      console.error(`sparse-studio profile: ${parsed.pipeline}: ${why.split('\n')[0]}`);
      return 2;
    }
    pipeline = result.pipeline;
  }
  const model = await loadModelForCommand('profile', parsed.model);
  if (!model) return 2;
  try {
    const report = await profileTeacher(model, {
      modelLabel: parsed.model, dataLabel: parsed.data, modelDir: parsed.model, seq: parsed.seq,
      data: { source: parsed.data, format: 'auto', text_field: 'text', validation_fraction: 0.05, seed: 0, content_hash: '' },
      block: parsed.block, batches: parsed.batches, batchSize: parsed.batchSize, shareGqa: parsed.shareGqa, targetKl: parsed.targetKl,
    });
    const masks = pipeline ? pipelineMaskBounds(report, pipeline, model.config.num_key_value_heads) : undefined;
    if (parsed.json) console.log(JSON.stringify(masks ? { ...report, masks } : report));
    else console.log([formatReport(report), ...(masks ? formatMaskBounds(masks) : [])].join('\n'));
    return 0;
  } catch (e) {
    console.error(`sparse-studio profile: ${(e as Error).message.split('\n')[0]}`);
    return e instanceof UsageError || e instanceof ProfileInputError ? 2 : 1;
  } finally {
    model.dispose();
  }
}
