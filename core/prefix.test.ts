import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Pipeline } from './schema';
import { stagesOf } from './order';
import { pipelinePrefix, prefixDifference, prefixHash, prefixNodeIds, sha256Hex } from './prefix';

const demo = (): Pipeline => JSON.parse(readFileSync(join(__dirname, '..', 'templates', 'quick-demo.json'), 'utf8'));
const node = (p: Pipeline, id: string) => p.nodes.find((n) => n.id === id)! as any;

describe('pipeline prefix', () => {
  it('sha256Hex matches node:crypto', () => {
    for (const text of ['', 'abc', 'x'.repeat(55), 'y'.repeat(64), 'é∑ and more', JSON.stringify(demo())]) {
      expect(sha256Hex(text)).toBe(createHash('sha256').update(text).digest('hex'));
    }
  });

  it('stage k covers the model chain, gates and datasets of stages 1..k, nothing later', () => {
    const p = demo();
    const stages = stagesOf(p);
    expect(stages.length).toBe(3);
    const one = prefixNodeIds(p, 1);
    expect(one).toContain(stages[0].train);
    expect(one).toContain(stages[0].gate);
    expect(one).toContain(stages[0].dataset);
    expect(one).not.toContain(stages[1].train);
    for (const id of stages[1].ops) expect(one).not.toContain(id);
    expect(prefixNodeIds(p, 3)).not.toContain(p.nodes.find((n) => n.kind === 'export')!.id);
    expect(() => prefixNodeIds(p, 4)).toThrow(/stage 4 does not exist/);
  });

  it('changing a later stage, a label, the layout, info or node order keeps the hash', () => {
    const p = demo();
    const h1 = prefixHash(p, 1);
    const h2 = prefixHash(p, 2);
    const q = structuredClone(p);
    const later = stagesOf(q)[2];
    node(q, later.train).params.lr = 1e-6;
    node(q, later.ops[0]).params.layers = [11, 11];
    node(q, stagesOf(q)[0].train).label = 'renamed';
    q.info.name = 'another name';
    q.layout = { nodes: {} };
    q.nodes.reverse();
    q.links.reverse();
    expect(prefixHash(q, 1)).toBe(h1);
    expect(prefixHash(q, 2)).toBe(h2);
    expect(prefixDifference(p, q, 2)).toBeNull();
    expect(prefixHash(q, 3)).not.toBe(prefixHash(p, 3));
  });

  it('changing an earlier node, its data, a link or the seed changes the hash and names the first differing node', () => {
    const p = demo();
    const s = stagesOf(p);
    const edit = (f: (q: Pipeline) => void) => { const q = structuredClone(p); f(q); return q; };

    const lr = edit((q) => { node(q, s[0].train).params.lr = 5e-4; });
    expect(prefixHash(lr, 2)).not.toBe(prefixHash(p, 2));
    expect(prefixDifference(p, lr, 2)).toBe(`node '${s[0].train}' differs at params.lr: ${node(p, s[0].train).params.lr} -> 0.0005`);

    const mask = edit((q) => { node(q, s[1].ops.find((id) => node(q, id).kind === 'replace')!).params.mask.random_blocks = 1; });
    expect(prefixHash(mask, 1)).toBe(prefixHash(p, 1));
    expect(prefixDifference(p, mask, 2)).toMatch(/^node '.+' differs at params\.mask\.random_blocks: \d+ -> 1$/);

    const data = edit((q) => { node(q, s[0].dataset!).params.validation_fraction = 0.1; });
    expect(prefixDifference(p, data, 1)).toMatch(new RegExp(`^node '${s[0].dataset}' differs at params.validation_fraction`));

    const seed = edit((q) => { q.seed += 1; });
    expect(prefixHash(seed, 1)).not.toBe(prefixHash(p, 1));
    expect(prefixDifference(p, seed, 1)).toMatch(/seed differs/);

    const removed = edit((q) => { const id = s[1].ops[0]; q.nodes = q.nodes.filter((n) => n.id !== id); q.links = q.links.filter((l) => l.from !== id && l.to !== id); });
    expect(prefixDifference(p, removed, 1)).toBeNull();
    expect(prefixDifference(p, removed, 2)).toMatch(/is not in stages 1-2|differs/);
    expect(pipelinePrefix(p, 1).nodes.map((n) => n.id)).toEqual([...prefixNodeIds(p, 1)].sort());
  });
});
