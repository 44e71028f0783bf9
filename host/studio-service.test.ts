import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { countParams } from './preflight';
import { createStudioService } from './studio-service';

const repo = join(__dirname, '..');
const V0_FIXTURE = 'v0-seed-draft.json';
const templatesDir = join(repo, 'templates');
const scratch = mkdtempSync(join(tmpdir(), 'studio-service-'));
// a models folder holding the demo model's real config and a weights file
mkdirSync(join(scratch, 'models', 'demo'), { recursive: true });
copyFileSync(join(repo, 'models/demo/config.json'), join(scratch, 'models/demo/config.json'));
writeFileSync(join(scratch, 'models/demo/model.safetensors'), '');
copyFileSync(join(repo, 'models/demo/tokenizer.json'), join(scratch, 'models/demo/tokenizer.json'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const service = createStudioService({ runsDir: join(scratch, 'runs'), templatesDir, projectRoot: repo, modelsDir: join(scratch, 'models'), warn: () => {} });
afterAll(() => service.close());

describe('studio service', () => {
  it('lists the shipped templates by id and name', async () => {
    const list = await service.listTemplates();
    const ids = list.map((t) => t.id);
    expect(ids).toEqual(expect.arrayContaining(['quick-demo', 'seed-progressive', 'minicpm41-infllmv2', 'pretrain-demo-moe', 'qwen3-moe-double-sparsity']));
    for (const t of list) expect(t.name.trim().length).toBeGreaterThan(0);
  });

  it('opens every template as a pipeline that validates', async () => {
    for (const { id } of await service.listTemplates()) {
      const pipeline = await service.getTemplate(id);
      expect(await service.validate(pipeline), id).toEqual([]);
    }
  });

  it('returns validation problems with paths for a broken pipeline', async () => {
    const pipeline = await service.getTemplate('quick-demo');
    const train = pipeline.nodes.findIndex((n) => n.kind === 'train');
    (pipeline.nodes[train].params as { lr: number }).lr = -1;
    const problems = await service.validate(pipeline);
    expect(problems.some((p) => p.path === `nodes[${train}].params.lr`)).toBe(true);
    expect(await service.validate('nope')).not.toEqual([]);
  });

  it('preflights the quick demo against the demo model: notes, memory per Train node', async () => {
    const pipeline = await service.getTemplate('quick-demo');
    const report = await service.preflight(pipeline);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    const config = JSON.parse(readFileSync(join(repo, 'models/demo/config.json'), 'utf8'));
    const model = pipeline.nodes.find((n) => n.kind === 'model')!;
    expect(report.notes[model.id]).toContain(`${config.num_hidden_layers} layers`);
    const trains = pipeline.nodes.filter((n) => n.kind === 'train');
    expect(Object.keys(report.memoryBytes).sort()).toEqual(trains.map((t) => t.id).sort());
    for (const t of trains) expect(report.memoryBytes[t.id]).toBeGreaterThan(countParams(config) * 16);
  });

  it('preflight reports a depth mismatch on the Model node', async () => {
    const pipeline = await service.getTemplate('quick-demo');
    const index = pipeline.nodes.findIndex((n) => n.kind === 'model');
    (pipeline.nodes[index].params as { num_layers: number }).num_layers = 24;
    const report = await service.preflight(pipeline);
    expect(report.ok).toBe(false);
    expect(report.problems.map((p) => p.path)).toContain(`nodes[${index}].params.num_layers`);
  });

  it('refuses to start an invalid pipeline with the first problem', async () => {
    await expect(service.startRun({ version: 1 } as never)).rejects.toThrow(/^pipeline is not valid: /);
  });

  it('answers run queries from the run manager on its runs folder', async () => {
    expect(await service.listRuns()).toEqual([]);
    await expect(service.getRun('no-such-run')).rejects.toThrow(/^run 'no-such-run': not found in /);
    await expect(service.getRun('../electron/escape')).rejects.toThrow("run id '../electron/escape' is not valid");
    await expect(service.cancelRun('no-such-run')).rejects.toThrow("run 'no-such-run' is not running");
  });

  it('migrates a template stored in an older schema version', async () => {
    const dir = join(scratch, 'old-templates');
    mkdirSync(dir);
    copyFileSync(join(repo, 'core/fixtures', V0_FIXTURE), join(dir, 'old.json'));
    const old = createStudioService({ runsDir: join(scratch, 'runs'), templatesDir: dir, warn: () => {} });
    const pipeline = await old.getTemplate('old');
    expect(pipeline.version).toBe(1);
    expect(await old.validate(pipeline)).toEqual([]);
    await old.close();
  });

  it('reports system info from package.json and the machine', async () => {
    const info = await service.systemInfo();
    expect(info.version).toBe(JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).version);
    expect(info.backends.cpu.threads).toBeGreaterThan(0);
    expect(typeof info.backends.cpu.simd).toBe('string');
    expect(typeof info.nvml).toBe('boolean');
  });

  it('offers file dialogs only when given them', async () => {
    expect(service.openPipelineFile).toBeUndefined();
    const saved: string[] = [];
    const withDialogs = createStudioService({
      runsDir: join(scratch, 'runs'), templatesDir,
      dialogs: { openPipelineFile: async () => null, savePipelineFile: async (text, name) => { saved.push(`${name}:${text}`); return `/tmp/${name}`; } },
    });
    expect(await withDialogs.openPipelineFile!()).toBeNull();
    expect(await withDialogs.savePipelineFile!('{}', 'p.json')).toBe('/tmp/p.json');
    expect(saved).toEqual(['p.json:{}']);
    await withDialogs.close();
  });
});
