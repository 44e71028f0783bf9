// A pipeline node on the canvas: kind, id, a one-line summary, typed handles, and what
// validation and preflight say about it.
import { memo } from 'react';
import { Handle, Position, type NodeProps } from '@xyflow/react';
import { NODE_SPECS } from '../../../core/nodes';
import { formatBytes, nodeSummary, type FlowNode } from './graph-view';

export const PipelineNodeView = memo(function PipelineNodeView({ data, selected }: NodeProps<FlowNode>) {
  const { node, problems, note, memoryBytes, preflightProblems } = data;
  const spec = NODE_SPECS[node.kind];
  const all = [...problems, ...preflightProblems];
  const summary = nodeSummary(node);
  return (
    <div
      className={`pnode kind-${node.kind}${selected ? ' selected' : ''}${all.length ? ' invalid' : ''}`}
      role="group"
      aria-label={`node ${node.id} (${node.kind})`}
      data-node-id={node.id}
      title={spec.description}
    >
      {spec.inputs.map((port, i) => (
        <Handle key={port} id={port} type="target" position={Position.Left}
          className={`handle handle-${port}`} style={{ top: spec.inputs.length === 1 ? '50%' : `${30 + i * 40}%` }}
          aria-label={`${node.id} ${port} input`} />
      ))}
      <div className="pnode-head">
        <span className="pnode-kind">{node.kind}</span>
        <span className="pnode-id">{node.id}</span>
      </div>
      <div className="pnode-label" title={node.label || undefined}>{node.label || '\u00a0'}</div>
      <div className="pnode-summary" title={summary}>{summary}</div>
      {/* One status line keeps every node the same size: details live in the inspector and the problems panel. */}
      {all.length > 0 ? (
        <div className="pnode-status pnode-problems" role="alert" aria-label={`problems of ${node.id}`}
          title={all.map((p) => `${fieldOf(p.path)}${p.message}`).join('\n')}>
          ⚠ {fieldOf(all[0].path)}{all[0].message}{all.length > 1 ? ` (+${all.length - 1})` : ''}
        </div>
      ) : (note || memoryBytes !== undefined) ? (
        <div className="pnode-status pnode-note" aria-label={`preflight note ${node.id}`}
          title={[note, memoryBytes !== undefined ? `estimated peak memory ${formatBytes(memoryBytes)}` : ''].filter(Boolean).join('\n')}>
          {memoryBytes !== undefined ? `≈ ${formatBytes(memoryBytes)} peak` : note}
        </div>
      ) : <div className="pnode-status" />}
      {spec.output && (
        <Handle id={spec.output} type="source" position={Position.Right}
          className={`handle handle-${spec.output}`} aria-label={`${node.id} ${spec.output} output`} />
      )}
    </div>
  );
});

/** "nodes[3].params.mask.block_size" -> "mask.block_size: " (the node itself is implied). */
function fieldOf(path: string): string {
  const short = path.replace(/^nodes\[\d+\]\.?(params\.)?/, '');
  return short && !short.startsWith('nodes') ? `${short}: ` : '';
}
