// templates/qwen3-moe-double-sparsity.json end to end on the built-in MoE demo, shortened to fit
// the test budget (2 steps a stage, one 512-token sequence (32 blocks, as the template's masks are sized for)): all three stages and the export
// complete, the records carry the MoE metrics, and two runs write identical metrics.jsonl.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { engineAvailable } from '../../native/index';
import { RunManager } from '../run-manager';
import { readJsonl } from '../run-store';
import type { EvalMetrics, RunEvent, StepMetrics } from '../../core/events';
import type { Pipeline } from '../../core/schema';
import { validatePipeline } from '../../core/validate';

const root = mkdtempSync(join(tmpdir(), 'moe-template-'));
process.env.SPARSE_STUDIO_CACHE ??= join(root, 'cache');
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The template with every stage cut to 2 steps of one 512-token sequence (32 blocks, as the template's masks are sized for) and one eval batch. */
export function shortMoeTemplate(): Pipeline {
  const p = JSON.parse(readFileSync(new URL('../../templates/qwen3-moe-double-sparsity.json', import.meta.url), 'utf8')) as Pipeline;
  for (const n of p.nodes) {
    if (n.kind === 'train') Object.assign(n.params, { steps: 2, batch_size: 1, curriculum: [{ from_step: 0, seq_len: 512 }], warmup_steps: 1, eval_every: 0, eval_batches: 1 });
    if (n.kind === 'gate') n.params.eval_batches = 1;
    if (n.kind === 'export') Object.assign(n.params, { flex_masks: false, mask_seq_len: 512 });
  }
  return p;
}

async function run(pipeline: Pipeline) {
  const m = new RunManager({ runsDir: join(root, 'runs'), threads: 2 });
  const events: RunEvent[] = [];
  m.on('event', (e) => events.push(e));
  const id = await m.start(pipeline);
  const end = await m.waitForEnd(id);
  return { end, events, metrics: readFileSync(join(end.runDir, 'metrics.jsonl'), 'utf8'), runDir: end.runDir };
}

describe.skipIf(!engineAvailable())('the MoE double-sparsity template on builtin:demo-moe', () => {
  let first: Awaited<ReturnType<typeof run>>;
  beforeAll(async () => {
    const p = shortMoeTemplate();
    expect(validatePipeline(p)).toEqual([]);
    first = await run(p);
  }, 120_000);

  it('completes every stage and exports', () => {
    expect(first.end.status, first.end.message).toBe('completed');
    const ends = first.events.filter((e): e is Extract<RunEvent, { type: 'stage_end' }> => e.type === 'stage_end');
    // Two steps cannot bring stage 1's attention KL under 0.1: its gate fails, rollback_sparsity
    // tries denser masks, then returns to the previous (dense) masks, whose attn_kl/out_cos checks
    // are vacuous and so not a pass; the stage ends failed and the run goes on. Stages 2 and 3 pass.
    const last = [0, 1, 2].map((stage) => ends.filter((e) => e.stage === stage).at(-1)?.status);
    expect(last).toEqual(['failed', 'passed', 'passed']);
    const stage1 = first.events.filter((e): e is Extract<RunEvent, { type: 'gate' }> => e.type === 'gate' && e.verdict.stage === 0);
    expect(stage1.length).toBeGreaterThan(1);
    expect(stage1[0].verdict.checks.find((c) => c.metric === 'attn_kl')).toMatchObject({ state: 'failed' });
    expect(stage1.at(-1)!.verdict.checks.find((c) => c.metric === 'attn_kl')?.state).toBe('vacuous');
    const config = JSON.parse(readFileSync(join(first.runDir, 'export/config.json'), 'utf8'));
    expect(config.model_type).toBe('qwen3_moe');
  });

  it('records the load-balancing term, usage band and entropy per step, and usage per MoE layer per eval', () => {
    const lines = readJsonl<{ type: string } & StepMetrics & EvalMetrics>(join(first.runDir, 'metrics.jsonl'));
    const steps = lines.filter((l) => l.type === 'step');
    expect(steps.length).toBeGreaterThanOrEqual(6);
    for (const s of steps) {
      // The seed term, weight 0.01: small, positive, and part of the loss.
      expect(s.load_balance_loss).toBeGreaterThan(0);
      expect(s.load_balance_loss).toBeLessThan(0.01);
      expect(s.loss - s.task_loss - s.load_balance_loss!).toBeGreaterThanOrEqual(-1e-6);
      expect(s.expert_usage_min).toBeLessThanOrEqual(1);
      expect(s.expert_usage_max).toBeGreaterThanOrEqual(1);
      expect(s.routing_entropy).toBeGreaterThan(0);
      expect(s.routing_entropy).toBeLessThanOrEqual(Math.log(8) + 1e-9);
    }
    const evals = lines.filter((l) => l.type === 'eval');
    const usage = evals.at(-1)!.per_layer.expert_usage!;
    // MoE in layers 2, 4, ..., 12 (0-based odd); each row is 8 shares summing to 1.
    expect(usage.map((u) => u !== null)).toEqual(Array.from({ length: 12 }, (_, l) => l % 2 === 1));
    for (const u of usage.filter((x): x is number[] => x !== null)) {
      expect(u).toHaveLength(8);
      expect(u.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    }
    const gate = first.events.filter((e): e is Extract<RunEvent, { type: 'gate' }> => e.type === 'gate').at(-1)!;
    expect(gate.verdict.checks.filter((c) => c.metric === 'expert_usage_max' || c.metric === 'aux_loss').map((c) => c.state)).toEqual(['passed', 'passed']);
  });

  it('writes the same metrics.jsonl on a second run', async () => {
    const second = await run(shortMoeTemplate());
    expect(second.end.status).toBe('completed');
    expect(second.metrics).toBe(first.metrics);
  }, 120_000);
});
