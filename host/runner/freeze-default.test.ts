// A default Freeze node freezes every base parameter, a mixture-of-experts model's routers and
// experts included; on a dense model the MoE kinds freeze nothing and are not refused.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { engine, engineAvailable } from '../../native/index';
import { NODE_SPECS } from '../../core/nodes';
import type { ParamKind } from '../../core/schema';

const models = fileURLToPath(new URL('../../models/', import.meta.url));
const kinds = (NODE_SPECS.freeze.defaults as { kinds: ParamKind[] }).kinds;

describe.skipIf(!engineAvailable())('default Freeze', () => {
  it('lists the MoE kinds', () => expect(kinds).toEqual(expect.arrayContaining(['router', 'experts', 'q', 'mlp', 'embeddings'])));

  it('leaves no trainable tensor on the MoE demo, so a step changes nothing', async () => {
    const m = await engine.loadModel(models + 'demo-moe');
    try {
      m.setTrainable({ layers: 'all', kinds }, false);
      const tokens = Int32Array.from({ length: 2 * 33 }, (_, i) => (i * 37) % 4096);
      const options = { lr: 1e-2, weight_decay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, grad_clip: 0, distill: null };
      const dir = mkdtempSync(join(tmpdir(), 'freeze-'));
      try {
        await m.save(join(dir, 'before'));
        // With nothing trainable the engine may refuse the step; either way no weight may move.
        await m.trainStep({ tokens, batch: 2, seq: 32 }, options).catch(() => undefined);
        await m.save(join(dir, 'after'));
        expect(readFileSync(join(dir, 'after/model.safetensors')).equals(readFileSync(join(dir, 'before/model.safetensors')))).toBe(true);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      m.dispose();
    }
  });

  it('is accepted by a dense model (the MoE kinds freeze nothing there)', async () => {
    const m = await engine.loadModel(models + 'demo');
    try {
      expect(() => m.setTrainable({ layers: 'all', kinds }, false)).not.toThrow();
    } finally {
      m.dispose();
    }
  });
});
