// The executor against what only a GPU engine says, on the real CPU engine wrapped to say it:
// - an fp16 step the engine skipped (gradient overflow at the current loss scale): the run goes
//   on, says so in a warning, and emits no step metrics for it. The wrapper answers one step as
//   the engine does on an overflow (weights untouched, skipped: true);
// - a usable CUDA device under `auto` with masks its kernels cannot take: the run stays on the
//   CPU and logs why;
// - per-stage precision: each stage asks the engine for its Train node's precision before its
//   first step (the wrapper records the calls); the CPU engine computes in fp32 and the run says
//   so once.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { engine, engineAvailable } from '../../native/index';
import type { EngineApi, EngineModel, Precision } from '../../native/engine-api';
import type { EngineEvent } from './messages';
import { executePipeline } from './executor';
import { loadDataset } from '../data/index';
import { tinyPipeline, writeTinyFixture } from './testing/tiny';

const root = mkdtempSync(join(tmpdir(), 'executor-engine-'));
const fixture = writeTinyFixture(join(root, 'fixture'));
const control = { cancelled: false, waitWhilePaused: async () => {} };

/** The tiny two-stage pipeline without its Export node (which needs the FlexAttention exporter). */
function pipelineWithoutExport(over: Parameters<typeof tinyPipeline>[1] = {}) {
  const pipeline = tinyPipeline(fixture, over);
  pipeline.nodes = pipeline.nodes.filter((n) => n.kind !== 'export');
  pipeline.links = pipeline.links.filter((l) => l.to !== 'c1-export');
  return pipeline;
}
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The real engine, its models' methods replaced by `hooks` where it names them (the rest pass through). */
function engineWithModelHooks(hooks: (target: EngineModel) => Partial<EngineModel>): EngineApi {
  const wrap = (model: EngineModel): EngineModel => {
    const replaced = hooks(model) as Record<PropertyKey, unknown>;
    return new Proxy(model, {
      get(target, key) {
        if (key in replaced) return replaced[key];
        const value = Reflect.get(target, key, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  };
  return {
    info: () => engine.info(),
    createModel: (config, options) => wrap(engine.createModel(config, options)),
    loadModel: async (dir, options) => wrap(await engine.loadModel(dir, options)),
  };
}

/** The real engine, whose models report the `overflowAt`-th training call as an fp16 overflow. */
function overflowingEngine(overflowAt: number): EngineApi {
  let calls = 0;
  return engineWithModelHooks((target) => ({
    trainStep: async (...args: Parameters<EngineModel['trainStep']>) => {
      if (++calls !== overflowAt) return target.trainStep(...args);
      return { loss: 3, task_loss: 3, attn_kl_loss: 0, logit_kl_loss: 0, hidden_mse_loss: 0, grad_norm: Infinity, density: 1, skipped: true, loss_scale: 1024 };
    },
  }));
}

describe.skipIf(!engineAvailable())('an fp16 step the engine skipped', () => {
  it('is logged, emits no step metrics, and the run completes', async () => {
    const events: EngineEvent[] = [];
    const outcome = await executePipeline(pipelineWithoutExport(), {
      runDir: join(root, 'run'), threads: 2, backend: 'cpu', cacheDir: join(root, 'cache'),
    }, {
      engine: overflowingEngine(2), loadDataset, emit: (e) => events.push(e), control,
    });
    expect(outcome.status, outcome.message).toBe('completed');
    const warnings = events.filter((e) => e.type === 'log' && e.level === 'warn').map((e) => (e as { message: string }).message);
    expect(warnings).toContain('a5-train step 1: fp16 gradients overflowed at loss scale 1024; update skipped, scale now 65536');
    const steps = events.filter((e) => e.type === 'step');
    expect(steps).toHaveLength(7);  // 4 + 4 steps, one skipped
    expect(steps.every((e) => e.type === 'step' && Number.isFinite(e.metrics.grad_norm))).toBe(true);
  });
});

describe.skipIf(!engineAvailable())('auto with a usable GPU', () => {
  it('stays on the CPU, saying why, when a mask block does not suit the CUDA kernels', async () => {
    const withGpu: EngineApi = { ...engine, info: () => ({ ...engine.info(), cuda: { compiled: true, available: true, device: 'a GPU' } }) };
    const events: EngineEvent[] = [];
    const pipeline = pipelineWithoutExport();
    const blockSize = pipeline.nodes.find((n) => n.kind === 'replace')!.params as { mask: { block_size: number } };
    const outcome = await executePipeline(pipeline, { runDir: join(root, 'run-auto'), threads: 2, backend: 'auto', cacheDir: join(root, 'cache') }, {
      engine: withGpu, loadDataset, emit: (e) => events.push(e), control,
    });
    expect(outcome.status, outcome.message).toBe('completed');
    const infos = events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message);
    expect(infos).toContain(`backend: auto stays on the cpu: a2-replace.mask.block_size is ${blockSize.mask.block_size}; the CUDA attention kernels take 64 or 128`);
    // The cpu says once, for every stage, that it computes in fp32.
    expect(infos.filter((m) => m.startsWith('precision: ') || / precision /.test(m))).toEqual(['precision: the cpu backend computes every stage in fp32']);
  });
});

/** The real engine, its models recording each setPrecision (with the precision the engine then reports) and each training step. */
function recordingEngine(calls: string[]): EngineApi {
  return engineWithModelHooks((target) => ({
    setPrecision: (precision: Precision) => {
      target.setPrecision(precision);
      calls.push(`precision ${precision} (computes ${target.backend.precision})`);
    },
    trainStep: (...args: Parameters<EngineModel['trainStep']>) => {
      calls.push('step');
      return target.trainStep(...args);
    },
  }));
}

describe.skipIf(!engineAvailable())('per-stage precision', () => {
  it('asks the engine for each stage\'s precision before its steps; the cpu computes in fp32 and says so once', async () => {
    const calls: string[] = [];
    const events: EngineEvent[] = [];
    const pipeline = pipelineWithoutExport({ train1: { precision: 'bf16' }, train2: { precision: 'fp16' } });
    const outcome = await executePipeline(pipeline, { runDir: join(root, 'run-precision'), threads: 2, backend: 'cpu', cacheDir: join(root, 'cache') }, {
      engine: recordingEngine(calls), loadDataset, emit: (e) => events.push(e), control,
    });
    expect(outcome.status, outcome.message).toBe('completed');
    expect(calls).toEqual([
      'precision bf16 (computes fp32)', 'step', 'step', 'step', 'step',
      'precision fp16 (computes fp32)', 'step', 'step', 'step', 'step',
    ]);
    const infos = events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message);
    expect(infos.filter((m) => / ?precision/.test(m))).toEqual(['precision: the cpu backend computes every stage in fp32 (asked: a5-train bf16, b3-train fp16)']);
  });
});
