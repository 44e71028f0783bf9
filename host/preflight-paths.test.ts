// Preflight and the data layer open only what they should: regular files, non-blocking, of
// bounded size; a client of `serve` gets nothing described outside its folders.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { Pipeline } from '../core/schema';
import { readDocuments } from './data/documents';
import { readTextFile } from './data/text-file';
import { preflightPipeline } from './preflight';
import { createStudioService } from './studio-service';

const repo = fileURLToPath(new URL('..', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'preflight-paths-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const fifo = join(root, 'fifo');
execFileSync('mkfifo', [fifo]);
const ctx = { baseDir: root, modelsDir: join(repo, 'models'), totalMemoryBytes: 64 * 2 ** 30 };

function withSources(model: string, dataset: string): Pipeline {
  const p = JSON.parse(readFileSync(join(repo, 'templates/quick-demo.json'), 'utf8')) as Pipeline;
  for (const n of p.nodes) {
    if (n.kind === 'model') n.params.source = model;
    if (n.kind === 'dataset') n.params.source = dataset;
  }
  return p;
}
const indexOf = (p: Pipeline, kind: string) => p.nodes.findIndex((n) => n.kind === kind);

describe('preflight opens regular files only', () => {
  it('a FIFO named as the model config does not block: one problem', async () => {
    const p = withSources(`init:${fifo}`, 'builtin:brown');
    const report = await preflightPipeline(p, [], ctx);
    expect(report.problems).toContainEqual(expect.objectContaining({ path: `nodes[${indexOf(p, 'model')}].params.source`, message: `${fifo}: not a regular file` }));
  }, 5000);

  it('/dev/zero named as the model config is refused without reading it', async () => {
    const p = withSources('init:/dev/zero', 'builtin:brown');
    const before = process.memoryUsage().rss;
    const report = await preflightPipeline(p, [], ctx);
    expect(report.problems).toContainEqual(expect.objectContaining({ message: '/dev/zero: not a regular file' }));
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 2 ** 20);
  }, 5000);

  it('a FIFO or a device as dataset is a problem, not "0 B of text"', async () => {
    for (const source of [fifo, '/dev/zero']) {
      const p = withSources('builtin:demo', source);
      const report = await preflightPipeline(p, [], ctx);
      expect(report.problems).toContainEqual(expect.objectContaining({ path: `nodes[${indexOf(p, 'dataset')}].params.source`, message: `${source}: not a regular file or folder` }));
    }
  }, 5000);
});

describe('the data layer reads regular files only', () => {
  it('readTextFile refuses a FIFO and /dev/zero at once', () => {
    expect(() => readTextFile(fifo)).toThrow(expect.objectContaining({ code: 'DATA_NOT_REGULAR', message: `${fifo}: not a regular file` }));
    expect(() => readTextFile('/dev/zero')).toThrow(expect.objectContaining({ code: 'DATA_NOT_REGULAR' }));
  }, 5000);

  it('readTextFile refuses a file over its cap', () => {
    const big = join(root, 'big.txt');
    writeFileSync(big, 'x'.repeat(2048));
    expect(() => readTextFile(big, 1024)).toThrow(expect.objectContaining({ code: 'DATA_TOO_LARGE' }));
  });

  it('a dataset source that is a FIFO is one DataError, not a readdir crash', () => {
    expect(() => readDocuments({ source: fifo, format: 'auto', text_field: 'text', validation_fraction: 0.1, seed: 1, content_hash: '' }))
      .toThrow(expect.objectContaining({ code: 'DATA_NOT_REGULAR' }));
  });
});

describe('a serve client sees nothing outside its folders', () => {
  const project = join(root, 'project');
  mkdirSync(join(project, 'data'), { recursive: true });
  writeFileSync(join(project, 'data/corpus.txt'), 'hello world\n');
  const secret = join(root, 'secret.txt');
  writeFileSync(secret, 'x'.repeat(12345));
  const service = createStudioService({
    runsDir: join(project, 'runs'), templatesDir: join(repo, 'templates'), projectRoot: project, modelsDir: join(repo, 'models'),
    baseDir: project, warn: () => {}, confineClientPaths: true, createRunManager: async () => { throw new Error('no run may start'); },
  });
  afterAll(() => service.close());

  it('an existing and a missing outside file get the same answer, with no size', async () => {
    const answers: string[] = [];
    for (const source of [secret, join(root, 'missing.txt'), '../secret.txt']) {
      const p = withSources('builtin:demo', source);
      const report = await service.preflight(p);
      const problem = report.problems.find((q) => q.path === `nodes[${indexOf(p, 'dataset')}].params.source`);
      expect(problem?.message).toMatch(/ is outside the folders this studio reads for its clients/);
      answers.push(problem!.message.replace(/^\S+ /, ''));
      expect(JSON.stringify(report)).not.toMatch(/12\.1 KiB|12345|not found/);
    }
    expect(new Set(answers).size).toBe(1);
  });

  it('a model config outside is not read (no field of it leaks)', async () => {
    writeFileSync(join(root, 'config.json'), JSON.stringify({ hidden_size: -7 }));
    const p = withSources(`init:${join(root, 'config.json')}`, 'data/corpus.txt');
    const report = await service.preflight(p);
    expect(report.problems).toEqual([expect.objectContaining({ path: `nodes[${indexOf(p, 'model')}].params.source`, message: expect.stringMatching(/is outside the folders/) })]);
  });

  it('a path inside the project is described', async () => {
    const report = await service.preflight(withSources('builtin:demo', 'data/corpus.txt'));
    expect(report.problems).toEqual([]);
    expect(Object.values(report.notes)).toContain('12 B of text');
  });

  it('startRun refuses an outside dataset before any work', async () => {
    await expect(service.startRun(withSources('builtin:demo', secret))).rejects.toMatchObject({ code: 'invalid_pipeline', message: expect.stringMatching(/params\.source: .* is outside the folders/) });
  });
});

describe('the tokenizer is read as a regular file', () => {
  it('a FIFO named as tokenizer.json is refused at once', async () => {
    const { loadTokenizer } = await import('./data/tokenizer');
    expect(() => loadTokenizer(fifo)).toThrow(expect.objectContaining({ code: 'TOKENIZER_UNREADABLE', message: `${fifo}: cannot read tokenizer (not a regular file)` }));
  }, 5000);
});

describe('the runner reads an init: config as a regular file', () => {
  it('a FIFO as init: config fails the load at once with one line', async () => {
    const { loadBaseModel } = await import('./runner/model-source');
    const engine = { createModel: () => { throw new Error('must not create'); } } as never;
    await expect(loadBaseModel(engine, { kind: 'init', configPath: fifo, tokenizer: fifo }, 1, 1)).rejects.toThrow(`model.source: ${fifo}: not a regular file`);
    await expect(loadBaseModel(engine, { kind: 'init', configPath: '/dev/zero', tokenizer: fifo }, 1, 1)).rejects.toThrow('model.source: /dev/zero: not a regular file');
  }, 5000);
});
