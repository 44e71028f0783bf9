import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { MaskSpec, NodeKind, NodeOf, Pipeline, PipelineNode } from './schema';
import { NODE_KINDS } from './schema';
import { defaultParams } from './nodes';
import { modelStateAfter } from './order';
import { validatePipeline } from './validate';
import {
  applyChange, applyNode, describeLayers, initialModelState, layerIndices, layerRangeOf, nodeEffect, NO_OVERRIDES,
} from './model-state';

const seed: Pipeline = JSON.parse(readFileSync(new URL('../templates/seed-progressive.json', import.meta.url), 'utf8'));
const mask = (selector: MaskSpec['selector']): MaskSpec => ({ ...(defaultParams('replace').mask), selector, topk_blocks: selector === 'none' ? 0 : 4 });
const node = <K extends NodeKind>(kind: K, params: Partial<PipelineNode['params']> = {}, id = `${kind}-1`): PipelineNode =>
  ({ id, kind, params: { ...defaultParams(kind), ...params } }) as PipelineNode;

describe('layerIndices: a range outside the model is an error, never narrowed', () => {
  it('turns a 1-based inclusive range into 0-based indices', () => {
    expect(layerIndices([4, 6], 12)).toEqual([3, 4, 5]);
    expect(layerIndices([12, 12], 12)).toEqual([11]);
  });
  it('throws, naming the field, for ranges past the model, below 1, reversed or fractional', () => {
    expect(() => layerIndices([10, 13], 12, 'r.layers')).toThrow("r.layers: range [10, 13] is outside the model's layers 1-12");
    expect(() => layerIndices([0, 2], 12)).toThrow(/outside/);
    expect(() => layerIndices([5, 4], 12)).toThrow(/outside/);
    expect(() => layerIndices([1.5, 2], 12)).toThrow(/outside/);
  });
  it('is what the editor shows: the layer strip of a range past the model names the problem', () => {
    const p = structuredClone(seed);
    const replace = p.nodes.find((n) => n.id === 's1-replace')!;
    if (replace.kind !== 'replace') throw new Error('template changed');
    replace.params.layers = [10, 14];
    expect(() => modelStateAfter(p, 's1-train')).toThrow("s1-replace.layers: range [10, 14] is outside the model's layers 1-12");
    // ...and the validator reports the same range (and never throws on it).
    expect(validatePipeline(p)).toContainEqual(expect.objectContaining({ node: 's1-replace', message: "layer 14 is past the model's 12 layers (range 10-14)" }));
  });
});

describe('nodeEffect', () => {
  it('answers for every kind: only Freeze, Replace and Unfreeze change the model', () => {
    const changing = NODE_KINDS.filter((k) => nodeEffect(initialModelState(12), node(k)) !== null);
    expect(changing).toEqual(['freeze', 'replace', 'unfreeze']);
    expect(NODE_KINDS.filter((k) => layerRangeOf(node(k)) !== null)).toEqual(['freeze', 'replace', 'unfreeze']);
  });

  it('Freeze of a range touches only those layers; Freeze all also the outside parameters', () => {
    const state = initialModelState(4);
    applyNode(state, node('freeze', { layers: [2, 3], kinds: ['q', 'k', 'embeddings'] }));
    expect(state.layers.map((l) => l.trainable.join('+'))).toEqual(['q+k+v+o+mlp+norms', 'v+o+mlp+norms', 'v+o+mlp+norms', 'q+k+v+o+mlp+norms']);
    expect(state.outside.trainable).toEqual(['norms', 'embeddings']);
    const effect = applyNode(state, node('freeze', { layers: 'all', kinds: ['norms', 'embeddings'] }));
    expect(effect!.summary).toBe('freeze-1: froze norms,embeddings of all layers');
    expect(state.outside.trainable).toEqual([]);
  });

  it('Replace sets the mask, and a trainable indexer trains from the start', () => {
    const state = initialModelState(4);
    applyNode(state, node('freeze', { layers: 'all' }));
    const effect = applyNode(state, node('replace', { layers: [2, 3], mask: mask('indexer') }));
    expect(effect!.changes.map((c) => c.type)).toEqual(['attention', 'attention', 'trainable']);
    expect(effect!.summary).toBe('replace-1: block-sparse attention on layers 2-3');
    expect(state.layers.map((l) => [l.attention, l.replacedBy ?? null, l.trainable.join('+')])).toEqual([
      ['dense', null, ''], ['sparse', 'replace-1', 'selector'], ['sparse', 'replace-1', 'selector'], ['dense', null, ''],
    ]);
    const pooled = initialModelState(2);
    expect(applyNode(pooled, node('replace', { layers: [1, 2], mask: mask('pooled') }))!.changes.map((c) => c.type)).toEqual(['attention', 'attention']);
    expect(pooled.layers[0].trainable).not.toContain('selector');
  });

  it('Unfreeze with replaced_only skips dense layers; a selector only where there is an indexer', () => {
    const state = initialModelState(4);
    applyNode(state, node('freeze', { layers: 'all' }));
    applyNode(state, node('replace', { layers: [1, 1], mask: mask('indexer') }, 'r1'));
    applyNode(state, node('replace', { layers: [2, 2], mask: mask('none') }, 'r2'));
    const effect = applyNode(state, node('unfreeze', { layers: [1, 4], kinds: ['q', 'selector', 'embeddings'], replaced_only: true }));
    expect(effect!.summary).toBe('unfreeze-1: unfroze q,selector,embeddings of layers 1-2 (replaced layers only)');
    expect(state.layers.map((l) => l.trainable.join('+'))).toEqual(['q+selector', 'q', '', '']);
    expect(state.outside.trainable).toEqual([]);
  });

  it('gate retries: rollback_sparsity makes Replace denser by levels, then skips it; refreeze keeps chosen layers frozen; all say so', () => {
    const state = initialModelState(4);
    const r = node('replace', { layers: [1, 2] }) as NodeOf<'replace'>;
    const denser = nodeEffect(state, r, { ...NO_OVERRIDES, denserLevels: 2 })!;
    const m = r.params.mask;
    const want = m.random_blocks > 0 ? { ...m, random_blocks: m.random_blocks + 4 } : { ...m, window_blocks: m.window_blocks + 2 };
    expect(denser.changes.filter((c) => c.type === 'attention').map((c) => c.type === 'attention' && c.mask)).toEqual([want, want]);
    expect(denser.summary).toMatch(/^replace-1: block-sparse attention on layers 1-2, 2 levels denser \(rollback_sparsity: (random|window)_blocks \d+ -> \d+, (random|window)_blocks \d+ -> \d+\)$/);
    const replace = nodeEffect(state, r, { ...NO_OVERRIDES, skipReplace: true })!;
    expect(replace).toEqual({ changes: [], summary: 'replace-1: skipped (rollback_sparsity: layers 1-2 keep their previous attention)' });
    const unfreeze = nodeEffect(state, node('unfreeze', { layers: [2, 4], kinds: ['q'], replaced_only: false }), { ...NO_OVERRIDES, refrozen: [3, 2] })!;
    expect(unfreeze.changes).toEqual([{ type: 'trainable', selection: { layers: [1], kinds: ['q'] }, trainable: true }]);
    expect(unfreeze.summary).toBe('unfreeze-1: unfroze q of layer 2; refreeze: layers 3-4 stay frozen');
  });

  it('selects nothing rather than issuing an empty change', () => {
    const state = initialModelState(4);
    expect(nodeEffect(state, node('unfreeze', { layers: [1, 4], replaced_only: true }))!.changes).toEqual([]);
  });
});

describe('applyChange', () => {
  it('a denser mask keeps who replaced the layer; dense attention clears it and the selector', () => {
    const state = initialModelState(2);
    applyNode(state, node('replace', { layers: [1, 1], mask: mask('indexer') }, 'r1'));
    applyChange(state, { type: 'attention', layer: 0, mask: { ...mask('indexer'), random_blocks: 10 } });
    expect([state.layers[0].replacedBy, state.layers[0].mask!.random_blocks, state.layers[0].trainable.includes('selector')]).toEqual(['r1', 10, true]);
    applyChange(state, { type: 'attention', layer: 0, mask: null });
    expect(state.layers[0]).toEqual({ attention: 'dense', trainable: ['q', 'k', 'v', 'o', 'mlp', 'norms'] });
  });
  it('describes 0-based layers in the schema\'s numbering', () => {
    expect(describeLayers([3, 4, 5])).toBe('layers 4-6');
    expect(describeLayers([0, 2])).toBe('layers 1,3');
  });
});
