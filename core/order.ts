// Execution order, stages and the per-layer model state a pipeline implies.
//
// Design choices:
// - Order is a topological sort with ties broken by node id, so a file has one order no
//   matter how its nodes or links are listed.
// - The model state is a chain: every operation has exactly one model-state input (the
//   validator enforces this), so "the state after node X" is the Model node's fresh state
//   with X's chain of ancestors applied in order. Export nodes hang off the chain as leaves.
// - Each Train node is a stage: the operations since the previous stage, then the Train,
//   then the Gate linked from it. The runtime and the editor's layer strip share this code.
//
// Owned by core/: no Node, DOM or Electron imports here.
import type { MaskSpec, NodeKind, ParamKind, Pipeline, PipelineNode } from './schema';
import { PARAM_KINDS } from './schema';
import { LAYER_PARAM_KINDS } from './nodes';

export interface LayerState {
  attention: 'dense' | 'sparse';
  mask?: MaskSpec;
  /** Id of the Replace node that made this layer sparse. */
  replacedBy?: string;
  /** Trainable parameter kinds of this layer, in PARAM_KINDS order. */
  trainable: ParamKind[];
}

/** Parameters outside every layer: token embeddings (and the LM head) and the final norm. */
export interface OutsideState { trainable: ParamKind[] }

export interface ModelState { layers: LayerState[]; outside: OutsideState }

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
    (fromKind === 'dataset' ? target.data : target.model).push(link.from);
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
    if (n.kind === 'gate' && from !== undefined && byId.get(from)?.kind === 'train' && !gateAfter.has(from)) gateAfter.set(from, n.id);
  }
  const stages: Stage[] = [];
  let ops: string[] = [];
  let distill: string | null = null;
  for (const id of executionOrder(p)) {
    const node = byId.get(id)!;
    if (node.kind === 'model' || node.kind === 'dataset' || node.kind === 'gate') continue;
    if (node.kind === 'distill') distill = id;
    if (node.kind !== 'train') {
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
  const lastTrain = order.map((id) => byId.get(id)!.kind).lastIndexOf('train');
  return order.slice(lastTrain + 1).filter((id) => !['model', 'dataset', 'gate'].includes(byId.get(id)!.kind));
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

/** Fresh model: every layer dense, every base parameter trainable, no selector yet. */
export function initialModelState(numLayers: number): ModelState {
  const layers: LayerState[] = [];
  const base: ParamKind[] = LAYER_PARAM_KINDS.filter((k) => k !== 'selector');
  for (let i = 0; i < numLayers; i++) layers.push({ attention: 'dense', trainable: [...base] });
  return { layers, outside: { trainable: ['norms', 'embeddings'] } };
}

/** Applies one node to a state in place. Ops that do not change layers (Train, Gate...) are no-ops. */
export function applyNode(state: ModelState, node: PipelineNode): void {
  const layerIndices = (range: [number, number]) => {
    const out: number[] = [];
    for (let l = Math.max(1, range[0]); l <= Math.min(state.layers.length, range[1]); l++) out.push(l - 1);
    return out;
  };
  switch (node.kind) {
    case 'freeze': {
      const { layers, kinds } = node.params;
      const targets = layers === 'all' ? state.layers.map((_, i) => i) : layerIndices(layers);
      for (const i of targets) state.layers[i].trainable = state.layers[i].trainable.filter((k) => !kinds.includes(k));
      if (layers === 'all') state.outside.trainable = state.outside.trainable.filter((k) => !kinds.includes(k));
      break;
    }
    case 'replace': {
      const { layers, mask } = node.params;
      for (const i of layerIndices(layers)) {
        const layer = state.layers[i];
        layer.attention = 'sparse';
        layer.mask = structuredClone(mask);
        layer.replacedBy = node.id;
        // A trainable indexer is a new part: it trains from the start ("train only the new parts").
        const kinds: ParamKind[] = layer.trainable.filter((k) => k !== 'selector');
        if (mask.selector === 'indexer') kinds.push('selector');
        layer.trainable = sortKinds(kinds);
      }
      break;
    }
    case 'unfreeze': {
      const { layers, kinds, replaced_only } = node.params;
      for (const i of layerIndices(layers)) {
        const layer = state.layers[i];
        if (replaced_only && layer.attention !== 'sparse') continue;
        // Only kinds the layer has: embeddings live outside layers, a selector needs an indexer.
        const available = kinds.filter((k) => k !== 'embeddings' && (k !== 'selector' || layer.mask?.selector === 'indexer'));
        layer.trainable = sortKinds([...new Set([...layer.trainable, ...available])]);
      }
      break;
    }
    default:
      break;
  }
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
  if (nodeKindOf(p, nodeId) === 'dataset') return state;
  for (const node of modelChainTo(p, nodeId)) applyNode(state, node);
  return state;
}

/** True when any parameter would receive gradient updates in this state. */
export function hasTrainable(state: ModelState): boolean {
  return state.outside.trainable.length > 0 || state.layers.some((l) => l.trainable.length > 0);
}

function sortKinds(kinds: ParamKind[]): ParamKind[] {
  return PARAM_KINDS.filter((k) => kinds.includes(k));
}

function nodeIndex(p: Pipeline): Map<string, PipelineNode> {
  return new Map(p.nodes.map((n) => [n.id, n]));
}

function nodeKindOf(p: Pipeline, id: string): NodeKind | undefined {
  return p.nodes.find((n) => n.id === id)?.kind;
}
