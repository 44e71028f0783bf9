// Parity of the PyTorch export with the engine: a two-stage pipeline on the demo model, exported
// and run on 2 ranks started by hand (env:// variables, DDP over gloo, masked softmax
// attention), and run on the engine (the executor in this process). Step losses, every
// distillation term and the attention entropy (stage 2) agree within 1e-4 relative on the first
// steps of each stage, gate verdicts
// are the same, masks are identical, final weights are close. Skipped (with the reason) where
// /usr/bin/python3 has no torch.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { EvalMetrics, GateVerdict, StepMetrics } from '../../core/events';
import { exportTorch } from './export';
import { parityPipeline } from './testing/parity-pipeline';
import { loadDataset } from '../data/index';
import { executePipeline } from '../runner/executor';
import type { EngineEvent } from '../runner/messages';
import { engineAvailable } from '../../native/index';
import { buildMask } from '../../native/mask';
import { SafetensorsFile } from '../../native/checkpoint/safetensors';

const PYTHON = '/usr/bin/python3';
const probe = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
const torchReason = probe.status === 0 ? null : `${PYTHON} -c "import torch" failed (${(probe.stderr || probe.error?.message || 'no python').trim().split('\n').pop()}); install python3-torch`;
const engineReason = engineAvailable() ? null : 'the engine addon is not built';
const skipReason = torchReason ?? engineReason;
if (skipReason) console.log(`export-torch parity test skipped: ${skipReason}`);

const REL = 1e-4;
const FIRST_STEPS = 2;
const TERMS = ['loss', 'task_loss', 'attn_kl_loss', 'logit_kl_loss', 'hidden_mse_loss', 'grad_norm', 'density'] as const;

function rel(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
}

function readJsonl<T>(file: string): T[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as T);
}

function runRanks(dir: string, runDir: string, world: number): Promise<void> {
  const port = String(29500 + Math.floor(Math.random() * 2000));
  const procs = Array.from({ length: world }, (_, rank) => new Promise<void>((resolve, reject) => {
    const env = { ...process.env, RANK: String(rank), LOCAL_RANK: String(rank), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, OMP_NUM_THREADS: '1' };
    const child = spawn(PYTHON, [join(dir, 'train.py'), '--out', runDir, '--device', 'cpu', '--threads', '1'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => { err += String(d); });
    child.stdout.on('data', () => {});
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`rank ${rank} exited ${code}: ${err.slice(-2000)}`))));
  }));
  return Promise.all(procs).then(() => undefined);
}

describe.skipIf(skipReason !== null)('export-torch parity with the engine', () => {
  const root = mkdtempSync(join(tmpdir(), 'torch-parity-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('matches step losses, distillation terms, gates, masks and final weights', async () => {
    const pipeline = parityPipeline(3);
    const project = join(root, 'project');
    await exportTorch(pipeline, project);
    const torchRun = join(root, 'torch-run');
    const engineRun = join(root, 'engine-run');
    const engineEvents: EngineEvent[] = [];
    const [, outcome] = await Promise.all([
      runRanks(project, torchRun, 2),
      (async () => {
        const { engine } = await import('../../native/index');
        return executePipeline(pipeline, { runDir: engineRun, threads: 1, backend: 'cpu' }, {
          engine, loadDataset, emit: (e) => engineEvents.push(e),
          control: { cancelled: false, waitWhilePaused: async () => {} },
        });
      })(),
    ]);
    expect(outcome.status).toBe('completed');

    const torchMetrics = readJsonl<({ type: 'step' } & StepMetrics) | ({ type: 'eval' } & EvalMetrics)>(join(torchRun, 'metrics.jsonl'));
    const torchSteps = torchMetrics.filter((m): m is { type: 'step' } & StepMetrics => m.type === 'step');
    const engineSteps = engineEvents.flatMap((e) => (e.type === 'step' ? [e.metrics] : []));
    expect(torchSteps.length).toBe(engineSteps.length);

    // The parity table.
    const rows: string[] = [`${'stage'.padEnd(6)}${'step'.padEnd(5)}${[...TERMS, 'attn_entropy'].map((t) => t.padEnd(34)).join('')}`];
    let worstFirst = 0;
    for (const [i, e] of engineSteps.entries()) {
      const t = torchSteps[i];
      expect([t.stage, t.step, t.stage_step, t.seq_len, t.tokens]).toEqual([e.stage, e.step, e.stage_step, e.seq_len, e.tokens]);
      expect(rel(t.lr, e.lr)).toBeLessThan(1e-12);
      const cells = TERMS.map((k) => {
        const r = rel(t[k], e[k]);
        if (e.stage_step < FIRST_STEPS) worstFirst = Math.max(worstFirst, r);
        return `${e[k].toPrecision(7)}/${t[k].toPrecision(7)} ${r.toExponential(1)}`.padEnd(34);
      });
      if (e.attn_entropy !== undefined && t.attn_entropy !== undefined) cells.push(`${e.attn_entropy.toPrecision(7)}/${t.attn_entropy.toPrecision(7)} ${rel(t.attn_entropy, e.attn_entropy).toExponential(1)}`);
      rows.push(`${String(e.stage).padEnd(6)}${String(e.step).padEnd(5)}${cells.join('')}`);
    }
    console.log(`export-torch parity (engine/torch, relative difference), 2 ranks over gloo:\n${rows.join('\n')}\nworst relative difference over the first ${FIRST_STEPS} steps of each stage: ${worstFirst.toExponential(2)}`);
    for (const e of engineSteps.filter((s) => s.stage_step < FIRST_STEPS)) {
      const t = torchSteps.find((s) => s.step === e.step)!;
      for (const k of TERMS) expect(rel(t[k], e[k]), `step ${e.step} ${k}: engine ${e[k]}, torch ${t[k]}`).toBeLessThan(REL);
      // Stage 2 weighs the attention entropy: both report it, and agree.
      expect(t.attn_entropy === undefined, `step ${e.step} attn_entropy in torch`).toBe(e.stage !== 1);
      if (e.stage === 1) expect(rel(t.attn_entropy!, e.attn_entropy!), `step ${e.step} attn_entropy: engine ${e.attn_entropy}, torch ${t.attn_entropy}`).toBeLessThan(REL);
    }

    // Gates: the same verdicts, checks and actions.
    const torchGates = readJsonl<{ type: string; verdict?: GateVerdict }>(join(torchRun, 'events.jsonl')).flatMap((e) => (e.type === 'gate' ? [e.verdict!] : []));
    const engineGates = engineEvents.flatMap((e) => (e.type === 'gate' ? [e.verdict] : []));
    const shape = (v: GateVerdict) => ({ stage: v.stage, node: v.node, passed: v.passed, action: v.action, attempt: v.attempt, checks: v.checks.map((c) => c.passed) });
    expect(torchGates.map(shape)).toEqual(engineGates.map(shape));
    console.log(`gates: ${engineGates.map((v) => `${v.node} ${v.passed ? 'passed' : `failed -> ${v.action}`}`).join('; ')} (same in both)`);

    // Masks: what the Python side built equals the engine's builder, block for block.
    let layers = 0;
    for (const stage of [0, 1]) {
      const dump = JSON.parse(readFileSync(join(torchRun, 'masks', `stage-${stage}.json`), 'utf8')) as Record<string, { seq: number; spec: never; kv: number[][][] }>;
      for (const [layer, m] of Object.entries(dump)) {
        const built = buildMask(m.spec, { seq: m.seq, heads: 4, kvHeads: 2, layer: Number(layer) });
        const kv = Array.from({ length: built.nMaskHeads }, (_, h) => Array.from({ length: built.nBlocks }, (_, i) => {
          const r = h * built.nBlocks + i;
          return Array.from(built.lists.kvIdx.slice(built.lists.kvPtr[r], built.lists.kvPtr[r + 1]));
        }));
        expect(m.kv, `stage ${stage} layer ${layer}`).toEqual(kv);
        layers++;
      }
    }
    expect(layers).toBe(3 + 5);

    // Final weights: the last stage's checkpoints.
    const a = SafetensorsFile.open(join(engineRun, 'checkpoints', 'stage-1', 'model', 'model.safetensors'));
    const b = SafetensorsFile.open(join(torchRun, 'checkpoints', 'stage-1', 'model', 'model.safetensors'));
    let worstWeight = 0;
    try {
      for (const name of a.tensors.keys()) {
        const x = a.read(name).data;
        const y = b.read(name).data;
        expect(y.length).toBe(x.length);
        let scale = 0;
        let diff = 0;
        for (let i = 0; i < x.length; i++) { scale = Math.max(scale, Math.abs(x[i])); diff = Math.max(diff, Math.abs(x[i] - y[i])); }
        worstWeight = Math.max(worstWeight, diff / Math.max(scale, 1e-12));
      }
    } finally {
      a.close();
      b.close();
    }
    console.log(`final weights: largest difference ${worstWeight.toExponential(2)} of the tensor's largest value`);
    expect(worstWeight).toBeLessThan(1e-3);
  }, 300_000);
});
