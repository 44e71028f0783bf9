// Pipeline -> canvas nodes and edges. The canvas is a view of the pipeline (the store of
// record); handles are typed by port so the canvas can refuse wrongly typed links.
import type { Edge, Node } from '@xyflow/react';
import type { Pipeline, PipelineNode } from '../../../core/schema';
import type { ValidationProblem } from '../../../core/api';
import { NODE_SPECS } from '../../../core/nodes';

export interface NodeViewData extends Record<string, unknown> {
  node: PipelineNode;
  problems: ValidationProblem[];
  note?: string;
  memoryBytes?: number;
  /** Problems the preflight found (model files, memory...). */
  preflightProblems: ValidationProblem[];
}

export type FlowNode = Node<NodeViewData, 'pipeline'>;

export function toFlowNodes(p: Pipeline, selection: string[], problems: Map<string, ValidationProblem[]>,
  preflight: { notes: Record<string, string>; memoryBytes: Record<string, number>; problems: Map<string, ValidationProblem[]> } | null): FlowNode[] {
  const positions = p.layout?.nodes ?? {};
  const selected = new Set(selection);
  return p.nodes.map((node) => ({
    id: node.id,
    type: 'pipeline',
    position: positions[node.id] ?? { x: 0, y: 0 },
    selected: selected.has(node.id),
    data: {
      node,
      problems: problems.get(node.id) ?? [],
      note: preflight?.notes[node.id],
      memoryBytes: preflight?.memoryBytes[node.id],
      preflightProblems: preflight?.problems.get(node.id) ?? [],
    },
  }));
}

export function toFlowEdges(p: Pipeline): Edge[] {
  const kindOf = new Map(p.nodes.map((n) => [n.id, n.kind] as const));
  return p.links.filter((l) => kindOf.has(l.from) && kindOf.has(l.to)).map((l) => {
    const type = NODE_SPECS[kindOf.get(l.from)!].output ?? 'model';
    return {
      id: `${l.from}->${l.to}`,
      source: l.from,
      target: l.to,
      sourceHandle: type,
      targetHandle: type,
      className: `edge-${type}`,
      ariaLabel: `link ${l.from} to ${l.to}`,
    };
  });
}

/** Problems grouped by the node they belong to. */
export function problemsByNode(problems: ValidationProblem[]): Map<string, ValidationProblem[]> {
  const map = new Map<string, ValidationProblem[]>();
  for (const p of problems) {
    if (!p.node) continue;
    const list = map.get(p.node) ?? [];
    list.push(p);
    map.set(p.node, list);
  }
  return map;
}

/** One line that tells a node apart from its siblings on the canvas. */
export function nodeSummary(node: PipelineNode): string {
  switch (node.kind) {
    case 'model': return `${node.params.source} · ${node.params.num_layers} layers`;
    case 'dataset': return node.params.source;
    case 'freeze': return `${node.params.layers === 'all' ? 'all layers' : `layers ${node.params.layers[0]}-${node.params.layers[1]}`} · ${node.params.kinds.join(' ')}`;
    case 'replace': {
      const m = node.params.mask;
      const parts = [`layers ${node.params.layers[0]}-${node.params.layers[1]}`, `${m.global_blocks}g`, `${m.window_blocks}w`, `${m.random_blocks}r`];
      if (m.topk_blocks && m.selector !== 'none') parts.push(`top-${m.topk_blocks} ${m.selector}`);
      return parts.join(' · ');
    }
    case 'distill': return `attn ${node.params.attn_kl_weight} · logit ${node.params.logit_kl_weight} · hidden ${node.params.hidden_mse_weight}`;
    case 'unfreeze': return `layers ${node.params.layers[0]}-${node.params.layers[1]} · ${node.params.kinds.join(' ')}`;
    case 'train': return `${node.params.steps} steps · lr ${node.params.lr} · ${node.params.precision}`;
    case 'gate': return node.params.checks.map((c) => `${c.metric} ${c.op} ${c.threshold}`).join(', ') || 'no checks';
    case 'export': return node.params.path;
  }
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${v < 10 && u > 0 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}
