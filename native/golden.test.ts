// The CPU engine against Hugging Face transformers: tiny Llama and Qwen3 checkpoints with their
// logits-derived loss, written on a GPU machine by scripts/gpu/make_golden.py (device-check.sh)
// and committed under native/test/golden/<arch>/. Tolerance: 1e-4 relative on the mean
// next-token loss (float32 both sides, different summation orders).
// Until a device run has produced them the fixtures are absent and this suite is skipped.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { engine, engineAvailable } from './index';

const GOLDEN = new URL('./test/golden', import.meta.url).pathname;
const ARCHS = ['llama', 'qwen3'].filter((a) => existsSync(join(GOLDEN, a, 'golden.json')));

describe.skipIf(!engineAvailable())('engine vs transformers (golden fixtures)', () => {
  // No fixtures yet: transformers' losses are written only by a GPU machine's device check, and
  // none has run; the skip is listed (never counted as passed) until native/test/golden exists.
  if (ARCHS.length === 0) it.skip('needs fixtures: run scripts/gpu/device-check.sh on a GPU machine, commit gpu-out/golden as native/test/golden', () => {});
  for (const arch of ARCHS) {
    it(`${arch}: the mean next-token loss matches within 1e-4 relative`, async () => {
      const dir = join(GOLDEN, arch);
      const golden = JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8')) as { input_ids: number[]; loss: number };
      const model = await engine.loadModel(dir);
      const ids = Int32Array.from(golden.input_ids);
      const loss = await model.loss({ tokens: ids, batch: 1, seq: ids.length - 1 });
      model.dispose();
      expect(Math.abs(loss - golden.loss) / golden.loss).toBeLessThan(1e-4);
    });
  }
});
