import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Pipeline } from './schema';
import { executionOrder, fullModelStateAfter, modelStateAfter, stagesOf, trailingOps } from './order';

const seed: Pipeline = JSON.parse(readFileSync(new URL('../templates/seed-progressive.json', import.meta.url), 'utf8'));

describe('executionOrder', () => {
  it('orders the seed template along its chain, ties by id', () => {
    expect(executionOrder(seed)).toEqual(['data', 'model', 's1-freeze', 's1-replace', 's1-unfreeze', 's1-distill', 's1-train', 's1-gate',
      's2-replace-a', 's2-replace-b', 's2-unfreeze', 's2-train', 's2-gate', 's3-replace', 's3-unfreeze', 's3-train', 's3-gate', 'export']);
  });

  it('does not depend on how nodes and links are listed', () => {
    const shuffled = { ...seed, nodes: [...seed.nodes].reverse(), links: [...seed.links].reverse() };
    expect(executionOrder(shuffled)).toEqual(executionOrder(seed));
  });

  it('breaks ties between ready nodes by id', () => {
    const p = structuredClone(seed);
    p.nodes.push({ id: 'a-export', kind: 'export', params: { path: 'x', flex_masks: false, mask_seq_len: 64 } });
    p.links.push({ from: 's1-gate', to: 'a-export' });
    const order = executionOrder(p);
    expect(order.indexOf('a-export')).toBe(order.indexOf('s1-gate') + 1);
  });

  it('throws on a cycle, naming the nodes', () => {
    const p = structuredClone(seed);
    p.links.push({ from: 's1-gate', to: 's1-freeze' });
    expect(() => executionOrder(p)).toThrow(/cycle through 's1-distill', 's1-freeze'/);
  });
});

describe('stagesOf', () => {
  it('finds the three seed stages with their ops, gates and data', () => {
    const stages = stagesOf(seed);
    expect(stages.map((s) => [s.index, s.name, s.train, s.gate])).toEqual([
      [0, 'Stage 1: foundation', 's1-train', 's1-gate'],
      [1, 'Stage 2: expansion', 's2-train', 's2-gate'],
      [2, 'Stage 3: optimisation', 's3-train', 's3-gate'],
    ]);
    expect(stages.map((s) => s.ops)).toEqual([['s1-freeze', 's1-replace', 's1-unfreeze', 's1-distill'], ['s2-replace-a', 's2-replace-b', 's2-unfreeze'], ['s3-replace', 's3-unfreeze']]);
    expect(stages.every((s) => s.distill === 's1-distill' && s.dataset === 'data' && s.gateDataset === 'data')).toBe(true);
    expect(trailingOps(seed)).toEqual(['export']);
  });

  it('names unlabelled stages by number and allows a stage without a gate', () => {
    const p = structuredClone(seed);
    delete (p.nodes.find((n) => n.id === 's2-train') as { label?: string }).label;
    p.nodes = p.nodes.filter((n) => n.id !== 's2-gate');
    p.links = p.links.filter((l) => l.to !== 's2-gate').map((l) => (l.from === 's2-gate' ? { from: 's2-train', to: l.to } : l));
    const stage = stagesOf(p)[1];
    expect(stage.name).toBe('Stage 2');
    expect(stage.gate).toBeNull();
    expect(stage.gateDataset).toBeNull();
  });
});

describe('modelStateAfter', () => {
  const summary = (p: Pipeline, id: string) => modelStateAfter(p, id).map((l) => `${l.attention === 'sparse' ? 'S' : 'D'}:${l.trainable.join('+')}`);

  it('starts dense and fully trainable at the Model node', () => {
    const layers = modelStateAfter(seed, 'model');
    expect(layers).toHaveLength(12);
    expect(layers[0]).toEqual({ attention: 'dense', trainable: ['q', 'k', 'v', 'o', 'mlp', 'norms'] });
    expect(fullModelStateAfter(seed, 'model').outside.trainable).toEqual(['norms', 'embeddings']);
  });

  it('freezes everything, then only Q/K/V of the replaced layers 4-6 train in stage 1', () => {
    expect(summary(seed, 's1-freeze')).toEqual(Array(12).fill('D:'));
    expect(fullModelStateAfter(seed, 's1-freeze').outside.trainable).toEqual([]);
    expect(summary(seed, 's1-train')).toEqual(['D:', 'D:', 'D:', 'S:q+k+v', 'S:q+k+v', 'S:q+k+v', 'D:', 'D:', 'D:', 'D:', 'D:', 'D:']);
    const layer4 = modelStateAfter(seed, 's1-replace')[3];
    expect(layer4.mask).toMatchObject({ random_blocks: 3, global_blocks: 2, window_blocks: 2, topk_blocks: 4, selector: 'pooled' });
    expect(layer4.replacedBy).toBe('s1-replace');
  });

  it('unfreezes Q/K/V of replaced layers 4-10 in stage 2, with sparser masks than stage 1', () => {
    expect(summary(seed, 's2-train')).toEqual(['D:', 'D:', 'D:', ...Array(7).fill('S:q+k+v'), 'D:', 'D:']);
    const layers = modelStateAfter(seed, 's2-gate');
    const extraBlocks = layers.map((l) => (l.mask ? l.mask.random_blocks + l.mask.topk_blocks : null));
    expect(extraBlocks).toEqual([null, null, null, 7, 7, 7, 3, 3, 3, 3, null, null]);
  });

  it('ends with layers 11-12 on global + window attention, Q/K/V trainable', () => {
    const layers = modelStateAfter(seed, 'export');
    expect(layers.slice(10).map((l) => [l.attention, l.mask?.selector, l.mask?.window_blocks, l.trainable])).toEqual([
      ['sparse', 'none', 3, ['q', 'k', 'v']],
      ['sparse', 'none', 3, ['q', 'k', 'v']],
    ]);
    expect(layers.filter((l) => l.attention === 'sparse')).toHaveLength(9);
  });

  it('does not let a later node change an earlier state, and copies masks', () => {
    const before = modelStateAfter(seed, 's1-gate');
    before[3].mask!.block_size = 999;
    expect(modelStateAfter(seed, 's1-gate')[3].mask!.block_size).toBe(16);
    expect(modelStateAfter(seed, 's1-gate')[7].attention).toBe('dense');
  });

  it('Unfreeze with replaced_only skips dense layers (the editor asks this of unfinished graphs too)', () => {
    const p = structuredClone(seed);
    const unfreeze = p.nodes.find((n) => n.id === 's2-unfreeze')!;
    if (unfreeze.kind !== 'unfreeze') throw new Error('template changed');
    unfreeze.params.layers = [1, 12];
    unfreeze.params.kinds = ['o', 'embeddings'];
    const stage1 = Array(3).fill('S:q+k+v+o'), stage2 = Array(4).fill('S:o');
    expect(summary(p, 's2-unfreeze')).toEqual(['D:', 'D:', 'D:', ...stage1, ...stage2, 'D:', 'D:']);
    unfreeze.params.replaced_only = false;
    expect(summary(p, 's2-unfreeze')).toEqual(['D:o', 'D:o', 'D:o', ...stage1, ...stage2, 'D:o', 'D:o']);
  });

  it('answers for a Dataset with the fresh model and throws for an unknown id', () => {
    expect(summary(seed, 'data')[0]).toBe('D:q+k+v+o+mlp+norms');
    expect(() => modelStateAfter(seed, 'nope')).toThrow("no node with id 'nope'");
  });
});
