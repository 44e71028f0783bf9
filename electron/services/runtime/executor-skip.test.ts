// The executor's handling of an fp16 step the engine skipped (gradient overflow at the current
// loss scale): the run goes on, says so in a warning, and emits no step metrics for it. The real
// engine runs every other step; the wrapper below stands in for the GPU's overflow on one step by
// answering it as the engine does on an overflow (weights untouched, skipped: true).
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { engine, engineAvailable } from '../../../native/index';
import type { EngineApi, EngineModel } from '../../../native/engine-api';
import type { EngineEvent } from './messages';
import { executePipeline } from './executor';
import { loadDataset } from '../data/index';
import { tinyPipeline, writeTinyFixture } from './testing/tiny';

const root = mkdtempSync(join(tmpdir(), 'executor-skip-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The real engine, whose models report the `overflowAt`-th training call as an fp16 overflow. */
function overflowingEngine(overflowAt: number): EngineApi {
  let calls = 0;
  const wrap = (model: EngineModel): EngineModel => new Proxy(model, {
    get(target, key) {
      if (key === 'trainStep') {
        return async (...args: Parameters<EngineModel['trainStep']>) => {
          if (++calls !== overflowAt) return target.trainStep(...args);
          return { loss: 3, task_loss: 3, attn_kl_loss: 0, logit_kl_loss: 0, hidden_mse_loss: 0, grad_norm: Infinity, density: 1, skipped: true, loss_scale: 1024 };
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return {
    info: () => engine.info(),
    createModel: (config, options) => wrap(engine.createModel(config, options)),
    loadModel: async (dir, options) => wrap(await engine.loadModel(dir, options)),
  };
}

describe.skipIf(!engineAvailable())('an fp16 step the engine skipped', () => {
  it('is logged, emits no step metrics, and the run completes', async () => {
    const fixture = writeTinyFixture(join(root, 'fixture'));
    const events: EngineEvent[] = [];
    const pipeline = tinyPipeline(fixture);
    // No Export node: it would need the FlexAttention mask exporter, which this test is not about.
    pipeline.nodes = pipeline.nodes.filter((n) => n.kind !== 'export');
    pipeline.links = pipeline.links.filter((l) => l.to !== 'c1-export');
    const outcome = await executePipeline(pipeline, {
      runDir: join(root, 'run'), threads: 2, backend: 'cpu', cacheDir: join(root, 'cache'),
    }, {
      engine: overflowingEngine(2), loadDataset, emit: (e) => events.push(e),
      control: { cancelled: false, waitWhilePaused: async () => {} },
    });
    expect(outcome.status, outcome.message).toBe('completed');
    const warnings = events.filter((e) => e.type === 'log' && e.level === 'warn').map((e) => (e as { message: string }).message);
    expect(warnings).toContain('a5-train step 1: fp16 gradients overflowed at loss scale 1024; update skipped, scale now 65536');
    const steps = events.filter((e) => e.type === 'step');
    expect(steps).toHaveLength(7);  // 4 + 4 steps, one skipped
    expect(steps.every((e) => e.type === 'step' && Number.isFinite(e.metrics.grad_norm))).toBe(true);
  });
});
