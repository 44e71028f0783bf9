import { describe, expect, it } from 'vitest';
import type { Pipeline } from '../../../core/schema';
import { placeText, problemPlace } from './problem-text';

const pipeline = {
  nodes: [{ id: 'model', kind: 'model', params: {} }, { id: 's1-train', kind: 'train', label: 'Stage 1', params: {} }],
} as unknown as Pipeline;

describe('problem places', () => {
  it('name the node by id and label, and the field without the array index', () => {
    expect(placeText(problemPlace(pipeline, { path: 'nodes[1].params.lr', message: 'x', node: 's1-train' }))).toBe('s1-train “Stage 1” · lr');
    expect(placeText(problemPlace(pipeline, { path: 'nodes[0].params.source', message: 'x' }))).toBe('model · source');
    expect(placeText(problemPlace(pipeline, { path: 'links[2]', message: 'x', node: 's1-train' }))).toBe('s1-train “Stage 1” · links[2]');
    expect(placeText(problemPlace(pipeline, { path: 'seed', message: 'x' }))).toBe('seed');
  });
});
