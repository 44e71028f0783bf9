// The Train node's optional load-balancing fields and the MoE gate metrics in the file format:
// files without them stay valid, bad values get one line at the field's path, and the JSON
// Schema does not require them.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Pipeline } from './schema';
import { validatePipeline } from './validate';
import { pipelineJsonSchema } from './json-schema';

const load = (name: string) => JSON.parse(readFileSync(new URL(`../templates/${name}`, import.meta.url), 'utf8')) as Pipeline;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const trainOf = (p: Pipeline): any => p.nodes.find((n) => n.id === 's1-train')!.params;
const at = (p: Pipeline) => `nodes[${p.nodes.findIndex((n) => n.id === 's1-train')}].params`;

describe('Train load_balance and load_balance_weight', () => {
  it('are optional: a file written before them validates', () => {
    const p = load('seed-progressive.json');
    expect('load_balance' in trainOf(p)).toBe(false);
    expect(validatePipeline(p)).toEqual([]);
  });
  it('accept none, seed and switch, with or without a weight', () => {
    for (const [kind, weight] of [['none', undefined], ['seed', 0.01], ['switch', undefined], ['switch', 0]] as const) {
      const p = load('seed-progressive.json');
      Object.assign(trainOf(p), { load_balance: kind, ...(weight === undefined ? {} : { load_balance_weight: weight }) });
      expect(validatePipeline(p)).toEqual([]);
    }
  });
  it('refuse an unknown kind and a negative weight with one line at the field', () => {
    const p = load('seed-progressive.json');
    Object.assign(trainOf(p), { load_balance: 'aux', load_balance_weight: -1 });
    const problems = validatePipeline(p);
    expect(problems).toEqual([
      expect.objectContaining({ path: `${at(p)}.load_balance`, node: 's1-train', message: expect.stringMatching(/expected one of: none, seed, switch/) }),
      expect.objectContaining({ path: `${at(p)}.load_balance_weight`, node: 's1-train', message: expect.stringMatching(/must be in \[0, 1000000\]/) }),
    ]);
  });
  it('are not required by the JSON Schema', () => {
    type S = { properties: { kind: { const: string }; params: { properties: Record<string, unknown>; required: string[] } } };
    const nodes = (pipelineJsonSchema() as { definitions: { node: { oneOf: S[] } } }).definitions.node.oneOf;
    const params = nodes.find((n) => n.properties.kind.const === 'train')!.properties.params;
    expect(Object.keys(params.properties)).toEqual(expect.arrayContaining(['load_balance', 'load_balance_weight']));
    expect(params.required).not.toContain('load_balance');
    expect(params.required).not.toContain('load_balance_weight');
    expect(params.required).toContain('lr');
  });
});

describe('MoE gate metrics', () => {
  it('are accepted in gate checks', () => {
    const p = load('qwen3-moe-double-sparsity.json');
    const metrics = p.nodes.flatMap((n) => (n.kind === 'gate' ? n.params.checks.map((c) => c.metric) : []));
    expect(metrics).toEqual(expect.arrayContaining(['expert_usage_max', 'aux_loss']));
    expect(validatePipeline(p)).toEqual([]);
  });
});
