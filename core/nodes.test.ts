import { describe, expect, it } from 'vitest';
import { GATE_METRIC_SPECS, MASK_FIELDS, NODE_SPECS, defaultParams } from './nodes';
import { GATE_METRICS, NODE_KINDS } from './schema';
import type { Pipeline } from './schema';
import { validatePipeline } from './validate';

describe('NODE_SPECS', () => {
  it('covers every node kind and every gate metric', () => {
    expect(Object.keys(NODE_SPECS).sort()).toEqual([...NODE_KINDS].sort());
    expect(Object.keys(GATE_METRIC_SPECS).sort()).toEqual([...GATE_METRICS].sort());
  });

  it.each(NODE_KINDS)('%s: describes exactly the fields of its defaults', (kind) => {
    const spec = NODE_SPECS[kind];
    expect(spec.kind).toBe(kind);
    expect(spec.description.length).toBeGreaterThan(10);
    // Optional fields (added after version 1) may be left out of the defaults; every other field is in them.
    const fields = spec.fields as Record<string, { optional?: boolean }>;
    expect(Object.keys(fields).filter((k) => !fields[k].optional).sort()).toEqual(Object.keys(spec.defaults).filter((k) => !fields[k]?.optional).sort());
    for (const k of Object.keys(spec.defaults)) expect(fields[k], k).toBeDefined();
    for (const field of Object.values(spec.fields)) expect(field.help.length).toBeGreaterThan(5);
  });

  it('describes every mask field', () => {
    expect(Object.keys(MASK_FIELDS).sort()).toEqual(Object.keys(NODE_SPECS.replace.defaults.mask).sort());
  });

  it('uses the seed plan numbers as defaults', () => {
    expect(NODE_SPECS.replace.defaults.layers).toEqual([4, 6]);
    expect(NODE_SPECS.replace.defaults.mask).toMatchObject({ block_size: 64, random_blocks: 8, global_blocks: 2, selector: 'indexer' });
    expect(NODE_SPECS.train.defaults).toMatchObject({ lr: 1e-4, grad_clip: 1, plateau_patience: 3, plateau_factor: 0.7 });
    expect(NODE_SPECS.gate.defaults.checks).toEqual([{ metric: 'attn_kl', op: '<', threshold: 0.1 }, { metric: 'out_cos', op: '>', threshold: 0.95 }]);
    expect(NODE_SPECS.unfreeze.defaults.kinds).toEqual(['q', 'k', 'v']);
    expect(NODE_SPECS.distill.defaults.attn_kl_weight).toBeGreaterThanOrEqual(0.1);
    expect(NODE_SPECS.distill.defaults.attn_kl_weight).toBeLessThanOrEqual(0.3);
  });

  it('has ports that match the link rules', () => {
    expect(NODE_SPECS.model.inputs).toEqual([]);
    expect(NODE_SPECS.dataset.output).toBe('data');
    expect(NODE_SPECS.train.inputs).toEqual(['model', 'data']);
    expect(NODE_SPECS.gate.inputs).toEqual(['model', 'data']);
    expect(NODE_SPECS.export.output).toBeNull();
  });

  it('defaults form a valid one-stage pipeline', () => {
    const chain = ['model', 'freeze', 'replace', 'distill', 'unfreeze', 'train', 'gate', 'export'] as const;
    const p = {
      version: 1, info: { name: 'defaults', author: '', description: '' }, seed: 0, backend: 'auto',
      nodes: [...chain, 'dataset' as const].map((kind) => ({ id: kind, kind, params: defaultParams(kind) })),
      links: [...chain.slice(1).map((to, i) => ({ from: chain[i], to })), { from: 'dataset', to: 'train' }, { from: 'dataset', to: 'gate' }],
    } as Pipeline;
    expect(validatePipeline(p)).toEqual([]);
  });

  it('hands out copies of the defaults', () => {
    const a = defaultParams('train');
    a.curriculum[0].seq_len = 1;
    expect(NODE_SPECS.train.defaults.curriculum[0].seq_len).not.toBe(1);
  });
});
