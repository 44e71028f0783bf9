// Pipeline validation: every problem with the exact JSON path of the offending value.
//
// Design choices:
// - Three passes, each only over what the previous one found well-formed: shape (types,
//   fields and ranges, driven by NODE_SPECS: validate-fields.ts), graph (links, ports by
//   linkPort, cycles), then meaning (layer ranges against the model, replacing twice, what is
//   trainable at each Train, with nodes applied as core/model-state.ts says).
// - Never throws, whatever the input; a value the first pass rejects is not re-reported
//   by later passes.
// - Messages are one line and name the expected form, so the CLI can print them as-is.
//
// Owned by core/: no Node, DOM or Electron imports here.
import type { ValidationProblem } from './api';
import type { NodeKind, Pipeline, PipelineLink, PipelineNode } from './schema';
import { NODE_KINDS, PIPELINE_VERSION } from './schema';
import { ATTN_ENTROPY_CPU_ONLY, NODE_SPECS, isNodeKind, kindsTaking, linkPort } from './nodes';
import type { FieldSpec, PortRefusal } from './nodes';
import { compareIds } from './order';
import { applyNode, hasTrainable, initialModelState, layerRangeOf, type ModelState } from './model-state';
import { Problems, ROOT_PATH, checkField, checkFields, checkNumber, checkObject, checkParamsTogether, childPath, describeType, isRecord } from './validate-fields';

export { childPath, describeType, ROOT_PATH } from './validate-fields';

export const TOP_LEVEL_FIELDS = ['$schema', 'version', 'info', 'seed', 'backend', 'nodes', 'links', 'layout'] as const;
/** `$schema` names the file's JSON Schema for editors (core/json-schema.ts); the runner ignores it. */
const OPTIONAL_TOP_LEVEL = new Set(['$schema', 'layout']);
const INFO_FIELDS = ['name', 'author', 'description'] as const;
const NODE_FIELDS = ['id', 'kind', 'label', 'params'] as const;
const LINK_FIELDS = ['from', 'to'] as const;
const MAX_SEED = 4294967295;

function checkInfo(problems: Problems, value: unknown): void {
  if (!isRecord(value)) { problems.add('info', `expected an object {name, author, description}, got ${describeType(value)}`); return; }
  checkFields(problems, 'info', value, INFO_FIELDS, new Set());
  for (const key of INFO_FIELDS) {
    if (key in value && typeof value[key] !== 'string') problems.add(childPath('info', key), `expected a string, got ${describeType(value[key])}`);
  }
  if (typeof value.name === 'string' && value.name.trim() === '') problems.add('info.name', 'must not be empty');
}

function checkLayout(problems: Problems, value: unknown, nodeIds: ReadonlySet<string>): void {
  if (!isRecord(value)) { problems.add('layout', `expected an object {nodes, viewport?}, got ${describeType(value)}`); return; }
  checkFields(problems, 'layout', value, ['nodes', 'viewport'], new Set(['viewport']));
  const finite: FieldSpec = { type: 'number', label: '', help: '' };
  if ('nodes' in value) {
    if (!isRecord(value.nodes)) problems.add('layout.nodes', `expected an object of node id -> {x, y}, got ${describeType(value.nodes)}`);
    else {
      for (const [id, pos] of Object.entries(value.nodes)) {
        const at = childPath('layout.nodes', id);
        if (!nodeIds.has(id)) problems.add(at, `no node with id '${id}'`);
        if (!isRecord(pos)) { problems.add(at, `expected {x, y}, got ${describeType(pos)}`); continue; }
        checkFields(problems, at, pos, ['x', 'y'], new Set());
        for (const axis of ['x', 'y']) if (axis in pos) checkNumber(problems, childPath(at, axis), pos[axis], finite);
      }
    }
  }
  if ('viewport' in value) {
    const vp = value.viewport;
    if (!isRecord(vp)) { problems.add('layout.viewport', `expected {x, y, zoom}, got ${describeType(vp)}`); return; }
    checkFields(problems, 'layout.viewport', vp, ['x', 'y', 'zoom'], new Set());
    for (const axis of ['x', 'y']) if (axis in vp) checkNumber(problems, childPath('layout.viewport', axis), vp[axis], finite);
    if ('zoom' in vp) checkNumber(problems, 'layout.viewport.zoom', vp.zoom, { type: 'number', label: '', help: '', min: 0, minExclusive: true });
  }
}

interface IndexedNode { node: PipelineNode; index: number; paramsOk: boolean }
interface IndexedLink { link: PipelineLink; index: number }

interface NodeScan {
  /** Nodes with a unique id and a known kind: what the graph passes work on. */
  usable: IndexedNode[];
  /** Every id written in the file, usable or not (a link to a broken node is not "missing"). */
  allIds: Set<string>;
  /** false when some entry was dropped from `usable`; the graph passes then stay quiet. */
  complete: boolean;
}

/** Shape pass over nodes. */
function checkNodes(problems: Problems, value: unknown): NodeScan | null {
  if (!Array.isArray(value)) { problems.add('nodes', `expected an array of nodes, got ${describeType(value)}`); return null; }
  const usable: IndexedNode[] = [];
  const allIds = new Set<string>();
  const firstIndex = new Map<string, number>();
  value.forEach((raw, index) => {
    const at = childPath('nodes', index);
    if (!isRecord(raw)) { problems.add(at, `expected a node object {id, kind, params}, got ${describeType(raw)}`); return; }
    const id = typeof raw.id === 'string' && raw.id.trim() !== '' ? raw.id : undefined;
    if (id !== undefined) allIds.add(id);
    checkFields(problems, at, raw, NODE_FIELDS, new Set(['label']), id);
    if ('id' in raw && id === undefined) problems.add(childPath(at, 'id'), `expected a non-empty string, got ${describeType(raw.id)}`);
    if (id !== undefined && firstIndex.has(id)) {
      problems.add(childPath(at, 'id'), `duplicate node id '${id}' (also nodes[${firstIndex.get(id)}])`, id);
      return;
    }
    if (id !== undefined) firstIndex.set(id, index);
    if ('label' in raw && typeof raw.label !== 'string') problems.add(childPath(at, 'label'), `expected a string, got ${describeType(raw.label)}`, id);
    if (!('kind' in raw)) return;
    if (!isNodeKind(raw.kind)) {
      problems.add(childPath(at, 'kind'), `unknown node kind ${describeType(raw.kind)} (expected one of: ${NODE_KINDS.join(', ')})`, id);
      return;
    }
    const kind: NodeKind = raw.kind;
    let paramsOk = false;
    if ('params' in raw) {
      const fields = NODE_SPECS[kind].fields as Record<string, FieldSpec>;
      paramsOk = checkObject(problems, childPath(at, 'params'), raw.params, fields, `${NODE_SPECS[kind].label} params`, id);
      if (paramsOk) checkParamsTogether(problems, childPath(at, 'params'), raw as unknown as PipelineNode);
    }
    if (id !== undefined) usable.push({ node: raw as unknown as PipelineNode, index, paramsOk });
  });
  return { usable, allIds, complete: usable.length === value.length };
}

function checkLinks(problems: Problems, value: unknown, byId: ReadonlyMap<string, IndexedNode>, allIds: ReadonlySet<string>): IndexedLink[] | null {
  if (!Array.isArray(value)) { problems.add('links', `expected an array of links {from, to}, got ${describeType(value)}`); return null; }
  const usable: IndexedLink[] = [];
  const seen = new Map<string, number>();
  value.forEach((raw, index) => {
    const at = childPath('links', index);
    if (!isRecord(raw)) { problems.add(at, `expected a link object {from, to}, got ${describeType(raw)}`); return; }
    if (!checkFields(problems, at, raw, LINK_FIELDS, new Set())) return;
    let ok = true;
    for (const end of LINK_FIELDS) {
      const id = raw[end];
      if (typeof id !== 'string') { problems.add(childPath(at, end), `expected a node id string, got ${describeType(id)}`); ok = false; }
      else if (!allIds.has(id)) { problems.add(childPath(at, end), `no node with id '${id}'`); ok = false; }
      else if (!byId.has(id)) ok = false; // the node itself is broken and reported as such
    }
    if (!ok) return;
    const link = { from: raw.from as string, to: raw.to as string };
    if (link.from === link.to) { problems.add(at, `node '${link.from}' is linked to itself`, link.from); return; }
    const key = JSON.stringify([link.from, link.to]);
    if (seen.has(key)) { problems.add(at, `duplicate of links[${seen.get(key)}] ('${link.from}' -> '${link.to}')`, link.to); return; }
    seen.set(key, index);
    const from = NODE_SPECS[byId.get(link.from)!.node.kind];
    const to = NODE_SPECS[byId.get(link.to)!.node.kind];
    const rule = linkPort(from.kind, to.kind);
    if (!rule.ok) {
      const id = rule.end === 'from' ? link.from : link.to;
      problems.add(childPath(at, rule.end), portMessage(rule, from.label, link.from, to.label, link.to), id);
      return;
    }
    usable.push({ link, index });
  });
  return usable;
}

function portMessage(refusal: PortRefusal, fromLabel: string, from: string, toLabel: string, to: string): string {
  switch (refusal.problem) {
    case 'no_output': return `${fromLabel} node '${from}' has no output`;
    case 'no_input': return `${toLabel} node '${to}' takes no input`;
    case 'wrong_port': {
      const takers = kindsTaking(refusal.port).map((k) => NODE_SPECS[k].label).join(' or ');
      const what = refusal.port === 'data' ? `data from ${fromLabel} '${from}'` : `the model state of ${fromLabel} '${from}'`;
      return `${what} can only go to a ${takers} node, not ${toLabel} '${to}'`;
    }
  }
}

/** Terminal kinds (no output, like Export) hang off the model chain instead of continuing it. */
function isLeaf(kind: NodeKind): boolean {
  return NODE_SPECS[kind].output === null;
}

/** Finds one cycle among the links; returns the index of a link on it and the node ids around it. */
function findCycle(nodes: readonly IndexedNode[], links: readonly IndexedLink[]): { linkIndex: number; ids: string[] } | null {
  const out = new Map<string, IndexedLink[]>(nodes.map((n) => [n.node.id, []]));
  for (const l of links) out.get(l.link.from)!.push(l);
  const state = new Map<string, 'open' | 'done'>();
  const stack: { id: string; via: IndexedLink | null }[] = [];
  const visit = (id: string, via: IndexedLink | null): { linkIndex: number; ids: string[] } | null => {
    state.set(id, 'open');
    stack.push({ id, via });
    for (const l of out.get(id)!) {
      const to = l.link.to;
      if (state.get(to) === 'open') {
        const start = stack.findIndex((s) => s.id === to);
        const ids = stack.slice(start).map((s) => s.id);
        return { linkIndex: l.index, ids: [...ids, to] };
      }
      if (!state.has(to)) { const found = visit(to, l); if (found) return found; }
    }
    stack.pop();
    state.set(id, 'done');
    return null;
  };
  // Start from the Model so the reported link is the one that leads back up the chain.
  const rank = (n: IndexedNode) => (n.node.kind === 'model' ? 0 : 1);
  for (const n of [...nodes].sort((a, b) => rank(a) - rank(b) || compareIds(a.node.id, b.node.id))) {
    if (!state.has(n.node.id)) { const found = visit(n.node.id, null); if (found) return found; }
  }
  return null;
}

/** Graph pass: one Model, every node connected, the right inputs, a model chain without forks or cycles. */
/** A file that names the cuda backend holds nothing only the cpu backend runs. */
function checkCudaBackend(problems: Problems, nodes: readonly IndexedNode[]): void {
  for (const { node, index, paramsOk } of nodes) {
    if (!paramsOk || node.kind !== 'train' || !((node.params.attn_entropy_weight ?? 0) > 0)) continue;
    problems.add(childPath(childPath(childPath('nodes', index), 'params'), 'attn_entropy_weight'),
      `${ATTN_ENTROPY_CPU_ONLY}, but this pipeline's backend is cuda (set backend to auto or cpu, or this weight to 0)`, node.id);
  }
}

function checkGraph(problems: Problems, nodes: readonly IndexedNode[], links: readonly IndexedLink[]): boolean {
  const before = problems.count;
  const models = nodes.filter((n) => n.node.kind === 'model');
  if (models.length === 0) problems.add('nodes', 'a pipeline needs exactly one Model node (found none)');
  for (const extra of models.slice(1)) {
    problems.add(childPath(childPath('nodes', extra.index), 'kind'), `a pipeline needs exactly one Model node; '${extra.node.id}' is a second one (first: '${models[0].node.id}')`, extra.node.id);
  }
  const kindOf = new Map(nodes.map((n) => [n.node.id, n.node.kind]));
  const modelIn = new Map<string, string[]>(nodes.map((n) => [n.node.id, []]));
  const dataIn = new Map<string, string[]>(nodes.map((n) => [n.node.id, []]));
  const chainOut = new Map<string, string[]>(nodes.map((n) => [n.node.id, []]));
  const connected = new Set<string>();
  for (const { link } of links) {
    connected.add(link.from).add(link.to);
    if (NODE_SPECS[kindOf.get(link.from)!].output === 'data') dataIn.get(link.to)!.push(link.from);
    else {
      modelIn.get(link.to)!.push(link.from);
      if (!isLeaf(kindOf.get(link.to)!)) chainOut.get(link.from)!.push(link.to);
    }
  }
  const quote = (ids: string[]) => ids.map((id) => `'${id}'`).join(', ');
  for (const { node, index } of nodes) {
    const at = childPath('nodes', index);
    const label = NODE_SPECS[node.kind].label;
    if (!connected.has(node.id)) {
      problems.add(at, `${label} node '${node.id}' is not connected to anything`, node.id);
      continue;
    }
    const inputs = NODE_SPECS[node.kind].inputs;
    const models = modelIn.get(node.id)!;
    if (inputs.includes('model')) {
      if (models.length === 0) problems.add(at, `${label} node '${node.id}' has no model-state input (link it from the Model chain)`, node.id);
      if (models.length > 1) problems.add(at, `${label} node '${node.id}' has ${models.length} model-state inputs (${quote(models)}); a node takes exactly one`, node.id);
    }
    if (inputs.includes('data')) {
      const data = dataIn.get(node.id)!;
      if (data.length === 0) problems.add(at, `${label} node '${node.id}' needs a data link from a Dataset node`, node.id);
      if (data.length > 1) problems.add(at, `${label} node '${node.id}' has ${data.length} data links (${quote(data)}); it takes one`, node.id);
    }
    const next = chainOut.get(node.id)!;
    if (next.length > 1) {
      problems.add(at, `model state of '${node.id}' flows on to ${next.length} nodes (${quote(next)}); it may continue to one node (plus Export nodes)`, node.id);
    }
    if (NODE_SPECS[node.kind].role === 'gate' && models.length === 1 && NODE_SPECS[kindOf.get(models[0])!].role !== 'train') {
      problems.add(at, `Gate '${node.id}' must follow a Train node directly (its input is ${NODE_SPECS[kindOf.get(models[0])!].label} '${models[0]}')`, node.id);
    }
  }
  const cycle = findCycle(nodes, links);
  if (cycle) {
    const first = cycle.ids[0];
    problems.add(childPath('links', cycle.linkIndex), `cycle: ${cycle.ids.map((id) => `'${id}'`).join(' -> ')}`, first);
  }
  return problems.count === before;
}

/** Layer ranges that reach past the model's depth; returns the ids of the nodes that do. */
function checkLayerRanges(problems: Problems, nodes: readonly IndexedNode[]): Set<string> {
  const beyond = new Set<string>();
  const model = nodes.find((n) => n.node.kind === 'model' && n.paramsOk);
  if (!model || model.node.kind !== 'model') return beyond;
  const numLayers = model.node.params.num_layers;
  for (const { node, index, paramsOk } of nodes) {
    const range = paramsOk ? layerRangeOf(node) : null;
    if (range === null || range === 'all') continue;
    const [first, last] = range;
    if (last > numLayers) {
      problems.add(childPath(childPath(childPath('nodes', index), 'params'), 'layers'), `layer ${last} is past the model's ${numLayers} layers (range ${first}-${last})`, node.id);
      beyond.add(node.id);
    }
  }
  return beyond;
}

/** Meaning pass, walking the model chain in order: layer ranges, replacements, trainability. */
function checkChain(problems: Problems, nodes: readonly IndexedNode[], links: readonly IndexedLink[], beyondModel: ReadonlySet<string>): void {
  const model = nodes.find((n) => n.node.kind === 'model')!;
  if (!model.paramsOk || model.node.kind !== 'model') return;
  const numLayers = model.node.params.num_layers;
  const byId = new Map(nodes.map((n) => [n.node.id, n]));
  const next = new Map<string, string>();
  for (const { link } of links) {
    if (NODE_SPECS[byId.get(link.from)!.node.kind].output !== 'data' && !isLeaf(byId.get(link.to)!.node.kind)) next.set(link.from, link.to);
  }
  const leavesOf = new Map<string, string[]>();
  for (const { link } of links) {
    if (isLeaf(byId.get(link.to)!.node.kind)) leavesOf.set(link.from, [...(leavesOf.get(link.from) ?? []), link.to]);
  }
  const chain: IndexedNode[] = [];
  for (let id: string | undefined = model.node.id; id !== undefined; id = next.get(id)) {
    chain.push(byId.get(id)!);
    for (const e of leavesOf.get(id) ?? []) chain.push(byId.get(e)!);
  }
  const state = initialModelState(numLayers);
  for (const { node, index, paramsOk } of chain) {
    if (!paramsOk || beyondModel.has(node.id)) return; // later state depends on this node; stop rather than guess
    const problem = chainProblem(state, node);
    if (problem) {
      const at = childPath('nodes', index);
      problems.add(problem.inLayers ? childPath(childPath(at, 'params'), 'layers') : at, problem.message, node.id);
      if (problem.inLayers) return;
    }
    applyNode(state, node);
  }
}

/** What the chain walk finds wrong with a node, given the model state before it. */
function chainProblem(state: ModelState, node: PipelineNode): { message: string; inLayers: boolean } | null {
  switch (node.kind) {
    case 'replace': {
      const [first, last] = node.params.layers;
      for (let l = first; l <= last; l++) {
        const layer = state.layers[l - 1];
        if (layer.attention === 'sparse') return { message: `layer ${l} was already replaced by '${layer.replacedBy}'; replace each layer once`, inLayers: true };
      }
      return null;
    }
    case 'unfreeze': {
      const [first, last] = node.params.layers;
      for (let l = first; node.params.replaced_only && l <= last; l++) {
        if (state.layers[l - 1].attention !== 'sparse') {
          return { message: `layer ${l} is not replaced before this node, but replaced_only is set: replace it earlier or narrow the range`, inLayers: true };
        }
      }
      return null;
    }
    case 'train':
      if (hasTrainable(state)) return null;
      return { message: `nothing is trainable at Train '${node.id}': every parameter is frozen (add an Unfreeze, or a Replace with selector 'indexer')`, inLayers: false };
    case 'model':
    case 'dataset':
    case 'freeze':
    case 'distill':
    case 'gate':
    case 'export':
      return null;
  }
}

/** Every problem in `value` as a v1 pipeline; an empty list means it is valid. */
export function validatePipeline(value: unknown): ValidationProblem[] {
  const problems = new Problems();
  if (!isRecord(value)) {
    problems.add(ROOT_PATH, `a pipeline must be a JSON object, got ${describeType(value)}`);
    return problems.result();
  }
  const version = value.version;
  if (!('version' in value)) {
    problems.add('version', `missing required field (this build reads version ${PIPELINE_VERSION})`);
  } else if (typeof version !== 'number' || !Number.isInteger(version)) {
    problems.add('version', `expected an integer version, got ${describeType(version)}`);
  } else if (version > PIPELINE_VERSION) {
    problems.add('version', `version ${version} is newer than this build reads (it reads version ${PIPELINE_VERSION} and older); update Sparse Studio`);
    return problems.result(); // fields of a future format are not ours to judge
  } else if (version < PIPELINE_VERSION) {
    problems.add('version', `version ${version} is not read directly (this build reads version ${PIPELINE_VERSION}; importing the file migrates older versions it knows)`);
    return problems.result();
  }
  checkFields(problems, '', value, TOP_LEVEL_FIELDS, OPTIONAL_TOP_LEVEL);
  if ('$schema' in value && typeof value.$schema !== 'string') problems.add('$schema', `expected a string (the JSON Schema's path or URL), got ${describeType(value.$schema)}`);
  if ('info' in value) checkInfo(problems, value.info);
  if ('seed' in value) checkNumber(problems, 'seed', value.seed, { type: 'integer', label: '', help: '', min: 0, max: MAX_SEED });
  if ('backend' in value) checkField(problems, 'backend', value.backend, { type: 'enum', label: '', help: '', options: ['auto', 'cpu', 'cuda'] });
  const scan = 'nodes' in value ? checkNodes(problems, value.nodes) : null;
  const nodes = scan?.usable ?? [];
  const byId = new Map(nodes.map((n) => [n.node.id, n]));
  const links = scan && 'links' in value ? checkLinks(problems, value.links, byId, scan.allIds) : null;
  if ('layout' in value) checkLayout(problems, value.layout, scan?.allIds ?? new Set());
  if (value.backend === 'cuda') checkCudaBackend(problems, nodes);
  // A dropped node would make its neighbours look unlinked: fix the nodes first.
  if (!scan || !scan.complete || !links) return problems.result();
  const beyondModel = checkLayerRanges(problems, nodes);
  if (checkGraph(problems, nodes, links)) checkChain(problems, nodes, links, beyondModel);
  return problems.result();
}

/** Narrowing helper: throws one line with the first problem. */
export function assertValidPipeline(value: unknown): asserts value is Pipeline {
  const problems = validatePipeline(value);
  if (problems.length > 0) {
    const first = problems[0];
    throw new Error(`invalid pipeline: ${first.path}: ${first.message}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}`);
  }
}
