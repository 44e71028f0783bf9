// The prefix of a pipeline: what stages 1..k depend on, so a run can be continued from the
// end of stage k with a graph whose later stages changed (a fork).
//
// Design choices:
// - The prefix of stage k is every node that stages 1..k read: for each of those stages the
//   Train node's model chain (Model and every operation before it), its Gate, the Dataset
//   of each, plus the links between them and the pipeline seed (node seeds of 0 follow it).
//   Labels, layout, info, `$schema` and everything after stage k are left out: they change no
//   number stage 1..k produced.
// - Canonical JSON of {seed, nodes sorted by id as {id, kind, params}, links sorted}, hashed
//   with sha256, so the same prefix gives the same hash whatever the file order.
// - prefixDifference names the first node (in the parent's execution order) that differs, and
//   the first field in it, for a one-line refusal.
//
// Owned by core/: no Node, DOM or Electron imports here.
import type { Pipeline, PipelineLink } from './schema';
import { canonicalJson } from './canonical';
import { compareIds, executionOrder, modelChainTo, stagesOf } from './order';

export interface PrefixNode { id: string; kind: string; params: unknown }
export interface PipelinePrefix {
  /** Stages covered, 1-based count (stages 1..stages). */
  stages: number;
  seed: number;
  nodes: PrefixNode[];
  links: PipelineLink[];
}

/** Ids of the nodes stages 1..k (1-based k) depend on, in execution order. Throws when there are fewer stages. */
export function prefixNodeIds(p: Pipeline, k: number): string[] {
  const stages = stagesOf(p);
  if (!Number.isInteger(k) || k < 1 || k > stages.length) {
    throw new Error(`stage ${k} does not exist (the pipeline has ${stages.length} stage${stages.length === 1 ? '' : 's'})`);
  }
  const ids = new Set<string>();
  for (const stage of stages.slice(0, k)) {
    for (const node of modelChainTo(p, stage.train)) ids.add(node.id);
    for (const id of [stage.gate, stage.dataset, stage.gateDataset]) if (id !== null) ids.add(id);
  }
  return executionOrder(p).filter((id) => ids.has(id));
}

export function pipelinePrefix(p: Pipeline, k: number): PipelinePrefix {
  const ids = new Set(prefixNodeIds(p, k));
  const nodes = p.nodes.filter((n) => ids.has(n.id)).map((n) => ({ id: n.id, kind: n.kind, params: n.params }))
    .sort((a, b) => compareIds(a.id, b.id));
  const links = p.links.filter((l) => ids.has(l.from) && ids.has(l.to)).map((l) => ({ from: l.from, to: l.to }))
    .sort((a, b) => compareIds(a.from, b.from) || compareIds(a.to, b.to));
  return { stages: k, seed: p.seed, nodes, links };
}

/** sha256 (hex) of the canonical JSON of stages 1..k's prefix. */
export function prefixHash(p: Pipeline, k: number): string {
  return sha256Hex(canonicalJson(pipelinePrefix(p, k)));
}

/**
 * Where `next`'s prefix of stages 1..k first differs from `base`'s, as one phrase
 * ("node 'a5-train' differs at params.lr: 0.003 -> 0.001"); null when they are identical.
 */
export function prefixDifference(base: Pipeline, next: Pipeline, k: number): string | null {
  const a = pipelinePrefix(base, k);
  let b: PipelinePrefix;
  try {
    b = pipelinePrefix(next, k);
  } catch (e) {
    return (e as Error).message;
  }
  const nextById = new Map(b.nodes.map((n) => [n.id, n]));
  for (const id of prefixNodeIds(base, k)) {
    const mine = a.nodes.find((n) => n.id === id)!;
    const theirs = nextById.get(id);
    if (!theirs) return `node '${id}' is not in stages 1-${k} of the new pipeline`;
    const at = firstDifferingPath(mine, theirs, '');
    if (at) return `node '${id}' differs at ${at.path}: ${show(at.from)} -> ${show(at.to)}`;
  }
  const baseIds = new Set(a.nodes.map((n) => n.id));
  const added = prefixNodeIds(next, k).find((id) => !baseIds.has(id));
  if (added !== undefined) return `node '${added}' is new in stages 1-${k}`;
  const key = (l: PipelineLink) => `${l.from}\u0000${l.to}`;
  const baseLinks = new Set(a.links.map(key));
  const nextLinks = new Set(b.links.map(key));
  const gone = a.links.find((l) => !nextLinks.has(key(l)));
  if (gone) return `node '${gone.to}' differs: its link from '${gone.from}' is gone`;
  const extra = b.links.find((l) => !baseLinks.has(key(l)));
  if (extra) return `node '${extra.to}' differs: it has a new link from '${extra.from}'`;
  if (a.seed !== b.seed) return `the pipeline seed differs: ${a.seed} -> ${b.seed}`;
  return null;
}

function firstDifferingPath(x: unknown, y: unknown, path: string): { path: string; from: unknown; to: unknown } | null {
  if (x === y) return null;
  if (typeof x !== 'object' || typeof y !== 'object' || x === null || y === null || Array.isArray(x) !== Array.isArray(y)) {
    return { path: path || '$', from: x, to: y };
  }
  if (Array.isArray(x) && Array.isArray(y)) {
    for (let i = 0; i < Math.max(x.length, y.length); i++) {
      const d = firstDifferingPath(x[i], y[i], `${path}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  const xr = x as Record<string, unknown>;
  const yr = y as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(xr), ...Object.keys(yr)])].sort(compareIds);
  for (const k of keys) {
    const d = firstDifferingPath(xr[k], yr[k], path ? `${path}.${k}` : k);
    if (d) return d;
  }
  return null;
}

function show(v: unknown): string {
  if (v === undefined) return '(absent)';
  const text = JSON.stringify(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

// -----------------------------------------------------------------------------------------
// sha256 (FIPS 180-4) over the UTF-8 bytes of a string; core/ has no Node crypto.

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export function sha256Hex(text: string): string {
  const data = new TextEncoder().encode(text);
  const bitLen = data.length * 8;
  const padded = new Uint8Array(Math.ceil((data.length + 9) / 64) * 64);
  padded.set(data);
  padded[data.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bitLen / 0x100000000));
  view.setUint32(padded.length - 4, bitLen >>> 0);
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rotr = (x: number, n: number) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  return [...h].map((x) => x.toString(16).padStart(8, '0')).join('');
}
