// A data link drawn along the lane under the stages (stage-layout.ts busPath), so it never runs
// under a node; a wide invisible stroke keeps it easy to click and select.
import { BaseEdge, type EdgeProps, type Edge } from '@xyflow/react';
import { busPath } from './stage-layout';

export type DataEdgeType = Edge<{ laneY: number }, 'data'>;

export function DataEdge({ id, sourceX, sourceY, targetX, targetY, data, markerEnd, style, interactionWidth }: EdgeProps<DataEdgeType>) {
  const path = busPath(sourceX, sourceY, targetX, targetY, data?.laneY ?? Math.max(sourceY, targetY) + 40);
  return <BaseEdge id={id} path={path} markerEnd={markerEnd} style={style} interactionWidth={interactionWidth ?? 18} />;
}
