// Graph store: the pipeline being edited, its selection, undo/redo history and clipboard.
//
// Design choices:
// - The store of record is the Pipeline itself (schema v1, positions in `layout`), not the
//   canvas's node objects: export, validation, preflight and autosave read it as is, and the
//   canvas derives its nodes and edges from it. Nothing can drift between two copies.
// - Every edit replaces the pipeline immutably, so undo/redo is a stack of snapshots that
//   share unchanged nodes. Drags are gestures: intermediate positions are transient and the
//   whole drag is one undo step.
// - Connections are checked by the port rule of core/nodes.ts (linkPort, which the validator
//   uses too): a model-state output may only enter a model input, a Dataset only a data input;
//   then one link per input, no cycles.
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { NodeKind, Pipeline, PipelineLink, PipelineNode } from '../../../core/schema';
import { PIPELINE_VERSION } from '../../../core/schema';
import { stageLayout } from '../editor/stage-layout';
import { NODE_SPECS, defaultParams, kindsTaking, linkPort, type PortType } from '../../../core/nodes';
import { executionOrder } from '../../../core/order';

export interface Position { x: number; y: number }

export interface Clipboard { nodes: PipelineNode[]; links: PipelineLink[]; positions: Record<string, Position> }

export interface GraphState {
  pipeline: Pipeline;
  selection: string[];
  /** Selected links as `from->to`. */
  selectedLinks: string[];
  past: Pipeline[];
  future: Pipeline[];
  clipboard: Clipboard | null;
  /** Snapshot taken when a drag began; the drag becomes one undo step when it ends. */
  gestureStart: Pipeline | null;
  /** Bumps on every change of the pipeline (autosave and validation listen to it). */
  revision: number;
  /** Bumped by every load (template, file, run): the canvas opens the new pipeline's view. */
  loads: number;
  /** Revision of the last pristine load; the pipeline is an edited draft when revision differs. */
  pristineRevision: number | null;

  /** `pristine`: the pipeline as a template, file or run has it (not an edited draft). */
  load(pipeline: Pipeline, options?: { resetHistory?: boolean; pristine?: boolean }): void;
  addNode(kind: NodeKind, position: Position): string;
  removeNodes(ids: string[]): void;
  connect(from: string, to: string): ConnectCheck;
  disconnect(from: string, to: string): void;
  setParam(id: string, path: (string | number)[], value: unknown): void;
  setLabel(id: string, label: string): void;
  setInfo(info: Partial<Pipeline['info']>): void;
  /** Sets a top-level field (seed, backend); bad values stay for the validator to report. */
  setTop(key: 'seed' | 'backend', value: unknown): void;
  beginGesture(): void;
  moveNodes(positions: Record<string, Position>): void;
  endGesture(): void;
  select(ids: string[]): void;
  selectLinks(ids: string[]): void;
  /** Removes the selected nodes and links as one undo step. */
  deleteSelection(): void;
  /** Renames a node; links and layout follow. Returns a reason when the id is not usable. */
  renameNode(id: string, next: string): string | null;
  undo(): void;
  redo(): void;
  copy(): void;
  paste(): void;
  autoLayout(): void;
}

export type ConnectCheck = { ok: true } | { ok: false; reason: string };

const HISTORY_LIMIT = 200;
export const LAYOUT_SPACING = { x: 250, y: 130 };

export function emptyPipeline(): Pipeline {
  return {
    version: PIPELINE_VERSION,
    info: { name: 'Untitled pipeline', author: '', description: '' },
    seed: 0,
    backend: 'auto',
    nodes: [],
    links: [],
    layout: { nodes: {} },
  };
}

/** The port type a link from `fromKind` carries. */
export function linkType(fromKind: NodeKind): PortType | null {
  return NODE_SPECS[fromKind].output;
}

/** Can a link go from node `from` to node `to`? Reasons read as one line for the status bar. */
export function checkConnection(p: Pipeline, from: string, to: string): ConnectCheck {
  const source = p.nodes.find((n) => n.id === from);
  const target = p.nodes.find((n) => n.id === to);
  if (!source || !target) return { ok: false, reason: 'both ends must be nodes of this pipeline' };
  if (from === to) return { ok: false, reason: 'a node cannot feed itself' };
  const rule = linkPort(source.kind, target.kind);
  if (!rule.ok) {
    if (rule.problem === 'no_output') return { ok: false, reason: `${source.kind} has no output` };
    const port = linkType(source.kind)!;
    return { ok: false, reason: port === 'data' ? `${target.kind} takes no data input (only ${kindsTaking('data').join(' and ')} do)` : `${target.kind} takes no model-state input` };
  }
  const type = rule.port;
  if (p.links.some((l) => l.from === from && l.to === to)) return { ok: false, reason: 'these nodes are already linked' };
  const kindOf = new Map(p.nodes.map((n) => [n.id, n.kind] as const));
  const taken = p.links.some((l) => l.to === to && linkType(kindOf.get(l.from) ?? 'model') === type);
  if (taken) return { ok: false, reason: `${to} already has a ${type === 'data' ? 'data' : 'model-state'} input (delete that link first)` };
  if (reaches(p, to, from)) return { ok: false, reason: `this link would make a cycle (${to} already leads to ${from})` };
  return { ok: true };
}

/** Where a link drag started: a node and which of its ends (its output, or one of its inputs). */
export interface DragStart { nodeId: string; handleType: 'source' | 'target'; port: string | null }

/**
 * Why a link dragged from `start` may not end over node `overId` (on its handle `overPort`, if the
 * pointer is on one): the one line shown at the cursor. Null when the link is allowed there.
 */
export function refusalAt(p: Pipeline, start: DragStart, overId: string, overPort: string | null): string | null {
  const [from, to] = start.handleType === 'source' ? [start.nodeId, overId] : [overId, start.nodeId];
  const source = p.nodes.find((n) => n.id === from);
  const target = p.nodes.find((n) => n.id === to);
  if (!source || !target) return null;
  const sent = linkType(source.kind);
  const taking = start.handleType === 'source' ? overPort : start.port;
  if (sent && taking && sent !== taking) {
    const what = (t: string) => (t === 'data' ? 'data' : 'a model state');
    return `wrong port kind: ${from} sends ${what(sent)}, this input of ${to} takes ${what(taking)}`;
  }
  const check = checkConnection(p, from, to);
  return check.ok ? null : check.reason;
}

function reaches(p: Pipeline, start: string, goal: string): boolean {
  const stack = [start];
  const seen = new Set<string>();
  while (stack.length) {
    const id = stack.pop()!;
    if (id === goal) return true;
    if (seen.has(id)) continue;
    seen.add(id);
    for (const l of p.links) if (l.from === id) stack.push(l.to);
  }
  return false;
}

/** `kind-N` with the smallest N not used yet. */
export function freshId(p: Pipeline, kind: NodeKind, taken: Set<string> = new Set()): string {
  const used = new Set([...p.nodes.map((n) => n.id), ...taken]);
  for (let n = 1; ; n++) if (!used.has(`${kind}-${n}`)) return `${kind}-${n}`;
}

function positionsOf(p: Pipeline): Record<string, Position> {
  return p.layout?.nodes ?? {};
}

function withPositions(p: Pipeline, positions: Record<string, Position>): Pipeline {
  return { ...p, layout: { ...(p.layout ?? { nodes: {} }), nodes: positions } };
}

/** Immutable set of `value` at `path` inside `obj` (arrays stay arrays). */
export function setIn<T>(obj: T, path: (string | number)[], value: unknown): T {
  if (path.length === 0) return value as T;
  const [head, ...rest] = path;
  const container = (obj ?? (typeof head === 'number' ? [] : {})) as Record<string | number, unknown>;
  const copy = (Array.isArray(container) ? [...container] : { ...container }) as Record<string | number, unknown>;
  // undefined at an object key removes it (an optional field left empty).
  if (rest.length === 0 && value === undefined && !Array.isArray(container)) delete copy[head];
  else copy[head] = setIn(container[head], rest, value);
  return copy as T;
}

/**
 * The editor's one auto-layout (on load of a file without positions, and the Auto-layout command):
 * stages left to right in execution order, datasets under the Model (editor/stage-layout.ts).
 */
export function layeredLayout(p: Pipeline): Record<string, Position> {
  return stageLayout(p);
}

export type GraphStore = StoreApi<GraphState>;

export function createGraphStore(initial: Pipeline = emptyPipeline()): GraphStore {
  return createStore<GraphState>()((set, get) => {
    /** Applies an undoable edit: the current pipeline goes on the undo stack. */
    const commit = (next: Pipeline, extra: Partial<GraphState> = {}) => {
      const { pipeline, past, revision } = get();
      if (next === pipeline) return;
      set({ pipeline: next, past: [...past, pipeline].slice(-HISTORY_LIMIT), future: [], revision: revision + 1, ...extra });
    };

    return {
      pipeline: initial,
      selection: [],
      selectedLinks: [],
      past: [],
      future: [],
      clipboard: null,
      gestureStart: null,
      revision: 0,
      loads: 0,
      pristineRevision: null,

      load(pipeline, options) {
        const next = pipeline.layout?.nodes && Object.keys(pipeline.layout.nodes).length >= pipeline.nodes.length
          ? pipeline
          : withPositions(pipeline, { ...layeredLayout(pipeline), ...(pipeline.layout?.nodes ?? {}) });
        if (options?.resetHistory) set({ pipeline: next, past: [], future: [], selection: [], revision: get().revision + 1, loads: get().loads + 1 });
        else commit(next, { selection: [], loads: get().loads + 1 });
        set({ pristineRevision: options?.pristine ? get().revision : null });
      },

      addNode(kind, position) {
        const p = get().pipeline;
        const id = freshId(p, kind);
        const node = { id, kind, params: defaultParams(kind) } as PipelineNode;
        commit(withPositions({ ...p, nodes: [...p.nodes, node] }, { ...positionsOf(p), [id]: position }), { selection: [id] });
        return id;
      },

      removeNodes(ids) {
        if (!ids.length) return;
        const p = get().pipeline;
        const gone = new Set(ids);
        const positions = { ...positionsOf(p) };
        for (const id of ids) delete positions[id];
        commit(withPositions({
          ...p,
          nodes: p.nodes.filter((n) => !gone.has(n.id)),
          links: p.links.filter((l) => !gone.has(l.from) && !gone.has(l.to)),
        }, positions), { selection: get().selection.filter((id) => !gone.has(id)) });
      },

      connect(from, to) {
        const p = get().pipeline;
        const check = checkConnection(p, from, to);
        if (check.ok) commit({ ...p, links: [...p.links, { from, to }] });
        return check;
      },

      disconnect(from, to) {
        const p = get().pipeline;
        const links = p.links.filter((l) => !(l.from === from && l.to === to));
        if (links.length !== p.links.length) commit({ ...p, links });
      },

      setParam(id, path, value) {
        const p = get().pipeline;
        const index = p.nodes.findIndex((n) => n.id === id);
        if (index < 0) return;
        const node = p.nodes[index];
        const params = setIn(node.params, path, value);
        const nodes = [...p.nodes];
        nodes[index] = { ...node, params } as PipelineNode;
        commit({ ...p, nodes });
      },

      setLabel(id, label) {
        const p = get().pipeline;
        const nodes = p.nodes.map((n) => {
          if (n.id !== id) return n;
          const copy = { ...n };
          if (label.trim()) copy.label = label; else delete copy.label;
          return copy;
        });
        commit({ ...p, nodes });
      },

      setInfo(info) {
        const p = get().pipeline;
        commit({ ...p, info: { ...p.info, ...info } });
      },

      setTop(key, value) {
        commit({ ...get().pipeline, [key]: value } as Pipeline);
      },

      beginGesture() {
        set({ gestureStart: get().pipeline });
      },

      moveNodes(positions) {
        const p = get().pipeline;
        const next = withPositions(p, { ...positionsOf(p), ...positions });
        if (get().gestureStart) set({ pipeline: next, revision: get().revision + 1 });
        else commit(next);
      },

      endGesture() {
        const start = get().gestureStart;
        if (!start) return;
        const { pipeline, past } = get();
        set({ gestureStart: null, ...(pipeline !== start ? { past: [...past, start].slice(-HISTORY_LIMIT), future: [] } : {}) });
      },

      select(ids) {
        set({ selection: ids });
      },

      selectLinks(ids) {
        set({ selectedLinks: ids });
      },

      deleteSelection() {
        const { pipeline: p, selection, selectedLinks } = get();
        if (!selection.length && !selectedLinks.length) return;
        const gone = new Set(selection);
        const cut = new Set(selectedLinks);
        const positions = { ...positionsOf(p) };
        for (const id of selection) delete positions[id];
        commit(withPositions({
          ...p,
          nodes: p.nodes.filter((n) => !gone.has(n.id)),
          links: p.links.filter((l) => !gone.has(l.from) && !gone.has(l.to) && !cut.has(`${l.from}->${l.to}`)),
        }, positions), { selection: [], selectedLinks: [] });
      },

      renameNode(id, next) {
        const p = get().pipeline;
        if (next === id) return null;
        if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(next)) return 'id: letters, digits, _ . - only, starting with a letter or digit';
        if (p.nodes.some((n) => n.id === next)) return `id: '${next}' is already used by another node`;
        const positions = { ...positionsOf(p) };
        if (positions[id]) { positions[next] = positions[id]; delete positions[id]; }
        const swap = (x: string) => (x === id ? next : x);
        commit(withPositions({
          ...p,
          nodes: p.nodes.map((n) => (n.id === id ? ({ ...n, id: next } as PipelineNode) : n)),
          links: p.links.map((l) => ({ from: swap(l.from), to: swap(l.to) })),
        }, positions), { selection: get().selection.map(swap) });
        return null;
      },

      undo() {
        const { past, future, pipeline, revision } = get();
        if (!past.length) return;
        const previous = past[past.length - 1];
        set({ pipeline: previous, past: past.slice(0, -1), future: [pipeline, ...future], revision: revision + 1, selection: keepExisting(get().selection, previous) });
      },

      redo() {
        const { past, future, pipeline, revision } = get();
        if (!future.length) return;
        const next = future[0];
        set({ pipeline: next, past: [...past, pipeline], future: future.slice(1), revision: revision + 1, selection: keepExisting(get().selection, next) });
      },

      copy() {
        const { pipeline: p, selection } = get();
        if (!selection.length) return;
        const chosen = new Set(selection);
        const positions: Record<string, Position> = {};
        for (const id of selection) positions[id] = positionsOf(p)[id] ?? { x: 0, y: 0 };
        set({
          clipboard: {
            nodes: structuredClone(p.nodes.filter((n) => chosen.has(n.id))),
            links: p.links.filter((l) => chosen.has(l.from) && chosen.has(l.to)),
            positions,
          },
        });
      },

      paste() {
        const { clipboard, pipeline: p } = get();
        if (!clipboard?.nodes.length) return;
        const rename = new Map<string, string>();
        const taken = new Set<string>();
        for (const node of clipboard.nodes) {
          const id = freshId(p, node.kind, taken);
          taken.add(id);
          rename.set(node.id, id);
        }
        const nodes = clipboard.nodes.map((n) => ({ ...structuredClone(n), id: rename.get(n.id)! }) as PipelineNode);
        const links = clipboard.links.map((l) => ({ from: rename.get(l.from)!, to: rename.get(l.to)! }));
        const positions = { ...positionsOf(p) };
        for (const [old, id] of rename) {
          const at = clipboard.positions[old];
          positions[id] = { x: at.x + 40, y: at.y + 40 };
        }
        commit(withPositions({ ...p, nodes: [...p.nodes, ...nodes], links: [...p.links, ...links] }, positions), { selection: [...rename.values()] });
      },

      autoLayout() {
        const p = get().pipeline;
        commit(withPositions(p, layeredLayout(p)));
      },
    };
  });
}

function keepExisting(selection: string[], p: Pipeline): string[] {
  const ids = new Set(p.nodes.map((n) => n.id));
  return selection.filter((id) => ids.has(id));
}

// Selectors
/** True when the canvas holds work that is not a template, file or run as loaded. */
export const selectIsEditedDraft = (s: GraphState) => s.pipeline.nodes.length > 0 && s.pristineRevision !== s.revision;
export const selectPipeline = (s: GraphState) => s.pipeline;
export const selectSelection = (s: GraphState) => s.selection;
export const selectSelectedLinks = (s: GraphState) => s.selectedLinks;
export const selectRevision = (s: GraphState) => s.revision;
export const selectCanUndo = (s: GraphState) => s.past.length > 0;
export const selectCanRedo = (s: GraphState) => s.future.length > 0;
