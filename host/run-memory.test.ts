// A run whose estimated memory (masks included) exceeds the machine's is refused before any
// work: by the service's startRun (an ApiCallError) and by `sparse-studio run` (exit 2).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { Pipeline } from '../core/schema';
import { LIMITS } from '../core/nodes';
import { maskBytes, runMemoryRefusal } from './preflight';
import { createStudioService } from './studio-service';

const repo = fileURLToPath(new URL('..', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'run-memory-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const template = (id: string): Pipeline => JSON.parse(readFileSync(join(repo, 'templates', `${id}.json`), 'utf8'));

/** quick-demo with every Train at the schema's largest batch and sequence. */
function oversized(): Pipeline {
  const p = template('quick-demo');
  for (const n of p.nodes) {
    if (n.kind === 'train') { n.params.batch_size = LIMITS.batch; n.params.curriculum = [{ from_step: 0, seq_len: LIMITS.seqLen }]; }
  }
  return p;
}
const ctx = { baseDir: repo, modelsDir: join(repo, 'models'), totalMemoryBytes: 64 * 2 ** 30 };

describe('run-start memory check', () => {
  it('masks count: a 2^20-token mask of 16-token blocks is tens of GiB per layer', () => {
    expect(maskBytes(2 ** 20, 16, 2)).toBeGreaterThan(16 * 2 ** 30);
  });

  it('refuses the largest batch and sequence on a 64 GiB machine with the numbers in one line', async () => {
    const line = await runMemoryRefusal(oversized(), ctx);
    expect(line).toMatch(/^not enough memory: nodes\[\d+\] '[^']+' needs an estimated [\d.]+ (GiB|TiB) \(batch 4096, seq_len 1048576: weights, grads, Adam [\d.]+ \w+, activations [\d.]+ \w+, masks [\d.]+ \w+\); this machine has 64\.0 GiB$/);
    expect(line).not.toContain('\n');
  });

  it('lets the shipped quick demo through', async () => {
    expect(await runMemoryRefusal(template('quick-demo'), ctx)).toBeNull();
  });

  it('startRun over the service refuses it as an ApiCallError before any run starts', async () => {
    let started = false;
    const service = createStudioService({
      runsDir: join(scratch, 'runs'), templatesDir: join(repo, 'templates'), projectRoot: repo, warn: () => {}, totalMemoryBytes: 64 * 2 ** 30,
      createRunManager: async () => { started = true; throw new Error('no run may start'); },
    });
    await expect(service.startRun(oversized())).rejects.toMatchObject({ name: 'ApiCallError', code: 'insufficient_memory', message: expect.stringMatching(/^not enough memory: /) });
    expect(started).toBe(false);
    await service.close();
  });

  it('sparse-studio run exits 2 with one line and creates no run folder', () => {
    const file = join(scratch, 'huge.json');
    writeFileSync(file, JSON.stringify(oversized()));
    const out = join(scratch, 'cli-runs');
    const r = spawnSync(process.execPath, [join(repo, 'bin/sparse-studio.mjs'), 'run', file, '--out', out], { cwd: repo, encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not enough memory: `));
    expect(existsSync(out)).toBe(false);
  });
});
