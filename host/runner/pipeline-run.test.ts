// The whole runner on the real engine: a tiny 2-layer model (random init), a small corpus,
// two stages. Each test starts real engine processes through the RunManager or the CLI.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { engineAvailable } from '../../native/index';
import { RunManager } from '../run-manager';
import { readJsonl, readRunRecord } from '../run-store';
import type { RunEvent, StepMetrics } from '../../core/events';
import type { Pipeline } from '../../core/schema';
import { tinyPipeline, writeTinyFixture } from './testing/tiny';

const root = mkdtempSync(join(tmpdir(), 'pipeline-run-'));
const fixture = writeTinyFixture(join(root, 'fixture'));
const runsDir = join(root, 'runs');
const CLI = fileURLToPath(new URL('../../bin/sparse-studio.mjs', import.meta.url));
process.env.SPARSE_STUDIO_CACHE ??= join(root, 'cache');

afterAll(() => rmSync(root, { recursive: true, force: true }));

function manager(): RunManager {
  return new RunManager({ runsDir, threads: 2 });
}

async function runToEnd(pipeline: Pipeline, onEvent?: (e: RunEvent, m: RunManager, id: string) => void) {
  const m = manager();
  const events: RunEvent[] = [];
  let id = '';
  m.on('event', (e) => { events.push(e); onEvent?.(e, m, id); });
  id = await m.start(pipeline);
  const end = await m.waitForEnd(id);
  return { id, end, events, runDir: end.runDir };
}

const metricsText = (runDir: string) => readFileSync(join(runDir, 'metrics.jsonl'), 'utf8');
const ofType = <T extends RunEvent['type']>(events: RunEvent[], type: T) => events.filter((e): e is Extract<RunEvent, { type: T }> => e.type === type);

describe.skipIf(!engineAvailable())('pipeline runs on the real engine', () => {
  let reference: { runDir: string; events: RunEvent[] };

  beforeAll(async () => {
    const r = await runToEnd(tinyPipeline(fixture));
    expect(r.end.status, r.end.message).toBe('completed');
    reference = r;
  });

  it('completes both stages, checkpoints each and exports a Hugging Face directory', () => {
    const { runDir, events } = reference;
    expect(ofType(events, 'stage_end').map((e) => e.status)).toEqual(['passed', 'passed']);
    expect(existsSync(join(runDir, 'checkpoints/stage-0/state.json'))).toBe(true);
    expect(existsSync(join(runDir, 'checkpoints/stage-1/model/model.safetensors'))).toBe(true);
    const config = JSON.parse(readFileSync(join(runDir, 'export/config.json'), 'utf8'));
    expect(config.sparse_attention.layers.map((l: { attention: string }) => l.attention)).toEqual(['block_sparse', 'block_sparse']);
    expect(existsSync(join(runDir, 'export/tokenizer.json'))).toBe(true);
    // FlexAttention arrays: 64 tokens / 16 = 4 blocks, 2 query heads, a leading batch dim of 1.
    const masks = readFileSync(join(runDir, 'export/sparse_masks.safetensors'));
    const header = JSON.parse(masks.subarray(8, 8 + Number(masks.readBigUInt64LE(0))).toString());
    expect(header['layers.1.kv_indices']).toMatchObject({ dtype: 'I32', shape: [1, 2, 4, 4] });
    expect(header['layers.0.q_num_blocks']).toMatchObject({ dtype: 'I32', shape: [1, 2, 4] });
    expect(config.sparse_attention.flex_masks).toMatchObject({ file: 'sparse_masks.safetensors', mask_seq_len: 64 });
    // Per layer the export says its selector and blocks and the last evaluation's validation density.
    const evals = readJsonl<{ type: string; per_layer: { density: (number | null)[] } }>(join(runDir, 'metrics.jsonl')).filter((l) => l.type === 'eval');
    expect(config.sparse_attention.layers.map((l: { validation_density: number | null }) => l.validation_density)).toEqual(evals.at(-1)!.per_layer.density);
    expect(config.sparse_attention.layers.every((l: { selector?: { type: string } }) => typeof l.selector?.type === 'string')).toBe(true);
    expect(ofType(events, 'log').some((e) => /exported to .*layer 1: .*validation density \d/.test(e.message))).toBe(true);
    expect(existsSync(join(runDir, 'export/sparse_bitmaps.safetensors'))).toBe(true);
    expect(existsSync(join(runDir, 'export/sparse_attention.py'))).toBe(true);
    const record = readRunRecord(runDir);
    expect(record.threads).toBe(2);
    expect(record.hashes.model).toMatch(/^[0-9a-f]{64}$/);
    expect(record.hashes.data).toMatch(/^[0-9a-f]{64}$/);
    expect(record.checkpoints.map((c) => c.stage)).toEqual([0, 1]);
    // run.json records the same per-layer summary as the export's config.json.
    expect(record.exported?.map((l) => l.validation_density)).toEqual(evals.at(-1)!.per_layer.density);
    expect(record.exported?.map((l) => l.attention)).toEqual(['block_sparse', 'block_sparse']);
    const steps = readJsonl<{ type: string } & StepMetrics>(join(runDir, 'metrics.jsonl')).filter((l) => l.type === 'step');
    expect(steps.map((s) => s.step)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(steps.map((s) => s.seq_len)).toEqual([48, 48, 64, 64, 48, 48, 64, 64]);
    expect(ofType(events, 'summary')).toHaveLength(1);
    expect(events[events.length - 1].type).toBe('summary');
  });

  it('gives byte-identical metrics.jsonl for two runs of one pipeline', async () => {
    const again = await runToEnd(tinyPipeline(fixture));
    expect(again.end.status).toBe('completed');
    expect(metricsText(again.runDir)).toBe(metricsText(reference.runDir));
  });

  it('resumes a run whose engine was killed mid-stage and ends with the same metrics', async () => {
    let killed = false;
    const crashed = await runToEnd(tinyPipeline(fixture), (e, m, id) => {
      if (!killed && e.type === 'step' && e.metrics.stage === 1 && e.metrics.stage_step === 1) {
        killed = true;
        process.kill(m.enginePid(id)!, 'SIGKILL');
      }
    });
    expect(crashed.end.status).toBe('crashed');
    expect(crashed.end.message).toMatch(/killed by SIGKILL/);
    const m = manager();
    const id = await m.start(tinyPipeline(fixture), { resumeDir: crashed.runDir });
    expect(id).toBe(crashed.id);
    const end = await m.waitForEnd(id);
    expect(end.status, end.message).toBe('completed');
    expect(metricsText(crashed.runDir)).toBe(metricsText(reference.runDir));
    expect(end.final).toEqual(readRunRecord(reference.runDir).final);
  });

  it('pauses between steps, resumes, and the metrics do not change', async () => {
    const m = manager();
    const steps: number[] = [];
    let id = '';
    let pausedAt = -1;
    m.on('event', (e) => {
      if (e.type !== 'step') return;
      steps.push(Date.now());
      if (pausedAt < 0) { pausedAt = steps.length; void m.pause(id); }
    });
    id = await m.start(tinyPipeline(fixture));
    while (pausedAt < 0) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 1500));
    // At most the step already in flight when the pause arrived may finish while paused.
    expect(steps.length - pausedAt).toBeLessThanOrEqual(1);
    expect((await m.list()).find((r) => r.id === id)?.status).toBe('paused');
    await m.resume(id);
    const end = await m.waitForEnd(id);
    expect(end.status).toBe('completed');
    expect(metricsText(end.runDir)).toBe(metricsText(reference.runDir));
    const statuses = ofType((await m.get(id)).events, 'status').map((e) => e.status);
    expect(statuses).toEqual(['running', 'paused', 'running', 'completed']);
  });

  it('cancels a running run', async () => {
    const r = await runToEnd(tinyPipeline(fixture), (e, m, id) => { if (e.type === 'step' && e.metrics.step === 1) void m.cancel(id); });
    expect(r.end.status).toBe('cancelled');
    const steps = ofType(r.events, 'step');
    expect(steps.length).toBeLessThan(8);
    // Cancelled everywhere, not failed: the stage end, the stage summary in run.json, the log.
    expect(ofType(r.events, 'stage_end').map((e) => e.status)).toEqual(['cancelled']);
    const record = readRunRecord(r.runDir);
    expect(record).toMatchObject({ status: 'cancelled', exitReason: 'cancelled' });
    expect(record.stages.map((s) => s.status)).toEqual(['cancelled']);
    const logs = ofType(r.events, 'log').map((e) => e.message);
    expect(logs).toContain('cancel requested; the run stops before its next step');
    // One step number: the message names the last step the charts drew.
    expect(r.end.message).toBe(`cancelled after step ${steps[steps.length - 1].metrics.step}`);
    expect(logs).toContain(`a5-train: ${r.end.message}`);
  });

  it('stops a stage whose loss turns NaN and keeps the last good checkpoint', async () => {
    const r = await runToEnd(tinyPipeline(fixture, { train2: { lr: 1e30, grad_clip: 0 } }));
    expect(r.end.status).toBe('failed');
    expect(r.end.message).toMatch(/^b3-train: (training diverged: loss -?nan|loss is NaN|gradient norm is).* at stage step [1-3] .*; stage stopped, the last good checkpoint checkpoints[/\\]stage-0 is kept$/i);
    expect(existsSync(join(r.runDir, 'checkpoints/stage-0/state.json'))).toBe(true);
    expect(readdirSync(join(r.runDir, 'checkpoints'))).toEqual(['stage-0']);
    expect(readRunRecord(r.runDir).checkpoints.map((c) => c.stage)).toEqual([0]);
  });

  describe('the plateau rule', () => {
    // lr 1e-12 leaves float32 weights unchanged, so the validation loss never improves.
    const flat = { lr: 1e-12, schedule: 'constant' as const, eval_every: 1, plateau_patience: 1, plateau_factor: 0.5 };

    it('decay_lr multiplies the LR after `patience` evaluations without improvement', async () => {
      const r = await runToEnd(tinyPipeline(fixture, { train1: { ...flat, plateau_action: 'decay_lr' } }));
      const lrs = ofType(r.events, 'step').filter((e) => e.metrics.stage === 0).map((e) => e.metrics.lr);
      expect(lrs).toEqual([1e-12, 1e-12, 5e-13, 2.5e-13]);
      expect(ofType(r.events, 'log').filter((l) => l.message.startsWith('a5-train: plateau')).length).toBe(2);
    });

    it('step_back_sparsity makes the stage\'s replaced layers denser and logs it', async () => {
      const r = await runToEnd(tinyPipeline(fixture, { train1: { ...flat, plateau_action: 'step_back_sparsity', curriculum: [{ from_step: 0, seq_len: 128 }] } }));
      const logs = ofType(r.events, 'log').map((l) => l.message).filter((m) => m.startsWith('a5-train: plateau'));
      expect(logs[0]).toBe('a5-train: plateau (no validation-loss improvement for 1 evaluations); stepped sparsity back on layer 2: random_blocks 1 -> 3');
      const density = ofType(r.events, 'step').filter((e) => e.metrics.stage === 0).map((e) => e.metrics.density);
      expect(density[2]).toBeGreaterThan(density[1]);
      const config = JSON.parse(readFileSync(join(r.runDir, 'export/config.json'), 'utf8'));
      expect(config.sparse_attention.layers[1].mask.random_blocks).toBe(5);
    });
  });

  it('seed_from_teacher: the stage start profiles the teacher, keeps the pairs above the threshold and records them', async () => {
    const r = await runToEnd(tinyPipeline(fixture, { mask2: { seed_from_teacher: { threshold: 0.05 } } }));
    expect(r.end.status, r.end.message).toBe('completed');
    const note = ofType(r.events, 'log').map((l) => l.message).find((m) => m.startsWith('b1-replace: seeded from the teacher'));
    expect(note).toMatch(/^b1-replace: seeded from the teacher's attention \(threshold 0\.05, \d+ sequences x \d+ tokens, block 16\): pairs kept per layer \(share of the off-diagonal causal pairs\): layer 1 \d+ \(/);
    const state = JSON.parse(readFileSync(join(r.runDir, 'checkpoints/stage-1/state.json'), 'utf8'));
    const seed = JSON.stringify(state).match(/"seed_from_teacher":(\{[^}]*\})/);
    expect(seed).not.toBeNull();
    const recorded = JSON.parse(seed![1]) as { threshold: number; blocks: number; pairs: number[] };
    expect(recorded.threshold).toBe(0.05);
    expect(recorded.blocks).toBeGreaterThan(1);
    expect(recorded.pairs.length).toBeGreaterThan(0);
    // The seeded pairs make stage 2's masks denser than the same run without them.
    const density = (events: RunEvent[]) => ofType(events, 'step').filter((e) => e.metrics.stage === 1).map((e) => e.metrics.density);
    const seeded = density(r.events), plain = density(reference.events);
    expect(seeded.reduce((a, b) => a + b, 0)).toBeGreaterThan(plain.reduce((a, b) => a + b, 0));
  });

  it("indexer_warmup_steps: step lines record each layer's indexer phase, switching after the warm-up", async () => {
    const r = await runToEnd(tinyPipeline(fixture, { mask2: { selector: 'indexer', topk_blocks: 1, indexer_warmup_steps: 2 } }));
    expect(r.end.status, r.end.message).toBe('completed');
    const steps = readJsonl<{ type: string } & StepMetrics>(join(r.runDir, 'metrics.jsonl')).filter((l) => l.type === 'step');
    // Stage 1 trains no indexer: its lines carry no indexer fields. Stage 2's indexer (layer 1,
    // index 0) warms up for 2 of its own steps, then trains on the selected blocks.
    expect(steps.filter((l) => l.stage === 0).every((l) => !('indexer_phase' in l) && !('indexer_loss' in l))).toBe(true);
    expect(steps.filter((l) => l.stage === 1).map((l) => l.indexer_phase)).toEqual([[1, null], [1, null], [2, null], [2, null]]);
    expect(steps.filter((l) => l.stage === 1).every((l) => l.indexer_loss! > 0)).toBe(true);
  });

  describe('a failing gate applies its on_fail policy', () => {
    const impossible = [{ metric: 'out_cos' as const, op: '>' as const, threshold: 1 }];

    it('stop: the run fails at the first verdict', async () => {
      const r = await runToEnd(tinyPipeline(fixture, { gate1: { checks: impossible, on_fail: 'stop' } }));
      expect(r.end.status).toBe('failed');
      expect(ofType(r.events, 'gate').map((g) => [g.verdict.attempt, g.verdict.action])).toEqual([[1, 'stop']]);
      expect(r.end.message).toMatch(/^a6-gate: gate failed after 1 attempt: out_cos .* \(needs > 1\)$/);
    });

    it('continue: the stage is marked failed and the run goes on', async () => {
      const r = await runToEnd(tinyPipeline(fixture, { gate1: { checks: impossible, on_fail: 'continue' } }));
      expect(r.end.status).toBe('completed');
      expect(r.end.stages.map((s) => s.status)).toEqual(['failed', 'passed']);
      // Each stage measured the student's prefill with and without its masks (a time, never asserted).
      for (const s of r.end.stages) {
        expect(s.prefill!.seq).toBe(64);
        expect(s.prefill!.speedup).toBeGreaterThan(0);
        expect(s.prefill!.speedup).toBeCloseTo(s.prefill!.dense_ms / s.prefill!.sparse_ms, 9);
      }
      expect(ofType(r.events, 'log').filter((l) => /^prefill of 1 x 64 tokens: dense [\d.]+ ms, sparse [\d.]+ ms \(best of 3\), speed-up [\d.]+x$/.test(l.message))).toHaveLength(2);
    });

    it('decay_lr_retry: restores the stage start and retrains with a lower LR, then stops after max_retries', async () => {
      const r = await runToEnd(tinyPipeline(fixture, { gate1: { checks: impossible, on_fail: 'decay_lr_retry', max_retries: 1, lr_factor: 0.5 } }));
      expect(r.end.status).toBe('failed');
      expect(ofType(r.events, 'gate').map((g) => [g.verdict.attempt, g.verdict.action])).toEqual([[1, 'decay_lr_retry'], [2, 'stop']]);
      const steps = ofType(r.events, 'step').map((e) => e.metrics);
      expect(steps.map((s) => s.stage_step)).toEqual([0, 1, 2, 3, 0, 1, 2, 3]);
      for (let i = 0; i < 4; i++) expect(steps[i + 4].lr).toBeCloseTo(steps[i].lr * 0.5, 15);
      expect(ofType(r.events, 'stage_start').map((e) => e.stage)).toEqual([0, 0]);
    });

    it('rollback_sparsity: retries one level denser per retry, then returns to the previous masks, saying so', async () => {
      const r = await runToEnd(tinyPipeline(fixture, { gate1: { checks: impossible, on_fail: 'rollback_sparsity', max_retries: 2 } }));
      const logs = ofType(r.events, 'log').map((l) => l.message);
      const verdicts = ofType(r.events, 'gate').map((g) => g.verdict).filter((v) => v.stage === 0);
      expect(verdicts.map((v) => [v.attempt, v.action])).toEqual([[1, 'rollback_sparsity'], [2, 'rollback_sparsity'], [3, 'rollback_sparsity'], [4, 'continue']]);
      // TINY_MASK has random blocks: each level adds 2 (core/sparsity-step.ts).
      expect(logs.filter((m) => m.startsWith('a2-replace: block-sparse attention on layer 2'))).toEqual([
        'a2-replace: block-sparse attention on layer 2',
        'a2-replace: block-sparse attention on layer 2, 1 level denser (rollback_sparsity: random_blocks 1 -> 3)',
        'a2-replace: block-sparse attention on layer 2, 2 levels denser (rollback_sparsity: random_blocks 1 -> 3, random_blocks 3 -> 5)',
      ]);
      expect(logs.some((m) => m.startsWith('a2-replace: skipped (rollback_sparsity: layer 2 keep their previous attention)'))).toBe(true);
      expect(logs.some((m) => /^a6-gate: gate failed \(.*\); 2 retries with denser masks did not pass either: the stage returns to its previous masks/.test(m))).toBe(true);
      expect(logs).toContain("a6-gate: gate failed (out_cos vacuous (no sparse layers)) with the stage's previous masks too; First keeps its previous masks, is marked failed, and the run goes on");
      // Density per attempt: the previous masks are dense, and the denser masks keep more blocks.
      const steps = ofType(r.events, 'step').map((e) => e.metrics).filter((s) => s.stage === 0);
      const last = (k: number) => steps[4 * k + 3].density;
      expect(last(1)).toBeGreaterThanOrEqual(last(0));
      expect(last(3)).toBe(1);
      // On the dense previous masks, out_cos measures nothing: vacuous, not a pass, so the stage is failed.
      expect(verdicts[3].checks[0].state).toBe('vacuous');
      expect(verdicts[3].passed).toBe(false);
      expect(r.end.stages[0].status).toBe('failed');
      expect(r.end.status).toBe('completed');
    });

    it('a gate whose only check is vacuous does not pass: decay_lr_retry retries, then stops', async () => {
      const p = tinyPipeline(fixture, { gate1: { checks: impossible, on_fail: 'decay_lr_retry', max_retries: 1 } });
      // Stage 1 makes no layer sparse: its out_cos check is vacuous.
      p.nodes = p.nodes.filter((n) => n.id !== 'a2-replace' && n.id !== 'a3-unfreeze');
      p.links = p.links.filter((l) => !['a2-replace', 'a3-unfreeze'].includes(l.from) && !['a2-replace', 'a3-unfreeze'].includes(l.to));
      p.links.push({ from: 'a1-freeze', to: 'a4-distill' });
      (p.nodes.find((n) => n.id === 'a1-freeze')!.params as { kinds: string[] }).kinds = ['embeddings'];
      const r = await runToEnd(p);
      const verdicts = ofType(r.events, 'gate').map((g) => g.verdict);
      expect(verdicts.map((v) => [v.attempt, v.checks[0].state, v.passed, v.action])).toEqual([[1, 'vacuous', false, 'decay_lr_retry'], [2, 'vacuous', false, 'stop']]);
      expect(r.end.status).toBe('failed');
      expect(r.end.message).toBe('a6-gate: gate failed after 2 attempts: out_cos vacuous (no sparse layers)');
    });

    it('refreeze: refreezes the layers the stage unfroze, deepest first, one per retry', async () => {
      const p = tinyPipeline(fixture, { gate2: { checks: impossible, on_fail: 'refreeze', max_retries: 2 } });
      // Stage 2 unfreezes q,k,v of both layers (stage 1 only o of layer 2).
      (p.nodes.find((n) => n.id === 'a3-unfreeze')!.params as { kinds: string[] }).kinds = ['o'];
      (p.nodes.find((n) => n.id === 'b2-unfreeze')!.params as { layers: number[] }).layers = [1, 2];
      const r = await runToEnd(p);
      expect(ofType(r.events, 'gate').map((g) => [g.verdict.stage, g.verdict.attempt, g.verdict.action])).toEqual([[0, 1, 'none'], [1, 1, 'refreeze'], [1, 2, 'refreeze'], [1, 3, 'stop']]);
      const logs = ofType(r.events, 'log').map((l) => l.message).filter((m) => m.startsWith('b2-unfreeze'));
      expect(logs).toEqual([
        'b2-unfreeze: unfroze q,k,v of layers 1-2 (replaced layers only)',
        'b2-unfreeze: unfroze q,k,v of layer 1 (replaced layers only); refreeze: layer 2 stay frozen',
        'b2-unfreeze: unfroze q,k,v of no layers (replaced layers only); refreeze: layers 1-2 stay frozen',
      ]);
      expect(ofType(r.events, 'log').some((l) => l.message.startsWith('b4-gate: gate failed (out_cos') && l.message.includes('with layer 2 frozen again (deepest first, 1 of the 2 layers the stage unfroze)'))).toBe(true);
      expect(r.end.status).toBe('failed');
    });
  });

  describe('CLI exit codes', () => {
    function cli(args: string[], onLine?: (event: RunEvent, child: ReturnType<typeof spawn>) => void): Promise<{ code: number | null; lines: RunEvent[] }> {
      return new Promise((resolve) => {
        const child = spawn(process.execPath, [CLI, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        const lines: RunEvent[] = [];
        let buf = '';
        child.stdout!.setEncoding('utf8');
        child.stdout!.on('data', (chunk: string) => {
          buf += chunk;
          const parts = buf.split('\n');
          buf = parts.pop()!;
          for (const p of parts) { const e = JSON.parse(p) as RunEvent; lines.push(e); onLine?.(e, child); }
        });
        child.on('close', (code) => resolve({ code, lines }));
      });
    }
    const write = (name: string, p: Pipeline) => { const f = join(root, name); writeFileSync(f, JSON.stringify(p)); return f; };

    it('0 for a completed run, with the summary as the last JSON line', async () => {
      const { code, lines } = await cli([write('ok.json', tinyPipeline(fixture)), '--json', '--out', runsDir]);
      expect(code).toBe(0);
      const last = lines[lines.length - 1] as Extract<RunEvent, { type: 'summary' }>;
      expect(last.type).toBe('summary');
      expect(last.status).toBe('completed');
      expect(last.stages).toHaveLength(2);
      expect(last.final.ppl_ratio).toBeGreaterThan(0);
    });

    it('1 for a gate that fails with stop', async () => {
      const file = write('stop.json', tinyPipeline(fixture, { gate1: { checks: [{ metric: 'out_cos', op: '>', threshold: 1 }], on_fail: 'stop' } }));
      const { code, lines } = await cli([file, '--json', '--out', runsDir]);
      expect(code).toBe(1);
      expect(lines[lines.length - 1]).toMatchObject({ type: 'summary', status: 'failed' });
    });

    it('3 when the engine process dies', async () => {
      const file = write('crash.json', tinyPipeline(fixture));
      let killed = false;
      const { code, lines } = await cli([file, '--json', '--out', runsDir], (e, child) => {
        if (killed || e.type !== 'step') return;
        killed = true;
        // The engine is the CLI's child process.
        const children = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
        for (const pid of children) process.kill(pid, 'SIGKILL');
      });
      expect(code).toBe(3);
      expect(lines[lines.length - 1]).toMatchObject({ type: 'summary', status: 'crashed' });
    });
  });
});
