// Pipeline validation: every problem with the exact JSON path of the offending value.
//
// Design choices:
// - Three passes, each only over what the previous one found well-formed: shape (types,
//   fields and ranges, driven by NODE_SPECS), graph (links, ports, cycles), then meaning
//   (layer ranges against the model, replacing twice, what is trainable at each Train).
// - Never throws, whatever the input; a value the first pass rejects is not re-reported
//   by later passes.
// - Messages are one line and name the expected form, so the CLI can print them as-is.
//
// Owned by core/: no Node, DOM or Electron imports here.
import type { ValidationProblem } from './api';
import type { NodeKind, Pipeline, PipelineLink, PipelineNode } from './schema';
import { GATE_METRICS, NODE_KINDS, PARAM_KINDS, PIPELINE_VERSION } from './schema';
import { GATE_METRIC_SPECS, MASK_FIELDS, NODE_SPECS, isNodeKind, kindsTaking, linkPort } from './nodes';
import type { FieldSpec, PortRefusal } from './nodes';
import { compareIds } from './order';
import { applyNode, hasTrainable, initialModelState } from './model-state';

export const TOP_LEVEL_FIELDS = ['version', 'info', 'seed', 'backend', 'nodes', 'links', 'layout'] as const;
const OPTIONAL_TOP_LEVEL = new Set(['layout']);
const INFO_FIELDS = ['name', 'author', 'description'] as const;
const NODE_FIELDS = ['id', 'kind', 'label', 'params'] as const;
const LINK_FIELDS = ['from', 'to'] as const;
const MAX_SEED = 4294967295;

class Problems {
  readonly list: ValidationProblem[] = [];
  add(path: string, message: string, node?: string): void {
    this.list.push(node === undefined ? { path, message } : { path, message, node });
  }
}

/** `base.key`, or `base["odd key"]` when the key is not an identifier. */
export function childPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  const part = /^[A-Za-z_$][\w$]*$/.test(key) ? key : JSON.stringify(key);
  if (base === '') return part.startsWith('"') ? `[${part}]` : part;
  return part.startsWith('"') ? `${base}[${part}]` : `${base}.${part}`;
}

/** Path shown for the document itself. */
export const ROOT_PATH = '$';

export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '...' : value);
  if (typeof value === 'number') return Number.isFinite(value) ? `the number ${value}` : String(value);
  return `a ${typeof value} (${String(value)})`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reports fields outside `known` and missing required ones; returns false if any are missing. */
function checkFields(problems: Problems, path: string, value: Record<string, unknown>, known: readonly string[],
  optional: ReadonlySet<string>, node?: string): boolean {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) problems.add(childPath(path, key), `unknown field '${key}' (expected one of: ${known.join(', ')})`, node);
  }
  let complete = true;
  for (const key of known) {
    if (!(key in value) && !optional.has(key)) {
      problems.add(childPath(path, key), 'missing required field', node);
      complete = false;
    }
  }
  return complete;
}

function rangeText(spec: FieldSpec): string {
  const lo = spec.min === undefined ? null : `${spec.minExclusive ? '>' : '>='} ${spec.min}`;
  const hi = spec.max === undefined ? null : `${spec.maxExclusive ? '<' : '<='} ${spec.max}`;
  if (lo && hi) return `in ${spec.minExclusive ? '(' : '['}${spec.min}, ${spec.max}${spec.maxExclusive ? ')' : ']'}`;
  return lo ?? hi ?? 'finite';
}

function inRange(spec: FieldSpec, n: number): boolean {
  if (spec.min !== undefined && (spec.minExclusive ? n <= spec.min : n < spec.min)) return false;
  if (spec.max !== undefined && (spec.maxExclusive ? n >= spec.max : n > spec.max)) return false;
  return true;
}

function checkNumber(problems: Problems, path: string, value: unknown, spec: FieldSpec, node?: string): boolean {
  const integer = spec.type === 'integer';
  if (typeof value !== 'number') {
    problems.add(path, `expected ${integer ? 'an integer' : 'a number'}, got ${describeType(value)}`, node);
    return false;
  }
  if (!Number.isFinite(value)) {
    problems.add(path, `must be a finite number (got ${value})`, node);
    return false;
  }
  if (integer && !Number.isInteger(value)) {
    problems.add(path, `must be a whole number (got ${value})`, node);
    return false;
  }
  if (spec.powerOfTwo && (value < 1 || (value & (value - 1)) !== 0 || !inRange(spec, value))) {
    problems.add(path, `must be a power of two ${rangeText(spec)} (got ${value})`, node);
    return false;
  }
  if (!inRange(spec, value)) {
    problems.add(path, `must be ${rangeText(spec)} (got ${value})`, node);
    return false;
  }
  return true;
}

function checkLayerRange(problems: Problems, path: string, value: unknown, node?: string): boolean {
  if (!Array.isArray(value) || value.length !== 2) {
    problems.add(path, `expected a layer range [first, last], got ${describeType(value)}`, node);
    return false;
  }
  for (let i = 0; i < 2; i++) {
    const v = value[i];
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      problems.add(childPath(path, i), `expected a whole layer number, got ${describeType(v)}`, node);
      return false;
    }
    if (v < 1) {
      problems.add(childPath(path, i), `layers are numbered from 1 (got ${v})`, node);
      return false;
    }
  }
  if (value[0] > value[1]) {
    problems.add(path, `range is reversed: first ${value[0]} > last ${value[1]}`, node);
    return false;
  }
  return true;
}

function checkKinds(problems: Problems, path: string, value: unknown, options: readonly string[], node?: string): boolean {
  if (!Array.isArray(value) || value.length === 0) {
    problems.add(path, `expected a non-empty list of parameter kinds (${options.join(', ')}), got ${describeType(value)}`, node);
    return false;
  }
  let ok = true;
  value.forEach((k, i) => {
    if (typeof k !== 'string' || !options.includes(k)) {
      const known = typeof k === 'string' && (PARAM_KINDS as readonly string[]).includes(k);
      problems.add(childPath(path, i), `${known ? `parameter kind '${k}' does not apply here` : `unknown parameter kind ${describeType(k)}`} (expected one of: ${options.join(', ')})`, node);
      ok = false;
    } else if (value.indexOf(k) !== i) {
      problems.add(childPath(path, i), `'${k}' is listed twice`, node);
      ok = false;
    }
  });
  return ok;
}

function checkSource(problems: Problems, path: string, value: unknown, builtins: readonly string[], allowInit: boolean, node?: string): boolean {
  if (typeof value !== 'string' || value.trim() === '') {
    problems.add(path, `expected ${builtins.map((b) => `'${b}'`).join(' or ')}${allowInit ? ", 'init:<config.json>'" : ''} or a path, got ${describeType(value)}`, node);
    return false;
  }
  if (value.startsWith('builtin:') && !builtins.includes(value)) {
    problems.add(path, `unknown built-in '${value}' (this build has: ${builtins.join(', ')})`, node);
    return false;
  }
  if (value.startsWith('init:')) {
    if (!allowInit) {
      problems.add(path, "'init:' sources are for models only", node);
      return false;
    }
    if (value.slice('init:'.length).trim() === '') {
      problems.add(path, "'init:' needs the path of a config.json after it", node);
      return false;
    }
  }
  return true;
}

function checkCurriculum(problems: Problems, path: string, value: unknown, node?: string): boolean {
  if (!Array.isArray(value) || value.length === 0) {
    problems.add(path, `expected a non-empty list of {from_step, seq_len}, got ${describeType(value)}`, node);
    return false;
  }
  let ok = true;
  let previous = -1;
  value.forEach((entry, i) => {
    const at = childPath(path, i);
    if (!isRecord(entry)) {
      problems.add(at, `expected {from_step, seq_len}, got ${describeType(entry)}`, node);
      ok = false;
      return;
    }
    if (!checkFields(problems, at, entry, ['from_step', 'seq_len'], new Set(), node)) { ok = false; return; }
    const stepOk = checkNumber(problems, childPath(at, 'from_step'), entry.from_step, { type: 'integer', label: '', help: '', min: 0 }, node);
    const lenOk = checkNumber(problems, childPath(at, 'seq_len'), entry.seq_len, { type: 'integer', label: '', help: '', min: 2 }, node);
    if (!stepOk || !lenOk) { ok = false; return; }
    const from = entry.from_step as number;
    if (i === 0 && from !== 0) {
      problems.add(childPath(at, 'from_step'), `the curriculum must start at step 0 (got ${from})`, node);
      ok = false;
    } else if (i > 0 && from <= previous) {
      problems.add(childPath(at, 'from_step'), `must be sorted: step ${from} does not come after ${previous}`, node);
      ok = false;
    }
    previous = from;
  });
  return ok;
}

function checkGateChecks(problems: Problems, path: string, value: unknown, node?: string): boolean {
  if (!Array.isArray(value) || value.length === 0) {
    problems.add(path, `a Gate needs at least one check {metric, op, threshold}, got ${Array.isArray(value) ? 'an empty list' : describeType(value)}`, node);
    return false;
  }
  let ok = true;
  value.forEach((check, i) => {
    const at = childPath(path, i);
    if (!isRecord(check)) {
      problems.add(at, `expected {metric, op, threshold}, got ${describeType(check)}`, node);
      ok = false;
      return;
    }
    if (!checkFields(problems, at, check, ['metric', 'op', 'threshold'], new Set(), node)) { ok = false; return; }
    const metric = check.metric;
    if (typeof metric !== 'string' || !(GATE_METRICS as readonly string[]).includes(metric)) {
      problems.add(childPath(at, 'metric'), `unknown metric ${describeType(metric)} (expected one of: ${GATE_METRICS.join(', ')})`, node);
      ok = false;
      return;
    }
    if (typeof check.op !== 'string' || !['<', '<=', '>', '>='].includes(check.op)) {
      problems.add(childPath(at, 'op'), `expected one of <, <=, >, >=, got ${describeType(check.op)}`, node);
      ok = false;
    }
    const m = GATE_METRIC_SPECS[metric as keyof typeof GATE_METRIC_SPECS];
    const spec: FieldSpec = { type: 'number', label: '', help: '', min: m.min, ...(Number.isFinite(m.max) ? { max: m.max } : {}) };
    if (typeof check.threshold === 'number' && Number.isFinite(check.threshold) && !inRange(spec, check.threshold)) {
      problems.add(childPath(at, 'threshold'), `${metric} threshold must be ${rangeText(spec)}, the metric's range (got ${check.threshold})`, node);
      ok = false;
    } else if (!checkNumber(problems, childPath(at, 'threshold'), check.threshold, spec, node)) {
      ok = false;
    }
  });
  return ok;
}

function checkField(problems: Problems, path: string, value: unknown, spec: FieldSpec, node?: string): boolean {
  switch (spec.type) {
    case 'number':
    case 'integer':
      return checkNumber(problems, path, value, spec, node);
    case 'string':
      if (typeof value !== 'string') { problems.add(path, `expected a string, got ${describeType(value)}`, node); return false; }
      if (!spec.allowEmpty && value.trim() === '') { problems.add(path, 'must not be empty', node); return false; }
      return true;
    case 'boolean':
      if (typeof value !== 'boolean') { problems.add(path, `expected true or false, got ${describeType(value)}`, node); return false; }
      return true;
    case 'enum':
      if (typeof value !== 'string' || !spec.options!.includes(value)) {
        problems.add(path, `expected one of: ${spec.options!.join(', ')}; got ${describeType(value)}`, node);
        return false;
      }
      return true;
    case 'layers':
      return checkLayerRange(problems, path, value, node);
    case 'layers_or_all':
      return value === 'all' || (typeof value === 'string'
        ? (problems.add(path, `expected 'all' or a layer range [first, last], got ${describeType(value)}`, node), false)
        : checkLayerRange(problems, path, value, node));
    case 'kinds':
      return checkKinds(problems, path, value, spec.options ?? PARAM_KINDS, node);
    case 'mask':
      return checkMask(problems, path, value, node);
    case 'curriculum':
      return checkCurriculum(problems, path, value, node);
    case 'checks':
      return checkGateChecks(problems, path, value, node);
    case 'model_source':
      return checkSource(problems, path, value, ['builtin:demo'], true, node);
    case 'dataset_source':
      return checkSource(problems, path, value, ['builtin:brown'], false, node);
    case 'hash':
      if (typeof value !== 'string' || !(value === '' || /^[0-9a-f]{64}$/.test(value))) {
        problems.add(path, `expected '' or a sha256 of 64 lowercase hex digits, got ${describeType(value)}`, node);
        return false;
      }
      return true;
  }
}

/** Checks an object against a field table; returns true when every field is well-formed. */
function checkObject(problems: Problems, path: string, value: unknown, fields: Record<string, FieldSpec>, what: string, node?: string): value is Record<string, unknown> {
  if (!isRecord(value)) {
    problems.add(path, `expected ${what} object, got ${describeType(value)}`, node);
    return false;
  }
  let ok = checkFields(problems, path, value, Object.keys(fields), new Set(), node);
  for (const [key, spec] of Object.entries(fields)) {
    if (key in value && !checkField(problems, childPath(path, key), value[key], spec, node)) ok = false;
  }
  return ok;
}

function checkMask(problems: Problems, path: string, value: unknown, node?: string): boolean {
  if (!checkObject(problems, path, value, MASK_FIELDS as Record<string, FieldSpec>, 'a mask', node)) return false;
  if (value.selector === 'none' && (value.topk_blocks as number) > 0) {
    problems.add(childPath(path, 'topk_blocks'), `top-k blocks need a selector: set selector to 'pooled' or 'indexer', or topk_blocks to 0`, node);
    return false;
  }
  if (value.selector !== 'none' && value.topk_blocks === 0) {
    problems.add(childPath(path, 'topk_blocks'), `selector '${value.selector}' picks no blocks with topk_blocks 0: set it >= 1 or selector to 'none'`, node);
    return false;
  }
  return true;
}

/** Checks between fields of one node, after each field is known to be well-formed. */
function checkParamsTogether(problems: Problems, path: string, node: PipelineNode): void {
  if (node.kind === 'train') {
    const { steps, curriculum, warmup_steps } = node.params;
    curriculum.forEach((c, i) => {
      if (c.from_step >= steps) problems.add(childPath(childPath(childPath(path, 'curriculum'), i), 'from_step'), `step ${c.from_step} is past the stage's ${steps} steps`, node.id);
    });
    if (warmup_steps > steps) problems.add(childPath(path, 'warmup_steps'), `warm-up of ${warmup_steps} steps is longer than the stage's ${steps} steps`, node.id);
  }
  if (node.kind === 'distill') {
    const p = node.params;
    if (p.task_weight + p.attn_kl_weight + p.logit_kl_weight + p.hidden_mse_weight === 0) {
      problems.add(path, 'every loss weight is 0: nothing would be trained', node.id);
    }
  }
}

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
function checkGraph(problems: Problems, nodes: readonly IndexedNode[], links: readonly IndexedLink[]): boolean {
  const before = problems.list.length;
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
    if (node.kind === 'gate' && models.length === 1 && kindOf.get(models[0]) !== 'train') {
      problems.add(at, `Gate '${node.id}' must follow a Train node directly (its input is ${NODE_SPECS[kindOf.get(models[0])!].label} '${models[0]}')`, node.id);
    }
  }
  const cycle = findCycle(nodes, links);
  if (cycle) {
    const first = cycle.ids[0];
    problems.add(childPath('links', cycle.linkIndex), `cycle: ${cycle.ids.map((id) => `'${id}'`).join(' -> ')}`, first);
  }
  return problems.list.length === before;
}

/** Layer ranges that reach past the model's depth; returns the ids of the nodes that do. */
function checkLayerRanges(problems: Problems, nodes: readonly IndexedNode[]): Set<string> {
  const beyond = new Set<string>();
  const model = nodes.find((n) => n.node.kind === 'model' && n.paramsOk);
  if (!model || model.node.kind !== 'model') return beyond;
  const numLayers = model.node.params.num_layers;
  for (const { node, index, paramsOk } of nodes) {
    if (!paramsOk || (node.kind !== 'freeze' && node.kind !== 'replace' && node.kind !== 'unfreeze') || node.params.layers === 'all') continue;
    const [first, last] = node.params.layers;
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
  const replacedBy = new Map<number, string>();
  for (const { node, index, paramsOk } of chain) {
    if (!paramsOk || beyondModel.has(node.id)) return; // later state depends on this node; stop rather than guess
    const at = childPath(childPath(childPath('nodes', index), 'params'), 'layers');
    if (node.kind === 'replace') {
      const [first, last] = node.params.layers;
      for (let l = first; l <= last; l++) {
        if (replacedBy.has(l)) {
          problems.add(at, `layer ${l} was already replaced by '${replacedBy.get(l)}'; replace each layer once`, node.id);
          return;
        }
      }
      for (let l = first; l <= last; l++) replacedBy.set(l, node.id);
    }
    if (node.kind === 'unfreeze' && node.params.replaced_only) {
      const [first, last] = node.params.layers;
      for (let l = first; l <= last; l++) {
        if (!replacedBy.has(l)) {
          problems.add(at, `layer ${l} is not replaced before this node, but replaced_only is set: replace it earlier or narrow the range`, node.id);
          return;
        }
      }
    }
    applyNode(state, node);
    if (node.kind === 'train' && !hasTrainable(state)) {
      problems.add(childPath('nodes', index), `nothing is trainable at Train '${node.id}': every parameter is frozen (add an Unfreeze, or a Replace with selector 'indexer')`, node.id);
    }
  }
}

/** Every problem in `value` as a v1 pipeline; an empty list means it is valid. */
export function validatePipeline(value: unknown): ValidationProblem[] {
  const problems = new Problems();
  if (!isRecord(value)) {
    problems.add(ROOT_PATH, `a pipeline must be a JSON object, got ${describeType(value)}`);
    return problems.list;
  }
  const version = value.version;
  if (!('version' in value)) {
    problems.add('version', `missing required field (this build reads version ${PIPELINE_VERSION})`);
  } else if (typeof version !== 'number' || !Number.isInteger(version)) {
    problems.add('version', `expected an integer version, got ${describeType(version)}`);
  } else if (version > PIPELINE_VERSION) {
    problems.add('version', `version ${version} is newer than this build reads (it reads version ${PIPELINE_VERSION} and older); update Sparse Studio`);
    return problems.list; // fields of a future format are not ours to judge
  } else if (version < PIPELINE_VERSION) {
    problems.add('version', `version ${version} is not read directly (this build reads version ${PIPELINE_VERSION}; importing the file migrates older versions it knows)`);
    return problems.list;
  }
  checkFields(problems, '', value, TOP_LEVEL_FIELDS, OPTIONAL_TOP_LEVEL);
  if ('info' in value) checkInfo(problems, value.info);
  if ('seed' in value) checkNumber(problems, 'seed', value.seed, { type: 'integer', label: '', help: '', min: 0, max: MAX_SEED });
  if ('backend' in value) checkField(problems, 'backend', value.backend, { type: 'enum', label: '', help: '', options: ['auto', 'cpu', 'cuda'] });
  const scan = 'nodes' in value ? checkNodes(problems, value.nodes) : null;
  const nodes = scan?.usable ?? [];
  const byId = new Map(nodes.map((n) => [n.node.id, n]));
  const links = scan && 'links' in value ? checkLinks(problems, value.links, byId, scan.allIds) : null;
  if ('layout' in value) checkLayout(problems, value.layout, scan?.allIds ?? new Set());
  // A dropped node would make its neighbours look unlinked: fix the nodes first.
  if (!scan || !scan.complete || !links) return problems.list;
  const beyondModel = checkLayerRanges(problems, nodes);
  if (checkGraph(problems, nodes, links)) checkChain(problems, nodes, links, beyondModel);
  return problems.list;
}

/** Narrowing helper: throws one line with the first problem. */
export function assertValidPipeline(value: unknown): asserts value is Pipeline {
  const problems = validatePipeline(value);
  if (problems.length > 0) {
    const first = problems[0];
    throw new Error(`invalid pipeline: ${first.path}: ${first.message}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}`);
  }
}
