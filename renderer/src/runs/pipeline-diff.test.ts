import { describe, expect, it } from 'vitest';
import { diffPipelines } from './pipeline-diff';
import type { Pipeline } from '../../../core/schema';
import { defaultParams } from '../../../core/nodes';

function base(): Pipeline {
  return {
    version: 1, info: { name: 'a', author: '', description: '' }, seed: 1, backend: 'auto',
    nodes: [
      { id: 'm', kind: 'model', params: defaultParams('model') },
      { id: 't', kind: 'train', params: defaultParams('train') },
    ],
    links: [{ from: 'm', to: 't' }],
    layout: { nodes: { m: { x: 0, y: 0 }, t: { x: 1, y: 1 } } },
  };
}

describe('diffPipelines', () => {
  it('finds no difference for the same pipeline, node order or layout aside', () => {
    const a = base();
    const b = base();
    b.nodes.reverse();
    b.layout = { nodes: { m: { x: 99, y: 9 } } };
    expect(diffPipelines(a, b)).toEqual([]);
  });

  it('reports param changes by node id and path, and added/removed nodes and links', () => {
    const a = base();
    const b = base();
    (b.nodes[1].params as { lr: number }).lr = 7e-5;
    (b.nodes[1].params as { curriculum: unknown }).curriculum = [{ from_step: 0, seq_len: 256 }];
    b.seed = 2;
    b.nodes.push({ id: 'x', kind: 'export', params: defaultParams('export') });
    b.links.push({ from: 't', to: 'x' });
    expect(diffPipelines(a, b)).toEqual([
      { path: 'seed', kind: 'changed', before: 1, after: 2 },
      { path: 'nodes.t.params.curriculum', kind: 'changed', before: defaultParams('train').curriculum, after: [{ from_step: 0, seq_len: 256 }] },
      { path: 'nodes.t.params.lr', kind: 'changed', before: 1e-4, after: 7e-5 },
      { path: 'nodes.x', kind: 'added', after: 'export' },
      { path: 'links.t -> x', kind: 'added' },
    ]);
    expect(diffPipelines(b, a).map((d) => d.kind)).toEqual(['changed', 'changed', 'changed', 'removed', 'removed']);
  });
});
