// Export paths stay inside the run folder unless the user typed the run at the command line.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Pipeline } from '../../core/schema';
import type { EngineModel } from '../../native/engine-api';
import { initialModelState } from '../../core/model-state';
import { createStudioService } from '../studio-service';
import { RunManager } from '../run-manager';
import { exportModel, exportPathProblems, MASKS_FILE, resolveExportDir } from './export';
import { tinyPipeline, writeTinyFixture } from './testing/tiny';

const root = mkdtempSync(join(tmpdir(), 'export-path-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const runDir = join(root, 'runs', 'r1');
const outside = join(root, 'elsewhere');
mkdirSync(runDir, { recursive: true });
mkdirSync(outside, { recursive: true });
const fixture = writeTinyFixture(join(root, 'fixture'));

function withExportPath(path: string): Pipeline {
  const p = tinyPipeline(fixture);
  const i = p.nodes.findIndex((n) => n.kind === 'export');
  (p.nodes[i].params as { path: string }).path = path;
  return p;
}
const exportIndex = tinyPipeline(fixture).nodes.findIndex((n) => n.kind === 'export');

describe('export path rule', () => {
  it('a relative path inside the run folder is taken', () => {
    expect(resolveExportDir(runDir, 'export', { trusted: false })).toBe(join(runDir, 'export'));
    expect(resolveExportDir(runDir, 'a/../b', { trusted: false })).toBe(join(runDir, 'b'));
  });

  it('refuses a relative path that climbs out, whoever asks', () => {
    for (const trusted of [false, true]) {
      expect(() => resolveExportDir(runDir, '../../../elsewhere', { trusted, where: 'nodes[3].params.path (out)' }))
        .toThrow(/^nodes\[3\]\.params\.path \(out\): "\.\.\/\.\.\/\.\.\/elsewhere" is refused: it leads outside the run folder/);
    }
  });

  it('refuses a relative path that leaves through a symlink in the run folder', () => {
    symlinkSync(outside, join(runDir, 'link'));
    expect(() => resolveExportDir(runDir, 'link/model', { trusted: true })).toThrow(/after symlinks\); relative paths must stay inside it/);
  });

  it('an absolute path outside only for a trusted origin', () => {
    expect(() => resolveExportDir(runDir, outside, { trusted: false })).toThrow(/only taken from the command line/);
    expect(resolveExportDir(runDir, outside, { trusted: true })).toBe(outside);
    expect(resolveExportDir(runDir, join(runDir, 'inside'), { trusted: false })).toBe(join(runDir, 'inside'));
  });

  it('exportModel refuses before touching the outside folder (sparse_masks.safetensors kept)', async () => {
    writeFileSync(join(outside, MASKS_FILE), 'keep');
    const model = { save: async () => { throw new Error('must not save'); } } as unknown as EngineModel;
    for (const path of ['../../elsewhere', outside]) {
      await expect(exportModel(model, initialModelState(2), { path, flex_masks: true, mask_seq_len: 64 }, { runDir, tokenizer: fixture.config }))
        .rejects.toThrow(/is refused/);
    }
    expect(readFileSync(join(outside, MASKS_FILE), 'utf8')).toBe('keep');
  });

  it('lists the refusals with their node path, up front', () => {
    expect(exportPathProblems(withExportPath('../x'), { trusted: false })).toEqual([
      { path: `nodes[${exportIndex}].params.path`, node: 'c1-export', message: expect.stringMatching(/^Export 'c1-export': "\.\.\/x" is refused: it leads outside/) },
    ]);
    expect(exportPathProblems(withExportPath('export'), { trusted: false })).toEqual([]);
  });
});

describe('export path over the studio service (serve)', () => {
  const service = createStudioService({
    runsDir: join(root, 'svc-runs'), templatesDir: join(__dirname, '../../templates'), warn: () => {},
    createRunManager: async () => { throw new Error('no run may start'); },
  });
  afterAll(() => service.close());

  for (const path of ['../../../elsewhere', '/tmp/elsewhere-export']) {
    it(`startRun refuses ${path} before any work`, async () => {
      await expect(service.startRun(withExportPath(path))).rejects.toMatchObject({
        code: 'invalid_pipeline', message: expect.stringMatching(new RegExp(`^nodes\\[${exportIndex}\\]\\.params\\.path: Export 'c1-export': `)),
      });
      expect(existsSync(join(root, 'svc-runs'))).toBe(false);
    });
  }

  it('preflight reports it on the node', async () => {
    const report = await service.preflight(withExportPath('/tmp/elsewhere-export'));
    expect(report.ok).toBe(false);
    expect(report.problems).toContainEqual(expect.objectContaining({ path: `nodes[${exportIndex}].params.path`, node: 'c1-export' }));
  });

  it('RunManager.start refuses it for a client and creates no run folder', async () => {
    const manager = new RunManager({ runsDir: join(root, 'rm-runs'), spawn: () => { throw new Error('no engine may start'); } });
    await expect(manager.start(withExportPath(outside))).rejects.toThrow(/params\.path: Export 'c1-export'.*only taken from the command line/);
    expect(existsSync(join(root, 'rm-runs'))).toBe(false);
  });
});
