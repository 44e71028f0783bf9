import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parsePipelineText } from './parse';

const read = (rel: string) => readFileSync(new URL(rel, import.meta.url), 'utf8');

describe('parsePipelineText', () => {
  it('returns the pipeline of a valid file', () => {
    const result = parsePipelineText(read('../templates/quick-demo.json'), 'quick-demo.json');
    expect('pipeline' in result && result.pipeline.nodes.length).toBeGreaterThan(5);
    expect('pipeline' in result && result.migratedFrom).toBeNull();
  });

  it('migrates a v0 file before validating it', () => {
    const result = parsePipelineText(read('./fixtures/v0-seed-draft.json'), 'v0.json');
    expect('pipeline' in result).toBe(true);
    if ('pipeline' in result) {
      expect(result.migratedFrom).toBe(0);
      expect(result.pipeline.version).toBe(1);
      expect(result.migrations[0]).toMatch(/version 0 -> 1/);
    }
  });

  it('reports a JSON syntax error as one problem with line and column', () => {
    const text = read('../templates/quick-demo.json');
    const result = parsePipelineText(text.slice(0, 200), 'cut.json');
    expect(result).toEqual({ problems: [{ path: '$', message: expect.stringMatching(/^not valid JSON at line \d+, column \d+: /) }] });
  });

  it('reports an empty file by name', () => {
    expect(parsePipelineText('  \n', 'empty.json')).toEqual({ problems: [{ path: '$', message: 'empty.json is empty (expected a pipeline JSON object)' }] });
  });

  it('reports validation problems after migration, with v1 paths', () => {
    const doc = JSON.parse(read('./fixtures/v0-seed-draft.json'));
    doc.nodes[5].params.learning_rate = -1;
    const result = parsePipelineText(JSON.stringify(doc), 'v0.json');
    expect(result).toEqual({ problems: [expect.objectContaining({ path: 'nodes[5].params.lr', node: 'train' })] });
  });

  it('reports a too-new version only', () => {
    const result = parsePipelineText('{"version": 3, "whatever": true}', 'new.json');
    expect(result).toEqual({ problems: [{ path: 'version', message: expect.stringContaining('newer than this build reads (it reads version 1') }] });
  });
});
