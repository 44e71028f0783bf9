import { describe, expect, it } from 'vitest';
import type { RunEvent } from '../../../core/events';
import { createMonitorStore } from '../stores/monitor-store';
import { runNotice } from './RunMonitor';

const T0 = 1_700_000_000_000;

describe('a cancelled run', () => {
  it('marks its stage cancelled, not failed', () => {
    const store = createMonitorStore();
    store.getState().load({ id: 'r1', name: 'demo', status: 'running', startedAt: T0, stages: 1, final: {}, pipeline: { version: 1 } as never, events: [], runDir: '/tmp/r1' });
    const events: RunEvent[] = [
      { runId: 'r1', time: T0, type: 'stage_start', stage: 0, node: 't', name: 'one', steps: 10 },
      { runId: 'r1', time: T0 + 1, type: 'stage_end', stage: 0, node: 't', status: 'cancelled' },
      { runId: 'r1', time: T0 + 2, type: 'status', status: 'cancelled', message: 'cancelled after step 3' },
    ];
    store.getState().ingest(events);
    expect(store.getState().data.stages.map((s) => s.status)).toEqual(['cancelled']);
    expect(store.getState().status).toBe('cancelled');
  });

  it('tells the status bar, as do the other ends of a live run', () => {
    expect(runNotice('r1', 'running', 'cancelled', 'cancelled after step 3')).toEqual({ text: 'Run r1 cancelled: cancelled after step 3', tone: 'info' });
    expect(runNotice('r1', 'paused', 'failed', 'boom')).toEqual({ text: 'Run r1 failed: boom', tone: 'error' });
    expect(runNotice('r1', 'queued', 'running', '')).toEqual({ text: 'Run r1 left the queue and is running', tone: 'info' });
    expect(runNotice('r1', 'completed', 'completed', '')).toBeNull();
    expect(runNotice('r1', 'running', 'paused', '')).toBeNull();
  });
});
