import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Edge, Node, Viewport as FlowViewport } from '@xyflow/react';
import type { Pipeline } from './schema';
import { canonicalJson } from './canonical';
import { autoLayout, graphToPipeline, pipelineToGraph, placeNode, setViewport } from './graph';
import { validatePipeline } from './validate';

const TEMPLATES = new URL('../templates/', import.meta.url);
const load = (file: string): Pipeline => JSON.parse(readFileSync(new URL(file, TEMPLATES), 'utf8'));
const seed = load('seed-progressive.json');
const withLayout = (): Pipeline => ({
  ...structuredClone(seed),
  layout: { nodes: { model: { x: -40, y: 12.5 }, 's1-train': { x: 700, y: -3 } }, viewport: { x: 10, y: -20, zoom: 0.75 } },
});

describe('pipeline <-> graph', () => {
  it.each(readdirSync(TEMPLATES).filter((f) => f.endsWith('.json')))('round-trips templates/%s (no layout)', (file) => {
    const p = load(file);
    const back = graphToPipeline(pipelineToGraph(p));
    expect(back).toEqual(p);
    expect(canonicalJson(back)).toBe(canonicalJson(p));
  });

  it('round-trips a pipeline with a partial layout and a viewport', () => {
    const p = withLayout();
    const graph = pipelineToGraph(p);
    expect(graph.viewport).toEqual({ x: 10, y: -20, zoom: 0.75 });
    expect(graph.nodes.find((n) => n.id === 'model')!.position).toEqual({ x: -40, y: 12.5 });
    expect(graph.nodes.find((n) => n.id === 'model')!.data.autoPlaced).toBeUndefined();
    expect(graph.nodes.find((n) => n.id === 'data')!.data.autoPlaced).toBe(true);
    expect(canonicalJson(graphToPipeline(graph))).toBe(canonicalJson(p));
  });

  it('round-trips an empty layout section and a layout without a viewport', () => {
    const layouts: Pipeline['layout'][] = [{ nodes: {} }, { nodes: { export: { x: 1, y: 2 } } }];
    for (const layout of layouts) {
      const p: Pipeline = { ...structuredClone(seed), layout };
      expect(graphToPipeline(pipelineToGraph(p))).toEqual(p);
    }
  });

  it('gives xyflow nodes and edges with typed handles', () => {
    const graph = pipelineToGraph(seed);
    const train = graph.nodes.find((n) => n.id === 's1-train')!;
    expect(train.type).toBe('train');
    expect(train.data.label).toBe('Stage 1: foundation');
    expect(graph.edges.find((e) => e.source === 'data' && e.target === 's1-train')).toEqual(
      { id: 'data->s1-train', source: 'data', target: 's1-train', sourceHandle: 'data', targetHandle: 'data' });
    expect(graph.edges[0]).toMatchObject({ id: 'model->s1-freeze', sourceHandle: 'model', targetHandle: 'model' });
    expect(new Set(graph.edges.map((e) => e.id)).size).toBe(graph.edges.length);
  });

  it('has the types @xyflow/react takes (checked by tsc)', () => {
    const graph = pipelineToGraph(seed);
    const nodes: Node[] = graph.nodes;
    const edges: Edge[] = graph.edges;
    const viewport: FlowViewport = graph.viewport;
    expect([nodes.length, edges.length, viewport.zoom]).toEqual([seed.nodes.length, seed.links.length, 1]);
  });

  it('does not share params with the pipeline it came from', () => {
    const p = structuredClone(seed);
    const graph = pipelineToGraph(p);
    (graph.nodes[5].data.params as { lr: number }).lr = 1;
    expect(p.nodes[5].params).not.toHaveProperty('lr', 1);
  });

  it('writes a moved node and a changed viewport into the layout', () => {
    let graph = pipelineToGraph(seed);
    graph = placeNode(graph, 's2-train', { x: 5, y: 6 });
    graph = setViewport(graph, { x: 1, y: 1, zoom: 2 });
    const p = graphToPipeline(graph);
    expect(p.layout).toEqual({ nodes: { 's2-train': { x: 5, y: 6 } }, viewport: { x: 1, y: 1, zoom: 2 } });
    expect(validatePipeline(p)).toEqual([]);
    expect(canonicalJson(graphToPipeline(pipelineToGraph(p)))).toBe(canonicalJson(p));
  });

  it('exports one graph twice byte-identically', () => {
    const graph = pipelineToGraph(withLayout());
    expect(canonicalJson(graphToPipeline(graph))).toBe(canonicalJson(graphToPipeline(graph)));
  });
});

describe('autoLayout', () => {
  it('places the chain left to right, one column per step, datasets below', () => {
    const pos = autoLayout(seed);
    expect(pos.get('model')).toEqual({ x: 0, y: 0 });
    expect(pos.get('data')).toEqual({ x: 0, y: 140 });
    expect(pos.get('s1-freeze')!.x).toBe(260);
    expect(pos.get('export')!.x).toBeGreaterThan(pos.get('s3-gate')!.x);
    const xs = ['s1-freeze', 's1-replace', 's1-distill', 's1-train', 's1-gate'].map((id) => pos.get(id)!.x);
    expect(xs).toEqual([...xs].sort((a, b) => a - b));
  });

  it('is deterministic and survives cycles and unknown link ends', () => {
    const p = structuredClone(seed);
    p.links.push({ from: 's2-gate', to: 's1-freeze' }, { from: 'ghost', to: 'model' });
    const a = autoLayout(p);
    expect(a.size).toBe(p.nodes.length);
    expect([...autoLayout(p)]).toEqual([...a]);
    const distinct = new Set([...a.values()].map((xy) => `${xy.x},${xy.y}`));
    expect(distinct.size).toBe(p.nodes.length);
  });
});
