import { describe, expect, it } from 'vitest';
import { splitDocuments } from './split';

const groups = [...Array(40).fill('news'), ...Array(20).fill('fiction'), ...Array(10).fill('humor')];

describe('splitDocuments', () => {
  it('holds out about the fraction from every group', () => {
    const { train, validation } = splitDocuments(groups, 0.1, 7);
    const held = (g: string) => validation.filter((i) => groups[i] === g).length;
    expect([held('news'), held('fiction'), held('humor')]).toEqual([4, 2, 1]);
    expect(train.length + validation.length).toBe(groups.length);
    expect(new Set([...train, ...validation]).size).toBe(groups.length);
  });

  it('is deterministic per seed and differs between seeds', () => {
    expect(splitDocuments(groups, 0.2, 1)).toEqual(splitDocuments(groups, 0.2, 1));
    expect(splitDocuments(groups, 0.2, 1).validation).not.toEqual(splitDocuments(groups, 0.2, 2).validation);
  });

  it('holds out at least one document when there are two or more', () => {
    expect(splitDocuments(['a', 'b'], 0.1, 1).validation).toHaveLength(1);
    expect(splitDocuments(['a'], 0.1, 1)).toEqual({ train: [0], validation: [] });
  });

  it('rejects a fraction outside (0, 0.5)', () => {
    expect(() => splitDocuments(groups, 0.5, 1)).toThrow('dataset.validation_fraction: 0.5 is outside (0, 0.5)');
    expect(() => splitDocuments(groups, 0, 1)).toThrow('dataset.validation_fraction: 0 is outside (0, 0.5)');
  });
});
