// The graph canvas (@xyflow/react). A view of the pipeline in the graph store: edits go to the
// store, the canvas re-derives its nodes. It keeps only what xyflow itself measures (sizes).
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent, type MouseEvent } from 'react';
import {
  Background, BackgroundVariant, Controls, MiniMap, ReactFlow, applyNodeChanges, useReactFlow,
  type Connection, type Edge, type EdgeChange, type NodeChange, type OnConnectStartParams,
} from '@xyflow/react';
import type { NodeKind } from '../../../core/schema';
import { checkConnection, refusalAt, type DragStart, selectPipeline, selectSelectedLinks, selectSelection } from '../stores/graph-store';
import { selectPreflight } from '../stores/session-store';
import { useGraph, useSession, useStudio } from '../app/studio-context';
import { PipelineNodeView } from './PipelineNodeView';
import { problemsByNode, toFlowEdges, toFlowNodes, type FlowNode } from './graph-view';
import { useValidation } from './use-validation';
import { NodeSearch } from './NodeSearch';
import { DataEdge } from './DataEdge';
import { StageFrames } from './StageFrames';
import { dataLaneY, NODE_H, NODE_W, openingViewport } from './stage-layout';

export const NODE_DRAG_TYPE = 'application/x-sparse-studio-node';
const nodeTypes = { pipeline: PipelineNodeView };
const edgeTypes = { data: DataEdge };

const FIT_VIEW_OPTIONS = { padding: 0.2, maxZoom: 1 };
const PRO_OPTIONS = { hideAttribution: true };

export function Canvas({ searchRequest }: { searchRequest: number }) {
  const { graph, session } = useStudio();
  const pipeline = useGraph(selectPipeline);
  const selection = useGraph(selectSelection);
  const selectedLinks = useGraph(selectSelectedLinks);
  const preflight = useSession(selectPreflight);
  const problems = useValidation();
  const flow = useReactFlow();
  const wrapper = useRef<HTMLDivElement>(null);
  const [search, setSearch] = useState<{ x: number; y: number; screen: { x: number; y: number } } | null>(null);

  const preflightView = useMemo(() => preflight && {
    notes: preflight.notes, memoryBytes: preflight.memoryBytes, problems: problemsByNode(preflight.problems),
  }, [preflight]);
  const derived = useMemo(() => toFlowNodes(pipeline, selection, problemsByNode(problems), preflightView),
    [pipeline, selection, problems, preflightView]);
  const [nodes, setNodes] = useState<FlowNode[]>(derived);
  // Keep xyflow's measurements when the pipeline changes: without them nodes would vanish.
  useEffect(() => {
    setNodes((previous) => {
      const measured = new Map(previous.map((n) => [n.id, n.measured]));
      return derived.map((n) => ({ ...n, measured: measured.get(n.id) }));
    });
  }, [derived]);
  const edges = useMemo<Edge[]>(() => {
    const chosen = new Set(selectedLinks);
    const laneY = dataLaneY(pipeline);
    return toFlowEdges(pipeline).map((e) => ({
      ...e, selected: chosen.has(e.id), interactionWidth: 18,
      ...(e.sourceHandle === 'data' ? { type: 'data', data: { laneY } } : {}),
    }));
  }, [pipeline, selectedLinks]);

  // Selection has one home, the graph store: xyflow's select changes go there, and the nodes'
  // `selected` flags come back from it (two copies of the selection flip-flopped into a render loop).
  const onNodesChange = useCallback((changes: NodeChange<FlowNode>[]) => {
    const picks = changes.filter((c) => c.type === 'select');
    if (picks.length) {
      const selected = new Set(graph.getState().selection);
      for (const c of picks) if (c.selected) selected.add(c.id); else selected.delete(c.id);
      const ids = [...selected];
      const current = graph.getState().selection;
      if (ids.length !== current.length || ids.some((id, i) => id !== current[i])) graph.getState().select(ids);
    }
    const rest = changes.filter((c) => c.type !== 'select');
    if (rest.length) setNodes((current) => applyNodeChanges(rest, current));
    const moved: Record<string, { x: number; y: number }> = {};
    for (const c of changes) if (c.type === 'position' && c.position) moved[c.id] = c.position;
    if (Object.keys(moved).length) graph.getState().moveNodes(moved);
  }, [graph]);

  const onEdgesChange = useCallback((changes: EdgeChange[]) => {
    const selected = new Set(graph.getState().selectedLinks);
    let changed = false;
    for (const c of changes) {
      if (c.type !== 'select') continue;
      changed = true;
      if (c.selected) selected.add(c.id); else selected.delete(c.id);
    }
    if (changed) graph.getState().selectLinks([...selected]);
  }, [graph]);


  const isValidConnection = useCallback((c: Connection | Edge) => {
    if (!c.source || !c.target) return false;
    if (c.sourceHandle && c.targetHandle && c.sourceHandle !== c.targetHandle) return false;
    return checkConnection(graph.getState().pipeline, c.source, c.target).ok;
  }, [graph]);

  // A refused link says why at the cursor while it is dragged, and where it was dropped.
  const drag = useRef<{ start: DragStart; connected: boolean } | null>(null);
  const [hint, setHint] = useState<{ x: number; y: number; text: string; dropped: boolean } | null>(null);
  const refusalUnder = useCallback((clientX: number, clientY: number) => {
    const start = drag.current?.start;
    if (!start) return null;
    const under = document.elementFromPoint(clientX, clientY);
    const nodeId = under?.closest('.react-flow__node')?.getAttribute('data-id');
    if (!nodeId || nodeId === start.nodeId) return null;
    const port = under?.closest('.react-flow__handle')?.getAttribute('data-handleid') ?? null;
    return refusalAt(graph.getState().pipeline, start, nodeId, port);
  }, [graph]);
  const hintAt = useCallback((clientX: number, clientY: number, text: string | null, dropped: boolean) => {
    const box = wrapper.current?.getBoundingClientRect();
    setHint(text ? { x: clientX - (box?.left ?? 0) + 14, y: clientY - (box?.top ?? 0) + 14, text, dropped } : null);
  }, []);
  const onConnectStart = useCallback((_: unknown, params: OnConnectStartParams) => {
    setHint(null);
    if (!params.nodeId || !params.handleType) return;
    drag.current = { start: { nodeId: params.nodeId, handleType: params.handleType, port: params.handleId }, connected: false };
  }, []);
  useEffect(() => {
    const onMove = (e: PointerEvent) => { if (drag.current) hintAt(e.clientX, e.clientY, refusalUnder(e.clientX, e.clientY), false); };
    window.addEventListener('pointermove', onMove);
    return () => window.removeEventListener('pointermove', onMove);
  }, [hintAt, refusalUnder]);
  const onConnectEnd = useCallback((event: globalThis.MouseEvent | TouchEvent) => {
    const point = 'changedTouches' in event ? event.changedTouches[0] : event;
    const reason = drag.current && !drag.current.connected ? refusalUnder(point.clientX, point.clientY) : null;
    drag.current = null;
    hintAt(point.clientX, point.clientY, reason, true);
    if (reason) session.getState().notify(`Link refused: ${reason}`, 'error');
  }, [hintAt, refusalUnder, session]);

  const onConnect = useCallback((c: Connection) => {
    if (drag.current) drag.current.connected = true;
    const result = graph.getState().connect(c.source, c.target);
    if (!result.ok) session.getState().notify(`Cannot link ${c.source} to ${c.target}: ${result.reason}`, 'error');
  }, [graph, session]);

  // A loaded pipeline (template, file, run) opens readably: its first stage at zoom 0.8-1.
  const loads = useGraph((s) => s.loads);
  useEffect(() => {
    const box = wrapper.current?.getBoundingClientRect();
    const p = graph.getState().pipeline;
    if (!box || !box.width || p.nodes.length === 0) return;
    void flow.setViewport(openingViewport(p, box.width, box.height));
  }, [loads, flow, graph]);

  // A node selected from outside the canvas (problems panel, search) is brought into view.
  useEffect(() => {
    if (selection.length !== 1) return;
    const at = graph.getState().pipeline.layout?.nodes[selection[0]];
    const box = wrapper.current?.getBoundingClientRect();
    if (!at || !box) return;
    const { x, y, zoom } = flow.getViewport();
    const left = at.x * zoom + x;
    const top = at.y * zoom + y;
    const visible = left >= 0 && top >= 0 && left + NODE_W * zoom <= box.width && top + NODE_H * zoom <= box.height;
    if (!visible) void flow.setCenter(at.x + NODE_W / 2, at.y + NODE_H / 2, { zoom, duration: 200 });
  }, [selection, flow, graph]);

  // Props of <ReactFlow> stay the same objects between renders: xyflow copies every changed
  // prop into its store, and a fresh callback per render made that a render loop.
  const onNodeDragStart = useCallback(() => graph.getState().beginGesture(), [graph]);
  const onNodeDragStop = useCallback(() => graph.getState().endGesture(), [graph]);
  const clearHint = useCallback(() => setHint(null), []);

  const onDrop = useCallback((event: DragEvent) => {
    const kind = event.dataTransfer.getData(NODE_DRAG_TYPE) as NodeKind;
    if (!kind) return;
    event.preventDefault();
    const at = flow.screenToFlowPosition({ x: event.clientX, y: event.clientY });
    graph.getState().addNode(kind, { x: Math.round(at.x - 90), y: Math.round(at.y - 30) });
  }, [flow, graph]);

  const onDragOver = useCallback((event: DragEvent) => {
    if (event.dataTransfer.types.includes(NODE_DRAG_TYPE)) {
      event.preventDefault();
      event.dataTransfer.dropEffect = 'copy';
    }
  }, []);

  const openSearchAt = useCallback((clientX: number, clientY: number) => {
    const box = wrapper.current?.getBoundingClientRect();
    const at = flow.screenToFlowPosition({ x: clientX, y: clientY });
    setSearch({ x: at.x, y: at.y, screen: { x: clientX - (box?.left ?? 0), y: clientY - (box?.top ?? 0) } });
  }, [flow]);

  const onDoubleClick = useCallback((event: MouseEvent) => {
    if (!(event.target as HTMLElement).classList.contains('react-flow__pane')) return;
    openSearchAt(event.clientX, event.clientY);
  }, [openSearchAt]);

  // The "Add node" command opens the search in the middle of the canvas.
  useEffect(() => {
    if (!searchRequest || !wrapper.current) return;
    const box = wrapper.current.getBoundingClientRect();
    openSearchAt(box.left + box.width / 2 - 120, box.top + box.height / 3);
  }, [searchRequest, openSearchAt]);

  return (
    <div className="canvas" ref={wrapper} onDoubleClick={onDoubleClick} aria-label="pipeline canvas">
      <ReactFlow<FlowNode>
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        edgeTypes={edgeTypes}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        onNodeDragStart={onNodeDragStart}
        onNodeDragStop={onNodeDragStop}
        onConnect={onConnect}
        onConnectStart={onConnectStart}
        onConnectEnd={onConnectEnd}
        onPaneClick={clearHint}
        onNodeClick={clearHint}
        isValidConnection={isValidConnection}
        onDrop={onDrop}
        onDragOver={onDragOver}
        deleteKeyCode={null}
        zoomOnDoubleClick={false}
        fitViewOptions={FIT_VIEW_OPTIONS}
        minZoom={0.1}
        colorMode="dark"
        proOptions={PRO_OPTIONS}
      >
        <Background variant={BackgroundVariant.Dots} gap={20} size={1} />
        <StageFrames />
        <MiniMap pannable zoomable ariaLabel="minimap" nodeStrokeWidth={3} style={{ width: 168, height: 108 }} nodeColor="#3a4766" maskColor="rgba(8, 11, 18, 0.6)" />
        <Controls showInteractive={false} />
      </ReactFlow>
      {hint && (
        <div className={`link-hint${hint.dropped ? ' dropped' : ''}`} role="alert" aria-label="link refused" style={{ left: hint.x, top: hint.y }}>
          {hint.text}
        </div>
      )}
      {search && (
        <NodeSearch
          style={{ left: search.screen.x, top: search.screen.y }}
          onPick={(kind) => { graph.getState().addNode(kind, { x: Math.round(search.x), y: Math.round(search.y) }); setSearch(null); }}
          onClose={() => setSearch(null)}
        />
      )}
    </div>
  );
}
