import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS, declaredVersion, migratePipeline, parseLayerRangeText } from './migrate';
import { PIPELINE_VERSION } from './schema';
import { validatePipeline } from './validate';

const v0 = JSON.parse(readFileSync(new URL('./fixtures/v0-seed-draft.json', import.meta.url), 'utf8'));

describe('migratePipeline', () => {
  it('turns the v0 fixture into a valid v1 pipeline', () => {
    const { value, from, applied } = migratePipeline(v0);
    expect(from).toBe(0);
    expect(applied).toHaveLength(1);
    expect(validatePipeline(value)).toEqual([]);
    const p = value as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(p.version).toBe(1);
    expect(p).not.toHaveProperty('schema_version');
    expect(p.info).toEqual({ name: 'Seed plan, stage 1 (draft format)', author: '', description: v0.description });
    expect(p.backend).toBe('auto');
    expect(p.links[0]).toEqual({ from: 'model', to: 'freeze' });
    expect(p.nodes.find((n: { id: string }) => n.id === 'replace').params.layers).toEqual([4, 6]);
    expect(p.nodes.find((n: { id: string }) => n.id === 'unfreeze').params.layers).toEqual([5, 5]);
    expect(p.nodes.find((n: { id: string }) => n.id === 'freeze').params.layers).toBe('all');
    const train = p.nodes.find((n: { id: string }) => n.id === 'train').params;
    expect(train.lr).toBe(1e-4);
    expect(train).not.toHaveProperty('learning_rate');
    expect(p.layout).toEqual({ nodes: { model: { x: 0, y: 0 }, train: { x: 960, y: 0 } } });
  });

  it('does not modify its input', () => {
    const copy = structuredClone(v0);
    migratePipeline(copy);
    expect(copy).toEqual(v0);
  });

  it('passes what it does not recognise through for the validator to report', () => {
    const doc = structuredClone(v0);
    doc.nodes[3].params.layers = 'four to six';
    doc.edges.push(['model']);
    doc.colour = 'red';
    const problems = validatePipeline(migratePipeline(doc).value);
    const paths = problems.map((p) => p.path);
    expect(paths).toContain('nodes[3].params.layers');
    expect(paths).toContain(`links[${doc.edges.length - 1}]`);
    expect(paths).toContain('colour');
  });

  it('leaves current, newer and unversioned documents alone', () => {
    for (const doc of [{ version: PIPELINE_VERSION }, { version: 9 }, { nodes: [] }, 'text', null]) {
      expect(migratePipeline(doc).value).toBe(doc);
      expect(migratePipeline(doc).applied).toEqual([]);
    }
  });

  it('has a step from every older version to the current one', () => {
    for (let v = 0; v < PIPELINE_VERSION; v++) expect(MIGRATIONS.get(v)?.from).toBe(v);
  });

  it('reads the declared version from either field', () => {
    expect(declaredVersion({ version: 1, schema_version: 0 })).toBe(1);
    expect(declaredVersion({ schema_version: 0 })).toBe(0);
    expect(declaredVersion({ version: '1' })).toBeNull();
  });

  it('parses layer range text', () => {
    expect(parseLayerRangeText('4-6')).toEqual([4, 6]);
    expect(parseLayerRangeText(' 7 - 10 ')).toEqual([7, 10]);
    expect(parseLayerRangeText('12')).toEqual([12, 12]);
    expect(parseLayerRangeText('4..6')).toBe('4..6');
    expect(parseLayerRangeText([1, 2])).toEqual([1, 2]);
  });
});
