// The Train node's optional attn_entropy_weight in the file format: files without it stay valid,
// bad values get one line at the field's path, a file that names the cuda backend cannot turn it
// on, and the JSON Schema does not require it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Pipeline } from './schema';
import { validatePipeline } from './validate';
import { pipelineJsonSchema } from './json-schema';

const load = () => JSON.parse(readFileSync(new URL('../templates/pretrain-demo.json', import.meta.url), 'utf8')) as Pipeline;
// 'pretrain' trains without the term, 'sharpen' with it.
const index = (p: Pipeline, id = 'sharpen') => p.nodes.findIndex((n) => n.id === id);
const withWeight = (weight: unknown, backend?: Pipeline['backend']) => {
  const p = load();
  (p.nodes[index(p)].params as unknown as Record<string, unknown>).attn_entropy_weight = weight;
  if (backend) p.backend = backend;
  return p;
};
const at = (p: Pipeline) => `nodes[${index(p)}].params.attn_entropy_weight`;

describe('Train attn_entropy_weight', () => {
  it('is optional: a file without it validates', () => {
    const p = load();
    expect('attn_entropy_weight' in p.nodes[index(p, 'pretrain')].params).toBe(false);
    expect(validatePipeline(p)).toEqual([]);
  });
  it('accepts 0 and positive weights on the auto and cpu backends, and 0 on cuda', () => {
    for (const [w, backend] of [[0, 'auto'], [0.05, 'auto'], [2, 'cpu'], [0, 'cuda']] as const) expect(validatePipeline(withWeight(w, backend))).toEqual([]);
  });
  it('refuses a negative, too large or non-numeric weight with one line at the field', () => {
    for (const [w, message] of [[-0.1, /must be in \[0, 1000000\]/], [2e6, /must be in \[0, 1000000\]/], ['0.1', /expected a number/]] as const) {
      const p = withWeight(w);
      expect(validatePipeline(p)).toEqual([expect.objectContaining({ path: at(p), message: expect.stringMatching(message), node: 'sharpen' })]);
    }
  });
  it('refuses a positive weight in a file whose backend is cuda, in one line at the field', () => {
    const p = withWeight(0.1, 'cuda');
    expect(validatePipeline(p)).toEqual([{
      path: at(p), node: 'sharpen',
      message: "The attention-entropy term runs on the cpu backend only, but this pipeline's backend is cuda (set backend to auto or cpu, or this weight to 0)",
    }]);
  });
  it('is in the JSON Schema, not required', () => {
    type S = { properties: { kind: { const: string }; params: { properties: Record<string, { type?: string; minimum?: number }>; required: string[] } } };
    const nodes = (pipelineJsonSchema() as { definitions: { node: { oneOf: S[] } } }).definitions.node.oneOf;
    const params = nodes.find((n) => n.properties.kind.const === 'train')!.properties.params;
    expect(params.properties.attn_entropy_weight).toMatchObject({ type: 'number', minimum: 0 });
    expect(params.required).not.toContain('attn_entropy_weight');
  });
});
