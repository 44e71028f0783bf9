// The shape pass of validation: one value against its FieldSpec (core/nodes.ts), one node's
// params against its kind's fields, and the checks between fields of one node, per kind.
// Every problem carries the exact JSON path of the offending value; nothing here throws.
//
// Owned by core/: no Node, DOM or Electron imports here.
import type { ValidationProblem } from './api';
import type { NodeKind, NodeOf, PipelineNode } from './schema';
import { BUILTIN_MODELS, GATE_METRICS, PARAM_KINDS } from './schema';
import { GATE_METRIC_SPECS, INDEXER_WARMUP_FIELD, LIMITS, MASK_FIELDS } from './nodes';
import type { FieldSpec } from './nodes';

/** Problems listed at most; past it one closing "... and N more" problem stands for the rest. */
export const MAX_PROBLEMS = 100;

export class Problems {
  readonly list: ValidationProblem[] = [];
  /** Every problem found, listed or not. */
  count = 0;
  add(path: string, message: string, node?: string): void {
    this.count += 1;
    if (this.list.length < MAX_PROBLEMS) this.list.push(node === undefined ? { path, message } : { path, message, node });
  }
  /** The listed problems, closed by one that counts those left out. */
  result(): ValidationProblem[] {
    const more = this.count - this.list.length;
    return more > 0 ? [...this.list, { path: ROOT_PATH, message: `... and ${more} more problem${more === 1 ? '' : 's'}` }] : this.list;
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

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reports fields outside `known` and missing required ones; returns false if any are missing. */
export function checkFields(problems: Problems, path: string, value: Record<string, unknown>, known: readonly string[],
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

export function checkNumber(problems: Problems, path: string, value: unknown, spec: FieldSpec, node?: string): boolean {
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
  if (value.length > LIMITS.listEntries) {
    problems.add(path, `at most ${LIMITS.listEntries} entries (got ${value.length})`, node);
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
    const stepOk = checkNumber(problems, childPath(at, 'from_step'), entry.from_step, { type: 'integer', label: '', help: '', min: 0, max: LIMITS.steps }, node);
    const lenOk = checkNumber(problems, childPath(at, 'seq_len'), entry.seq_len, { type: 'integer', label: '', help: '', min: 2, max: LIMITS.seqLen }, node);
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
  if (value.length > LIMITS.listEntries) {
    problems.add(path, `at most ${LIMITS.listEntries} checks (got ${value.length})`, node);
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

export function checkField(problems: Problems, path: string, value: unknown, spec: FieldSpec, node?: string): boolean {
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
      return checkSource(problems, path, value, BUILTIN_MODELS.map((m) => `builtin:${m}`), true, node);
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
export function checkObject(problems: Problems, path: string, value: unknown, fields: Record<string, FieldSpec>, what: string, node?: string): value is Record<string, unknown> {
  if (!isRecord(value)) {
    problems.add(path, `expected ${what} object, got ${describeType(value)}`, node);
    return false;
  }
  const optional = new Set(Object.entries(fields).filter(([, spec]) => spec.optional).map(([key]) => key));
  let ok = checkFields(problems, path, value, Object.keys(fields), optional, node);
  for (const [key, spec] of Object.entries(fields)) {
    // An optional field set to undefined (the inspector clearing it) is left out when saved.
    if (spec.optional && value[key] === undefined) continue;
    if (key in value && !checkField(problems, childPath(path, key), value[key], spec, node)) ok = false;
  }
  return ok;
}

function checkSeedFromTeacher(problems: Problems, path: string, value: unknown, node?: string): boolean {
  if (value === null) return true;
  if (!isRecord(value)) {
    problems.add(path, `expected null or an object { threshold }, got ${describeType(value)}`, node);
    return false;
  }
  let ok = checkFields(problems, path, value, ['threshold', 'blocks', 'pairs'], new Set(['blocks', 'pairs']), node);
  const t = value.threshold;
  if ('threshold' in value && (typeof t !== 'number' || !(t > 0 && t < 1))) {
    problems.add(childPath(path, 'threshold'), `must be a number in (0, 1), got ${JSON.stringify(t)}`, node);
    ok = false;
  }
  if (('blocks' in value) !== ('pairs' in value)) {
    problems.add(path, 'blocks and pairs are recorded together (or both left out)', node);
    return false;
  }
  if ('blocks' in value) {
    const b = value.blocks;
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 1 || b > LIMITS.blocks) {
      problems.add(childPath(path, 'blocks'), `must be an integer in [1, ${LIMITS.blocks}], got ${JSON.stringify(b)}`, node);
      return false;
    }
    const p = value.pairs;
    if (!Array.isArray(p) || !p.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) {
      problems.add(childPath(path, 'pairs'), 'must be an array of non-negative integers', node);
      return false;
    }
  }
  return ok;
}

/** MaskSpec.indexer_warmup_steps: null, or an integer step count on an `indexer` mask. */
function checkIndexerWarmup(problems: Problems, path: string, value: unknown, selector: unknown, node?: string): boolean {
  if (value === null) return true;
  if (!checkField(problems, path, value, INDEXER_WARMUP_FIELD, node)) return false;
  if (selector !== 'indexer') {
    problems.add(path, `only the indexer selector trains (selector is ${JSON.stringify(selector)}): clear this field or set selector to 'indexer'`, node);
    return false;
  }
  return true;
}

function checkMask(problems: Problems, path: string, value: unknown, node?: string): boolean {
  if (isRecord(value) && 'seed_from_teacher' in value) {
    const { seed_from_teacher: seed, ...rest } = value;
    const seedOk = checkSeedFromTeacher(problems, childPath(path, 'seed_from_teacher'), seed, node);
    return checkMask(problems, path, rest, node) && seedOk;
  }
  if (isRecord(value) && 'indexer_warmup_steps' in value) {
    const { indexer_warmup_steps: warmup, ...rest } = value;
    const warmupOk = checkIndexerWarmup(problems, childPath(path, 'indexer_warmup_steps'), warmup, value.selector, node);
    return checkMask(problems, path, rest, node) && warmupOk;
  }
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

/** A mask read from outside a pipeline (an exported config.json): its first problem as "path: message", or null. */
export function maskProblem(value: unknown, path: string): string | null {
  const problems = new Problems();
  checkMask(problems, path, value);
  const first = problems.list[0];
  return first ? `${first.path}: ${first.message}` : null;
}

type TogetherCheck<K extends NodeKind> = (problems: Problems, path: string, node: NodeOf<K>) => void;

/** Checks between fields of one node, per kind (null: its fields are independent). */
const TOGETHER: { [K in NodeKind]: TogetherCheck<K> | null } = {
  model: null,
  dataset: null,
  freeze: null,
  replace: null,
  unfreeze: null,
  gate: null,
  export: null,
  train(problems, path, node) {
    const { steps, curriculum, warmup_steps } = node.params;
    curriculum.forEach((c, i) => {
      if (c.from_step >= steps) problems.add(childPath(childPath(childPath(path, 'curriculum'), i), 'from_step'), `step ${c.from_step} is past the stage's ${steps} steps`, node.id);
    });
    if (warmup_steps > steps) problems.add(childPath(path, 'warmup_steps'), `warm-up of ${warmup_steps} steps is longer than the stage's ${steps} steps`, node.id);
  },
  distill(problems, path, node) {
    const p = node.params;
    if (p.task_weight + p.attn_kl_weight + p.logit_kl_weight + p.hidden_mse_weight === 0) {
      problems.add(path, 'every loss weight is 0: nothing would be trained', node.id);
    }
  },
};

/** Checks between fields of one node, after each field is known to be well-formed. */
export function checkParamsTogether(problems: Problems, path: string, node: PipelineNode): void {
  (TOGETHER[node.kind] as TogetherCheck<NodeKind> | null)?.(problems, path, node);
}

