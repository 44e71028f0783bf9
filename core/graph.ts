// Pipeline <-> editor graph, in the shape @xyflow/react takes directly.
//
// Design choices:
// - Lossless both ways: graphToPipeline(pipelineToGraph(p)) has the same canonical text as p,
//   with or without a `layout` section. Nodes the file gave no position get a deterministic
//   auto-layout position and `data.autoPlaced: true`; only nodes without that flag are written
//   back to layout.nodes. Moving a node (placeNode) clears the flag.
// - Edge handles name the port type ('model' / 'data'), derived from the source node's kind,
//   so the editor draws data links into the data port.
//
// Owned by core/: no Node, DOM or Electron imports here.
import type { NodeKind, ParamsByKind, Pipeline, PipelineLayout, PipelineNode } from './schema';
import type { PortType } from './nodes';
import { compareIds } from './order';

export interface XY { x: number; y: number }
export interface Viewport { x: number; y: number; zoom: number }

export interface GraphNodeData<K extends NodeKind = NodeKind> {
  label?: string;
  params: ParamsByKind[K];
  /** Position came from auto-layout, not from the file; not written back to `layout`. */
  autoPlaced?: true;
  [key: string]: unknown; // xyflow requires node data to be an open record
}

export type GraphNode = { [K in NodeKind]: { id: string; type: K; position: XY; data: GraphNodeData<K> } }[NodeKind];

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  sourceHandle: PortType;
  targetHandle: PortType;
}

/** Everything of the pipeline that is not a node or a link. */
export interface GraphMeta {
  version: number;
  info: Pipeline['info'];
  seed: number;
  backend: Pipeline['backend'];
  /** The file had a `layout` section (kept even when it lists no node). */
  hasLayout: boolean;
  /** The file had `layout.viewport` (set by setViewport once the user pans or zooms). */
  hasViewport: boolean;
}

export interface PipelineGraph {
  nodes: GraphNode[];
  edges: GraphEdge[];
  viewport: Viewport;
  meta: GraphMeta;
}

export const DEFAULT_VIEWPORT: Viewport = { x: 0, y: 0, zoom: 1 };
export const LAYOUT_COLUMN_WIDTH = 260;
export const LAYOUT_ROW_HEIGHT = 140;

/**
 * Grid positions: column = longest path from a source node, row = order within the column
 * (model-chain nodes before datasets, then by id). Works on any graph, cycles included.
 */
export function autoLayout(p: Pick<Pipeline, 'nodes' | 'links'>): Map<string, XY> {
  const ids = p.nodes.map((n) => n.id);
  const known = new Set(ids);
  const links = p.links.filter((l) => known.has(l.from) && known.has(l.to) && l.from !== l.to);
  const indegree = new Map(ids.map((id) => [id, 0]));
  for (const l of links) indegree.set(l.to, indegree.get(l.to)! + 1);
  const depth = new Map(ids.map((id) => [id, 0]));
  const queue = ids.filter((id) => indegree.get(id) === 0).sort(compareIds);
  while (queue.length > 0) {
    const id = queue.shift()!;
    for (const l of links) {
      if (l.from !== id) continue;
      depth.set(l.to, Math.max(depth.get(l.to)!, depth.get(id)! + 1));
      const left = indegree.get(l.to)! - 1;
      indegree.set(l.to, left);
      if (left === 0) queue.push(l.to);
    }
  }
  const kindOf = new Map(p.nodes.map((n) => [n.id, n.kind]));
  const columns = new Map<number, string[]>();
  for (const id of new Set(ids)) columns.set(depth.get(id)!, [...(columns.get(depth.get(id)!) ?? []), id]);
  const positions = new Map<string, XY>();
  for (const [column, members] of columns) {
    members.sort((a, b) => Number(kindOf.get(a) === 'dataset') - Number(kindOf.get(b) === 'dataset') || compareIds(a, b));
    members.forEach((id, row) => positions.set(id, { x: column * LAYOUT_COLUMN_WIDTH, y: row * LAYOUT_ROW_HEIGHT }));
  }
  return positions;
}

export function pipelineToGraph(p: Pipeline): PipelineGraph {
  const auto = autoLayout(p);
  const placed = p.layout?.nodes ?? {};
  const kindOf = new Map(p.nodes.map((n) => [n.id, n.kind]));
  const nodes = p.nodes.map((n): GraphNode => {
    const own = Object.prototype.hasOwnProperty.call(placed, n.id) ? placed[n.id] : undefined;
    const data: GraphNodeData = { params: structuredClone(n.params) };
    if (n.label !== undefined) data.label = n.label;
    if (!own) data.autoPlaced = true;
    const position = own ? { x: own.x, y: own.y } : { ...auto.get(n.id)! };
    return { id: n.id, type: n.kind, position, data } as GraphNode;
  });
  const usedIds = new Set<string>();
  const edges = p.links.map((l): GraphEdge => {
    let id = `${l.from}->${l.to}`;
    for (let n = 2; usedIds.has(id); n++) id = `${l.from}->${l.to}#${n}`;
    usedIds.add(id);
    const port: PortType = kindOf.get(l.from) === 'dataset' ? 'data' : 'model';
    return { id, source: l.from, target: l.to, sourceHandle: port, targetHandle: port };
  });
  return {
    nodes,
    edges,
    viewport: p.layout?.viewport ? { ...p.layout.viewport } : { ...DEFAULT_VIEWPORT },
    meta: {
      version: p.version,
      info: { ...p.info },
      seed: p.seed,
      backend: p.backend,
      hasLayout: p.layout !== undefined,
      hasViewport: p.layout?.viewport !== undefined,
    },
  };
}

export function graphToPipeline(graph: PipelineGraph): Pipeline {
  const nodes = graph.nodes.map((n): PipelineNode => {
    const node: Record<string, unknown> = { id: n.id, kind: n.type };
    if (n.data.label !== undefined) node.label = n.data.label;
    node.params = structuredClone(n.data.params);
    return node as unknown as PipelineNode;
  });
  const pipeline: Pipeline = {
    version: graph.meta.version,
    info: { ...graph.meta.info },
    seed: graph.meta.seed,
    backend: graph.meta.backend,
    nodes,
    links: graph.edges.map((e) => ({ from: e.source, to: e.target })),
  };
  const placed = graph.nodes.filter((n) => !n.data.autoPlaced);
  if (graph.meta.hasLayout || graph.meta.hasViewport || placed.length > 0) {
    const layout: PipelineLayout = { nodes: Object.fromEntries(placed.map((n) => [n.id, { x: n.position.x, y: n.position.y }])) };
    if (graph.meta.hasViewport) layout.viewport = { ...graph.viewport };
    pipeline.layout = layout;
  }
  return pipeline;
}

/** The node moved by the user: its position now belongs in the file's layout. */
export function placeNode(graph: PipelineGraph, id: string, position: XY): PipelineGraph {
  return {
    ...graph,
    nodes: graph.nodes.map((n) => {
      if (n.id !== id) return n;
      const { autoPlaced: _auto, ...data } = n.data;
      return { ...n, position: { x: position.x, y: position.y }, data } as GraphNode;
    }),
  };
}

/** The user panned or zoomed: the viewport now belongs in the file's layout. */
export function setViewport(graph: PipelineGraph, viewport: Viewport): PipelineGraph {
  return { ...graph, viewport: { ...viewport }, meta: { ...graph.meta, hasViewport: true } };
}
