import { describe, expect, it } from 'vitest';
import type { RunSummary } from '../../../core/api';
import { createLiveRunsStore, runToShow } from './live-runs';

const summary = (id: string, status: RunSummary['status'], startedAt: number): RunSummary => ({ id, name: id, status, startedAt, stages: 0, final: {} });

describe('live runs', () => {
  it('keeps running, paused and queued runs, in start order, from the list and then from status events', () => {
    const store = createLiveRunsStore();
    store.getState().setFromList([summary('b', 'queued', 2), summary('old', 'completed', 0), summary('a', 'running', 1)]);
    expect(store.getState().runs.map((r) => `${r.id}:${r.status}`)).toEqual(['a:running', 'b:queued']);
    store.getState().setStatus('a', 'cancelled', 5);
    store.getState().setStatus('b', 'running', 6);
    store.getState().setStatus('c', 'queued', 7);
    expect(store.getState().runs.map((r) => `${r.id}:${r.status}`)).toEqual(['b:running', 'c:queued']);
  });

  it('shows the newest started run after a reload, else the first queued one', () => {
    expect(runToShow([{ id: 'a', status: 'running', startedAt: 1 }, { id: 'b', status: 'queued', startedAt: 2 }])).toBe('a');
    expect(runToShow([{ id: 'b', status: 'queued', startedAt: 2 }, { id: 'c', status: 'queued', startedAt: 3 }])).toBe('b');
    expect(runToShow([])).toBeNull();
  });
});
