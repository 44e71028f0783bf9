import { describe, expect, it } from 'vitest';
import type { RunSummary } from '../../../core/api';
import { familyOrder } from './run-family';

const run = (id: string, parent?: string): RunSummary => ({
  id, name: id, status: 'completed', startedAt: 0, stages: 2, final: {}, ...(parent ? { parent: { runId: parent, stage: 1 } } : {}),
});

describe('familyOrder', () => {
  it('lists children under their parent, one level deeper per generation', () => {
    const rows = familyOrder([run('d', 'b'), run('c'), run('b', 'a'), run('e', 'a'), run('a')]);
    expect(rows.map((r) => `${r.run.id}:${r.depth}`)).toEqual(['c:0', 'a:0', 'b:1', 'd:2', 'e:1']);
  });

  it('keeps a run whose parent is not listed, and survives a parent loop', () => {
    expect(familyOrder([run('x', 'gone')]).map((r) => r.depth)).toEqual([0]);
    expect(familyOrder([run('p', 'q'), run('q', 'p')]).map((r) => r.run.id).sort()).toEqual(['p', 'q']);
  });
});
