// Fuzz test of reading a pipeline: schema-aware mutations of every template go through
// parsePipelineText (text, as a file or upload arrives), validatePipeline (the value, as an IPC
// call arrives: NaN and -0 included) and, for a sample, preflight. Every case must end in "ok"
// or in at least one located problem (a path and a message) -- never a throw or a hang.
// Seeded: the same cases every run. SPARSE_STUDIO_FUZZ_CASES raises the count (default 2000);
// SPARSE_STUDIO_FUZZ_SEED picks another seed.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ValidationProblem } from '../core/api';
import { NODE_SPECS, MASK_FIELDS, type FieldSpec } from '../core/nodes';
import { parsePipelineText } from '../core/parse';
import { NODE_KINDS } from '../core/schema';
import { validatePipeline } from '../core/validate';
import { seededRandom } from './data/rng';
import { preflightPipeline } from './preflight';

const TEMPLATES = new URL('../templates/', import.meta.url);
const templates = readdirSync(TEMPLATES).filter((f) => f.endsWith('.json')).sort()
  .map((f) => ({ name: f, value: JSON.parse(readFileSync(new URL(f, TEMPLATES), 'utf8')) as unknown }));
const CASES = Math.max(1, Number(process.env.SPARSE_STUDIO_FUZZ_CASES) || 2000);
const SEED = Number(process.env.SPARSE_STUDIO_FUZZ_SEED) || 20240611;
const PREFLIGHT_EVERY = 40;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;
type Rand = () => number;
const pick = <T>(rand: Rand, list: readonly T[]): T => list[Math.floor(rand() * list.length)];
const clone = (v: unknown): Doc => structuredClone(v);

const HUGE_NUMBERS = [1e15, 1e9, 2 ** 31, 2 ** 40, 2 ** 53 + 2, 1e308, -1e308, -1, -0, 0, 0.5, 1e-320, Number.MAX_SAFE_INTEGER];
const ODD_VALUES: unknown[] = [null, true, false, '', ' ', 'x'.repeat(5000), '1e4', [], [1, 2, 3], {}, { a: 1 }, NaN, Infinity, -Infinity,
  '__proto__', 'constructor', 'toString', '\u0000', '\ud800', 'builtin:demo', '../../etc/passwd'];
const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'];

/** Every [container, key] inside a value, for mutations at a random place. */
function slots(root: Doc): [Doc, string | number][] {
  const out: [Doc, string | number][] = [];
  const walk = (v: Doc, depth: number) => {
    if (depth > 12 || v === null || typeof v !== 'object') return;
    for (const k of Array.isArray(v) ? v.keys() : Object.keys(v)) { out.push([v, k]); walk(v[k], depth + 1); }
  };
  walk(root, 0);
  return out;
}

/** A value of the wrong kind or out of range for a field spec. */
function badForSpec(rand: Rand, spec: FieldSpec): unknown {
  switch (spec.type) {
    case 'integer': case 'number':
      return pick(rand, [...HUGE_NUMBERS, (spec.max ?? 1e9) * 2 + 1, (spec.min ?? 0) - 1, (spec.max ?? 1) + 0.5, '7', null]);
    case 'enum': return pick(rand, ['nope', '', 3, null]);
    case 'layers': case 'layers_or_all': return pick(rand, [[0, 1], [3, 1], [1, 2 ** 31], [1], [1.5, 2], 'all ', [-1, -1], [1, 2, 3]]);
    case 'kinds': return pick(rand, [[], ['q', 'q'], ['nope'], 'q', [null]]);
    default: return pick(rand, ODD_VALUES);
  }
}

const mutations: { name: string; apply: (p: Doc, rand: Rand) => Doc }[] = [
  { name: 'wrong type anywhere', apply: (p, rand) => { const s = slots(p); if (s.length) { const [c, k] = pick(rand, s); c[k] = pick(rand, ODD_VALUES); } return p; } },
  { name: 'huge or odd number anywhere', apply: (p, rand) => { const s = slots(p).filter(([c, k]) => typeof c[k] === 'number'); if (s.length) { const [c, k] = pick(rand, s); c[k] = pick(rand, HUGE_NUMBERS); } return p; } },
  { name: 'schema field out of range', apply: (p, rand) => {
    const n = pick(rand, p.nodes as Doc[]);
    const spec = NODE_SPECS[n?.kind as keyof typeof NODE_SPECS];
    if (!spec || !n.params) return p;
    const field = pick(rand, Object.keys(spec.fields));
    if (field === 'mask' && n.params.mask && rand() < 0.7) {
      const mf = pick(rand, Object.keys(MASK_FIELDS));
      n.params.mask[mf] = badForSpec(rand, (MASK_FIELDS as Record<string, FieldSpec>)[mf]);
    } else n.params[field] = badForSpec(rand, (spec.fields as Record<string, FieldSpec>)[field]);
    return p;
  } },
  { name: 'removed field', apply: (p, rand) => { const s = slots(p).filter(([c]) => !Array.isArray(c)); if (s.length) { const [c, k] = pick(rand, s); delete c[k]; } return p; } },
  { name: 'removed array entry', apply: (p, rand) => { const s = slots(p).filter(([c]) => Array.isArray(c)); if (s.length) { const [c, k] = pick(rand, s); c.splice(k, 1); } return p; } },
  { name: 'extra field', apply: (p, rand) => { const s = [p, ...slots(p).map(([c, k]) => c[k])].filter((v) => v && typeof v === 'object' && !Array.isArray(v)); const o = pick(rand, s); o[pick(rand, ['extra', 'momentum', 'x', ''])] = pick(rand, ODD_VALUES); return p; } },
  { name: 'prototype key', apply: (p, rand) => {
    const s = [p, ...slots(p).map(([c, k]) => c[k])].filter((v) => v && typeof v === 'object' && !Array.isArray(v));
    Object.defineProperty(pick(rand, s), pick(rand, PROTO_KEYS), { value: pick(rand, [{ polluted: true }, 1, 'x', null, []]), enumerable: true, writable: true, configurable: true });
    return p;
  } },
  { name: 'prototype node id or kind', apply: (p, rand) => { const n = pick(rand, p.nodes as Doc[]); if (n) n[pick(rand, ['id', 'kind'])] = pick(rand, PROTO_KEYS); return p; } },
  { name: 'unknown kind', apply: (p, rand) => { const n = pick(rand, p.nodes as Doc[]); if (n) n.kind = pick(rand, ['prune', 'Model', '', 'model ', 'export2']); return p; } },
  { name: 'kind swapped', apply: (p, rand) => { const n = pick(rand, p.nodes as Doc[]); if (n) n.kind = pick(rand, NODE_KINDS); return p; } },
  { name: 'duplicate id', apply: (p, rand) => { const a = pick(rand, p.nodes as Doc[]); const b = pick(rand, p.nodes as Doc[]); if (a && b) a.id = b.id; return p; } },
  { name: 'cyclic link', apply: (p, rand) => { const ids = (p.nodes as Doc[]).map((n) => n?.id); const l = pick(rand, p.links as Doc[]); if (l) p.links.push({ from: l.to, to: l.from }); else p.links.push({ from: ids[0], to: ids[0] }); return p; } },
  { name: 'long cycle', apply: (p) => { const ids = (p.nodes as Doc[]).map((n) => n?.id); if (ids.length > 1) p.links.push({ from: ids[ids.length - 1], to: ids[1] }); return p; } },
  { name: 'dangling link', apply: (p, rand) => { p.links.push(rand() < 0.5 ? { from: 'nowhere', to: pick(rand, p.nodes as Doc[])?.id ?? 'x' } : { from: pick(rand, p.nodes as Doc[])?.id ?? 'x', to: '__proto__' }); return p; } },
  { name: 'overlapping layers', apply: (p, rand) => {
    const withLayers = (p.nodes as Doc[]).filter((n) => Array.isArray(n?.params?.layers));
    const a = pick(rand, withLayers); const b = pick(rand, withLayers);
    if (a && b) b.params.layers = [a.params.layers[0], a.params.layers[1] + Math.floor(rand() * 3)];
    return p;
  } },
  { name: 'layers past the model', apply: (p, rand) => { const n = (p.nodes as Doc[]).find((x) => Array.isArray(x?.params?.layers)); if (n) n.params.layers = [1, pick(rand, [64, 1025, 2 ** 31])]; return p; } },
  { name: 'deep nesting', apply: (p, rand) => {
    let deep: Doc = 1;
    const depth = pick(rand, [50, 300, 2000]);
    for (let i = 0; i < depth; i++) deep = rand() < 0.5 ? [deep] : { a: deep };
    const s = slots(p); if (s.length) { const [c, k] = pick(rand, s); c[k] = deep; }
    return p;
  } },
  { name: 'many nodes', apply: (p, rand) => { const n = pick(rand, p.nodes as Doc[]); for (let i = 0; i < 300; i++) p.nodes.push({ ...clone(n), id: `n${i}` }); return p; } },
  { name: 'whole document replaced', apply: (_p, rand) => pick(rand, [null, [], 42, 'pipeline', { version: 1 }, { version: 2 ** 53 }, { version: '1' }, { version: 0, nodes: 'x' }]) },
];

/** Text variants a file may take on top of a mutation. */
function toText(value: Doc, rand: Rand): string {
  let text: string;
  try { text = JSON.stringify(value) ?? 'null'; } catch { text = '{"version": 1}'; }
  const r = rand();
  if (r < 0.05) return text.slice(0, Math.floor(rand() * text.length)); // truncated
  if (r < 0.08) return text.replace('{', '{"version": 1, '); // duplicate key (or a first one)
  if (r < 0.1) return '\ufeff' + text;
  return text;
}

function expectLocated(problems: ValidationProblem[], context: string): void {
  expect(problems.length, context).toBeGreaterThan(0);
  for (const q of problems) {
    expect(typeof q.path === 'string' && q.path.length > 0, `${context}: path ${JSON.stringify(q)}`).toBe(true);
    expect(typeof q.message === 'string' && q.message.length > 0, `${context}: message ${JSON.stringify(q)}`).toBe(true);
  }
}

describe('pipeline fuzz', () => {
  it(`${CASES} schema-aware mutations of every template end in ok or located problems (seed ${SEED})`, async () => {
    const rand = seededRandom(SEED);
    const modelsDir = fileURLToPath(new URL('../models', import.meta.url));
    const outcomes = { ok: 0, problems: 0 };
    const started = Date.now();
    let slowest = 0;
    for (let i = 0; i < CASES; i++) {
      const template = templates[i % templates.length];
      const chain = 1 + Math.floor(rand() * 3);
      let doc: Doc = clone(template.value);
      const names: string[] = [];
      for (let m = 0; m < chain; m++) {
        const mutation = pick(rand, mutations);
        names.push(mutation.name);
        doc = mutation.apply(doc, rand);
        if (doc === null || typeof doc !== 'object' || !Array.isArray(doc.nodes) || !Array.isArray(doc.links)) break;
      }
      const context = `case ${i} (${template.name}: ${names.join(' + ')})`;
      const t0 = Date.now();
      const direct = validatePipeline(doc);
      if (direct.length) expectLocated(direct, `${context}, value`);
      const parsed = parsePipelineText(toText(doc, rand), template.name);
      if ('problems' in parsed) { expectLocated(parsed.problems, `${context}, text`); outcomes.problems++; } else outcomes.ok++;
      if (i % PREFLIGHT_EVERY === 0) {
        const report = await preflightPipeline(doc, direct, { baseDir: '/nonexistent-fuzz-base', modelsDir, totalMemoryBytes: 16 * 2 ** 30 });
        expect(report.ok, context).toBe(report.problems.length === 0);
        for (const q of report.problems) expect(typeof q.path === 'string' && typeof q.message === 'string', context).toBe(true);
      }
      slowest = Math.max(slowest, Date.now() - t0);
    }
    // Both outcomes occur: the mutations are neither all harmless nor all fatal.
    expect(outcomes.problems).toBeGreaterThan(CASES / 2);
    expect(slowest, 'slowest case (ms)').toBeLessThan(2000);
    expect(Date.now() - started).toBeLessThan(Math.max(30_000, CASES * 15));
  }, 120_000);
});
