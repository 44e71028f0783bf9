import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportPipelineText, importPipelineText, semanticPart, suggestedFileName } from './pipeline-file';
import { createGraphStore } from './stores/graph-store';
import type { Pipeline } from '../../core/schema';

const templatePath = join(__dirname, '../../templates/pretrain-demo.json');

describe('pipeline files', () => {
  it('keeps the template\'s "$schema" through the editor, so the exported file still names the JSON Schema', () => {
    const { pipeline } = importPipelineText(readFileSync(templatePath, 'utf8'), 'pretrain-demo.json');
    const graph = createGraphStore();
    graph.getState().load(pipeline, { resetHistory: true });
    graph.getState().setTop('seed', 7);
    const exported = exportPipelineText(graph.getState().pipeline);
    expect(exported.startsWith('{\n  "$schema": "../schema/pipeline.schema.json",\n')).toBe(true);
    expect(importPipelineText(exported, 'x.pipeline.json').problems).toEqual([]);
  });

  it('round-trips a template through the editor: import, edit nothing, export the same semantics', () => {
    const text = readFileSync(templatePath, 'utf8');
    const { pipeline, problems } = importPipelineText(text, 'pretrain-demo.json');
    expect(problems).toEqual([]);
    const graph = createGraphStore();
    graph.getState().load(pipeline, { resetHistory: true });
    const exported = exportPipelineText(graph.getState().pipeline);
    const again = importPipelineText(exported, 'x.json').pipeline;
    expect(semanticPart(again)).toEqual(semanticPart(JSON.parse(text) as Pipeline));
    // the editor added positions, and a second export is byte-identical
    expect(Object.keys(again.layout!.nodes).sort()).toEqual(pipeline.nodes.map((n) => n.id).sort());
    expect(exportPipelineText(again)).toBe(exported);
  });

  it('loads a pipeline with problems and reports them with paths', () => {
    const p = JSON.parse(readFileSync(templatePath, 'utf8')) as Pipeline;
    const train = p.nodes.find((n) => n.kind === 'train')!;
    (train.params as { lr: number }).lr = -1;
    const { problems } = importPipelineText(JSON.stringify(p), 'bad.json');
    const index = p.nodes.indexOf(train);
    expect(problems.some((x) => x.path === `nodes[${index}].params.lr` && x.node === train.id)).toBe(true);
  });

  it('rejects what is not a pipeline with one line naming the file and field', () => {
    expect(() => importPipelineText('{nope', 'a.json')).toThrow(/^a\.json: not valid JSON/);
    expect(() => importPipelineText('[]', 'b.json')).toThrow('b.json: a pipeline must be a JSON object');
    expect(() => importPipelineText('{"nodes":[]}', 'c.json')).toThrow('c.json: version: missing or not a number');
    expect(() => importPipelineText('{"version":9,"nodes":[],"links":[]}', 'd.json')).toThrow('d.json: version: 9 is newer');
    expect(() => importPipelineText('{"version":1,"nodes":{},"links":[]}', 'e.json')).toThrow('e.json: nodes: expected an array');
    expect(() => importPipelineText('{"version":1,"nodes":[{"id":3}],"links":[]}', 'f.json')).toThrow('f.json: nodes[0]: expected an object');
  });

  it('migrates an older file on import, as the CLI does', () => {
    const text = readFileSync(join(__dirname, '../../core/fixtures/v0-seed-draft.json'), 'utf8');
    const { pipeline, migrations } = importPipelineText(text, 'v0-seed-draft.json');
    expect(pipeline.version).toBe(1);
    expect(migrations.length).toBeGreaterThan(0);
  });

  it('suggests a file name from the pipeline name', () => {
    expect(suggestedFileName({ info: { name: 'Quick demo: 3 stages!' } } as Pipeline)).toBe('quick-demo-3-stages.pipeline.json');
  });
});
