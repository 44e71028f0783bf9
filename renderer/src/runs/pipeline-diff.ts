// Param-level diff of two pipelines, keyed by node id (not array position), so reordering
// nodes is no change and a changed lr reads as `nodes.train-1.params.lr: 0.0001 -> 0.00007`.
// The layout section is ignored: moving a node does not change what a run does.
import type { Pipeline } from '../../../core/schema';

export interface DiffEntry {
  path: string;
  kind: 'added' | 'removed' | 'changed';
  before?: unknown;
  after?: unknown;
}

export function diffPipelines(a: Pipeline, b: Pipeline): DiffEntry[] {
  const out: DiffEntry[] = [];
  diffValue('info', a.info, b.info, out);
  diffValue('seed', a.seed, b.seed, out);
  diffValue('backend', a.backend, b.backend, out);
  const nodesA = new Map(a.nodes.map((n) => [n.id, n]));
  const nodesB = new Map(b.nodes.map((n) => [n.id, n]));
  for (const [id, node] of nodesA) {
    const other = nodesB.get(id);
    if (!other) { out.push({ path: `nodes.${id}`, kind: 'removed', before: node.kind }); continue; }
    diffValue(`nodes.${id}.kind`, node.kind, other.kind, out);
    diffValue(`nodes.${id}.label`, node.label, other.label, out);
    diffValue(`nodes.${id}.params`, node.params, other.params, out);
  }
  for (const [id, node] of nodesB) if (!nodesA.has(id)) out.push({ path: `nodes.${id}`, kind: 'added', after: node.kind });
  const linkKey = (l: { from: string; to: string }) => `${l.from} -> ${l.to}`;
  const linksA = new Set(a.links.map(linkKey));
  const linksB = new Set(b.links.map(linkKey));
  for (const l of linksA) if (!linksB.has(l)) out.push({ path: `links.${l}`, kind: 'removed' });
  for (const l of linksB) if (!linksA.has(l)) out.push({ path: `links.${l}`, kind: 'added' });
  return out;
}

function diffValue(path: string, a: unknown, b: unknown, out: DiffEntry[]): void {
  if (Object.is(a, b)) return;
  if (isRecord(a) && isRecord(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      if (!(k in b)) out.push({ path: `${path}.${k}`, kind: 'removed', before: a[k] });
      else if (!(k in a)) out.push({ path: `${path}.${k}`, kind: 'added', after: b[k] });
      else diffValue(`${path}.${k}`, a[k], b[k], out);
    }
    return;
  }
  // Arrays (layer ranges, curricula, checks) compare whole: a shifted list reads better as one change.
  if (Array.isArray(a) && Array.isArray(b) && JSON.stringify(a) === JSON.stringify(b)) return;
  if (a === undefined) out.push({ path, kind: 'added', after: b });
  else if (b === undefined) out.push({ path, kind: 'removed', before: a });
  else out.push({ path, kind: 'changed', before: a, after: b });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Short text of a value for the diff table. */
export function formatValue(v: unknown): string {
  if (v === undefined) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}
