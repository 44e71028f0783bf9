// How a problem names its place for a person: the node by id and label, then the field
// ("s1-train “Stage 1: foundation” · lr"), not the JSON path's array index (`nodes[7]`).
import type { ValidationProblem } from '../../../core/api';
import type { Pipeline } from '../../../core/schema';

export interface ProblemPlace {
  /** The node's id, when the problem belongs to one. */
  nodeId?: string;
  label?: string;
  /** The rest of the path, relative to the node (params. dropped): "lr", "mask.block_size"; or the whole path. */
  field: string;
}

export function problemPlace(pipeline: Pipeline, problem: ValidationProblem): ProblemPlace {
  const m = /^nodes\[(\d+)\]\.?(.*)$/.exec(problem.path);
  const indexed = m ? pipeline.nodes[Number(m[1])] : undefined;
  const node = indexed ?? (problem.node ? pipeline.nodes.find((n) => n.id === problem.node) : undefined);
  if (!node) return { nodeId: problem.node, field: problem.path };
  const field = m ? m[2].replace(/^params\./, '') : problem.path;
  return { nodeId: node.id, label: node.label || undefined, field };
}

/** One line: `s1-train “Stage 1: foundation” · lr`. */
export function placeText(place: ProblemPlace): string {
  if (!place.nodeId) return place.field;
  const name = place.label ? `${place.nodeId} “${place.label}”` : place.nodeId;
  return place.field ? `${name} · ${place.field}` : name;
}
