// The canvas's geometry: stages left to right, one frame per stage, and where data links run.
//
// Design choices:
// - One row: the model chain reads left to right (Model, then each stage's operations, Train
//   and Gate, then Export), with a wider gap between stages for their frames. Datasets sit
//   below the Model, under the row, so their links never pass under a node: a data link leaves
//   the dataset, runs along a lane between the row and the datasets, and rises to its Train or
//   Gate in the gap left of it (`busPath`).
// - Frames are derived from the nodes' current positions (a moved node drags its frame along),
//   never stored in the pipeline.
// - Every node has one fixed size (PipelineNodeView), so geometry needs no DOM measurement.
import type { Pipeline } from '../../../core/schema';
import { NODE_SPECS } from '../../../core/nodes';
import { executionOrder, stagesOf, type Stage } from '../../../core/order';

export const NODE_W = 220;
export const NODE_H = 92;
export const GAP_X = 48;
export const STAGE_GAP = 56;
/** Frame padding around its nodes, and the header band above them. */
export const FRAME_PAD = 14;
export const FRAME_HEAD = 30;
const DATA_DROP = 150;

type Position = { x: number; y: number };

function safeStages(p: Pipeline): Stage[] {
  try { return stagesOf(p); } catch { return []; }
}

/** Positions: stages left to right in one row; datasets under the Model column. */
export function stageLayout(p: Pipeline): Record<string, Position> {
  let order: string[];
  try { order = executionOrder(p); } catch { order = p.nodes.map((n) => n.id); }
  const kindOf = new Map(p.nodes.map((n) => [n.id, n.kind] as const));
  const isData = (id: string) => NODE_SPECS[kindOf.get(id)!]?.output === 'data';
  const positions: Record<string, Position> = {};
  const stages = safeStages(p);
  const stageOf = new Map<string, number>();
  for (const s of stages) for (const id of [...s.ops, s.train, ...(s.gate ? [s.gate] : [])]) stageOf.set(id, s.index);

  let sources = 0;
  for (const id of order) {
    if (isData(id) || NODE_SPECS[kindOf.get(id)!]?.role !== 'source') continue;
    positions[id] = { x: 0, y: sources++ * (NODE_H + 40) };
  }
  let x = NODE_W + GAP_X;
  let current: number | undefined;
  for (const id of order) {
    if (id in positions || isData(id)) continue;
    const stage = stageOf.get(id);
    if (stage !== current) { x += STAGE_GAP; current = stage; }
    positions[id] = { x, y: 0 };
    x += NODE_W + GAP_X;
  }
  const rowBottom = Math.max(NODE_H, ...Object.values(positions).map((q) => q.y + NODE_H));
  let data = 0;
  for (const id of order) if (isData(id)) positions[id] = { x: 0, y: rowBottom + DATA_DROP - NODE_H + data++ * (NODE_H + 30) };
  for (const n of p.nodes) positions[n.id] ??= { x: 0, y: 0 };
  return positions;
}

export interface StageFrame {
  index: number;
  name: string;
  nodes: string[];
  train: string;
  gate: string | null;
  x: number; y: number; width: number; height: number;
}

/** One frame per stage around its operations, Train and Gate, at their current positions. */
export function stageFrames(p: Pipeline): StageFrame[] {
  const positions = p.layout?.nodes ?? {};
  return safeStages(p).flatMap((s) => {
    const nodes = [...s.ops, s.train, ...(s.gate ? [s.gate] : [])].filter((id) => positions[id]);
    if (!nodes.length) return [];
    const xs = nodes.map((id) => positions[id].x);
    const ys = nodes.map((id) => positions[id].y);
    const x = Math.min(...xs) - FRAME_PAD;
    const y = Math.min(...ys) - FRAME_PAD - FRAME_HEAD;
    return [{
      index: s.index, name: s.name, nodes, train: s.train, gate: s.gate,
      x, y, width: Math.max(...xs) + NODE_W + FRAME_PAD - x, height: Math.max(...ys) + NODE_H + FRAME_PAD - y,
    }];
  });
}

/** The y of the lane data links run along: under every node that is not a data source. */
export function dataLaneY(p: Pipeline): number {
  const positions = p.layout?.nodes ?? {};
  const bottoms = p.nodes.filter((n) => NODE_SPECS[n.kind].output !== 'data' && positions[n.id]).map((n) => positions[n.id].y + NODE_H);
  return (bottoms.length ? Math.max(...bottoms) : NODE_H) + FRAME_PAD + 18;
}

/**
 * A data link's path: out of the source, along the lane at `laneY`, up (or down) in the gap left
 * of the target, into its input. Rounded corners; returns the path and a point for its label.
 */
export function busPath(sx: number, sy: number, tx: number, ty: number, laneY: number): string {
  const r = 8;
  const outX = sx + 16;
  const inX = tx - GAP_X / 2 + 4;
  if (inX <= outX + 2 * r) return `M ${sx},${sy} C ${sx + 60},${sy} ${tx - 60},${ty} ${tx},${ty}`;
  const v1 = Math.sign(laneY - sy) || 1;
  const v2 = Math.sign(ty - laneY) || 1;
  return [
    `M ${sx},${sy}`, `L ${outX - r},${sy}`, `Q ${outX},${sy} ${outX},${sy + v1 * r}`,
    `L ${outX},${laneY - v1 * r}`, `Q ${outX},${laneY} ${outX + r},${laneY}`,
    `L ${inX - r},${laneY}`, `Q ${inX},${laneY} ${inX},${laneY + v2 * r}`,
    `L ${inX},${ty - v2 * r}`, `Q ${inX},${ty} ${inX + r},${ty}`, `L ${tx},${ty}`,
  ].join(' ');
}

/** The viewport that opens a pipeline readably: its sources and first stage at zoom 0.8-1, from the left. */
export function openingViewport(p: Pipeline, width: number, height: number): { x: number; y: number; zoom: number } {
  const positions = p.layout?.nodes ?? {};
  const first = safeStages(p)[0];
  const focus = p.nodes.filter((n) => NODE_SPECS[n.kind].role === 'source' || !first || first.ops.includes(n.id) || n.id === first.train || n.id === first.gate)
    .map((n) => positions[n.id]).filter(Boolean);
  if (!focus.length) return { x: 0, y: 0, zoom: 1 };
  const pad = 40;
  const minX = Math.min(...focus.map((q) => q.x)) - FRAME_PAD;
  const minY = Math.min(...focus.map((q) => q.y)) - FRAME_PAD - FRAME_HEAD;
  const maxX = Math.max(...focus.map((q) => q.x)) + NODE_W + FRAME_PAD;
  const maxY = Math.max(...focus.map((q) => q.y)) + NODE_H + FRAME_PAD;
  const zoom = Math.min(1, Math.max(0.8, Math.min((width - 2 * pad) / (maxX - minX), (height - 2 * pad) / (maxY - minY))));
  const fitsWide = (maxX - minX) * zoom <= width - 2 * pad;
  const x = fitsWide ? (width - (maxX - minX) * zoom) / 2 - minX * zoom : pad - minX * zoom;
  const y = Math.max(pad - minY * zoom, (height - (maxY - minY) * zoom) / 2 - minY * zoom);
  return { x, y, zoom };
}
