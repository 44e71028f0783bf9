// Execution order, stages and the per-layer model state a pipeline implies.
//
// Design choices:
// - Order is a topological sort with ties broken by node id, so a file has one order no
//   matter how its nodes or links are listed.
// - The model state is a chain: every operation has exactly one model-state input (the
//   validator enforces this), so "the state after node X" is the Model node's fresh state
//   with X's chain of ancestors applied in order. Export nodes hang off the chain as leaves.
// - Each Train node is a stage: the operations since the previous stage, then the Train,
//   then the Gate linked from it (each kind's role is NODE_SPECS[kind].role). The runtime and
//   the editor's layer strip share this code; what a node does to the state is model-state.ts.
//
// Owned by core/: no Node, DOM or Electron imports here.
import type { NodeKind, Pipeline, PipelineNode } from './schema';
import { NODE_SPECS, type StageRole } from './nodes';
import { applyNode, initialModelState, type LayerState, type ModelState } from './model-state';

export interface Stage {
  /** 0-based stage index. */
  index: number;
  /** The Train node's label, else "Stage N" (1-based). */
  name: string;
  train: string;
  /** Operations applied before this stage's training, in execution order. */
  ops: string[];
  /** Gate linked from the Train node, if any. */
  gate: string | null;
  /** Distill node in force for this stage (the latest one on the chain before it), if any. */
  distill: string | null;
  /** Dataset feeding the Train node, and the one feeding its Gate. */
  dataset: string | null;
  gateDataset: string | null;
}

/** Model-state inputs and data inputs per node id, from the links (unknown ids skipped). */
export function inputsOf(p: Pipeline): Map<string, { model: string[]; data: string[] }> {
  const kindOf = new Map(p.nodes.map((n) => [n.id, n.kind] as const));
  const inputs = new Map<string, { model: string[]; data: string[] }>();
  for (const n of p.nodes) inputs.set(n.id, { model: [], data: [] });
  for (const link of p.links) {
    const fromKind = kindOf.get(link.from);
    const target = inputs.get(link.to);
    if (!fromKind || !target) continue;
    (NODE_SPECS[fromKind].output === 'data' ? target.data : target.model).push(link.from);
  }
  return inputs;
}

/** Deterministic topological order of every node; ties go to the smaller id. Throws on a cycle. */
export function executionOrder(p: Pipeline): string[] {
  const ids = new Set(p.nodes.map((n) => n.id));
  const indegree = new Map<string, number>([...ids].map((id) => [id, 0]));
  const next = new Map<string, string[]>([...ids].map((id) => [id, []]));
  for (const { from, to } of p.links) {
    if (!ids.has(from) || !ids.has(to)) continue;
    next.get(from)!.push(to);
    indegree.set(to, indegree.get(to)! + 1);
  }
  const ready = [...ids].filter((id) => indegree.get(id) === 0);
  const order: string[] = [];
  while (ready.length > 0) {
    ready.sort(compareIds);
    const id = ready.shift()!;
    order.push(id);
    for (const to of next.get(id)!) {
      const left = indegree.get(to)! - 1;
      indegree.set(to, left);
      if (left === 0) ready.push(to);
    }
  }
  if (order.length < ids.size) {
    // Peel off nodes merely downstream of the cycle, so the message names only the loop.
    const placed = new Set(order);
    const stuck = new Set([...ids].filter((id) => !placed.has(id)));
    for (let changed = true; changed;) {
      changed = false;
      for (const id of stuck) {
        if (!next.get(id)!.some((to) => stuck.has(to))) { stuck.delete(id); changed = true; }
      }
    }
    throw new Error(`pipeline has a cycle through ${[...stuck].sort(compareIds).map((s) => `'${s}'`).join(', ')}`);
  }
  return order;
}

/** Code-unit order, the same in every locale. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function stagesOf(p: Pipeline): Stage[] {
  const byId = nodeIndex(p);
  const inputs = inputsOf(p);
  const gateAfter = new Map<string, string>();
  for (const n of p.nodes) {
    const from = inputs.get(n.id)!.model[0];
    const fromNode = from === undefined ? undefined : byId.get(from);
    if (roleOf(n) === 'gate' && fromNode && roleOf(fromNode) === 'train' && !gateAfter.has(fromNode.id)) gateAfter.set(fromNode.id, n.id);
  }
  const stages: Stage[] = [];
  let ops: string[] = [];
  let distill: string | null = null;
  for (const id of executionOrder(p)) {
    const node = byId.get(id)!;
    const role = roleOf(node);
    if (role === 'source' || role === 'gate') continue;
    if (role === 'operation') {
      if (node.kind === 'distill') distill = id;
      ops.push(id);
      continue;
    }
    const gate = gateAfter.get(id) ?? null;
    stages.push({
      index: stages.length,
      name: node.label?.trim() || `Stage ${stages.length + 1}`,
      train: id,
      ops,
      gate,
      distill,
      dataset: inputs.get(id)!.data[0] ?? null,
      gateDataset: gate === null ? null : inputs.get(gate)!.data[0] ?? null,
    });
    ops = [];
  }
  return stages;
}

/** Operations after the last Train node (for example Export), in execution order. */
export function trailingOps(p: Pipeline): string[] {
  const byId = nodeIndex(p);
  const order = executionOrder(p);
  const roles = order.map((id) => roleOf(byId.get(id)!));
  return order.slice(roles.lastIndexOf('train') + 1).filter((id) => roleOf(byId.get(id)!) === 'operation');
}

/** The chain of model-state ancestors of `nodeId`, from the Model node to `nodeId` itself. */
export function modelChainTo(p: Pipeline, nodeId: string): PipelineNode[] {
  const byId = nodeIndex(p);
  if (!byId.has(nodeId)) throw new Error(`no node with id '${nodeId}'`);
  const inputs = inputsOf(p);
  const chain: PipelineNode[] = [];
  const seen = new Set<string>();
  for (let id: string | undefined = nodeId; id !== undefined; id = inputs.get(id)!.model[0]) {
    if (seen.has(id)) throw new Error(`pipeline has a cycle through '${id}'`);
    seen.add(id);
    chain.push(byId.get(id)!);
  }
  return chain.reverse();
}

/** Per-layer state (index = 0-based layer) after applying the chain up to and including `nodeId`. */
export function modelStateAfter(p: Pipeline, nodeId: string): LayerState[] {
  return fullModelStateAfter(p, nodeId).layers;
}

/** Like modelStateAfter, with the parameters outside every layer as well. */
export function fullModelStateAfter(p: Pipeline, nodeId: string): ModelState {
  const model = p.nodes.find((n) => n.kind === 'model');
  if (!model || model.kind !== 'model') throw new Error('pipeline has no Model node');
  const state = initialModelState(model.params.num_layers);
  const kind = nodeKindOf(p, nodeId);
  if (kind !== undefined && NODE_SPECS[kind].output === 'data') return state; // a Dataset is off the model chain
  for (const node of modelChainTo(p, nodeId)) applyNode(state, node);
  return state;
}

function roleOf(node: PipelineNode): StageRole {
  return NODE_SPECS[node.kind].role;
}

function nodeIndex(p: Pipeline): Map<string, PipelineNode> {
  return new Map(p.nodes.map((n) => [n.id, n]));
}

function nodeKindOf(p: Pipeline, id: string): NodeKind | undefined {
  return p.nodes.find((n) => n.id === id)?.kind;
}
