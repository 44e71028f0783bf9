import { describe, expect, it, vi } from 'vitest';
import type { RunEvent, StepMetrics, EvalMetrics } from '../../../core/events';
import type { RunDetail, StudioApi } from '../../../core/api';
import type { StudioConnection } from '../api/connection';
import { createMonitorStore } from './monitor-store';
import { followRun } from './follow-run';
import { CHARTS } from '../monitor/chart-data';

const T0 = 1_700_000_000_000;

function step(i: number, stage = 0, time = T0 + i * 100): RunEvent {
  const metrics: StepMetrics = {
    stage, step: i, stage_step: i, loss: 5 - i * 0.01, task_loss: 4, attn_kl_loss: 0.1, logit_kl_loss: 0.2,
    hidden_mse_loss: 0.3, lr: 1e-4, grad_norm: 1.5, tokens: 512, density: 0.6, seq_len: 128,
  };
  return { runId: 'r1', time, type: 'step', metrics };
}

function evalEvent(i: number): RunEvent {
  const metrics: EvalMetrics = {
    stage: 0, step: i, loss: 4, ppl: 54, ppl_teacher: 52, ppl_ratio: 0.96, attn_kl: 0.05, attn_recall: 0.9, logit_kl: 0.1,
    out_cos: 0.97, density: 0.6, sparsity: 0.4, attn_flops_saved: 0.35,
    per_layer: { attn_kl: [null, 0.04, 0.06], attn_recall: [null, 0.9, 0.9], density: [null, 0.5, 0.7] },
  };
  return { runId: 'r1', time: T0 + i * 100 + 1, type: 'eval', metrics };
}

function detail(events: RunEvent[], status: RunDetail['status'] = 'running'): RunDetail {
  return { id: 'r1', name: 'demo', status, startedAt: T0, stages: 1, final: {}, pipeline: { version: 1 } as never, events, runDir: '/tmp/r1' };
}

describe('monitor store', () => {
  it('folds steps, evals, stages and gates into series and spans', () => {
    const store = createMonitorStore();
    const events: RunEvent[] = [
      { runId: 'r1', time: T0, type: 'status', status: 'running' },
      { runId: 'r1', time: T0, type: 'stage_start', stage: 0, node: 'train-1', name: 'foundation', steps: 20 },
      ...Array.from({ length: 20 }, (_, i) => step(i)),
      evalEvent(19),
      { runId: 'r1', time: T0 + 2000, type: 'gate', verdict: { stage: 0, node: 'gate-1', passed: true, checks: [], action: 'none', attempt: 1 } },
      { runId: 'r1', time: T0 + 2001, type: 'stage_end', stage: 0, node: 'train-1', status: 'passed' },
      { runId: 'r1', time: T0 + 2002, type: 'system', sample: { source: 'cpu', utilization: 80, memory_bytes: 2 ** 30 } },
    ];
    store.getState().load(detail(events));
    const { data, status } = store.getState();
    expect(status).toBe('running');
    expect(data.series.get('loss')!.length).toBe(20);
    expect(data.series.get('loss')!.value.get(19)).toBeCloseTo(4.81);
    expect(data.series.get('attn_kl')!.value.get(0)).toBe(0.05);
    expect(data.series.get('attn_kl.layer1')!.value.get(0)).toBeNaN(); // dense layer
    expect(data.series.get('attn_kl.layer3')!.value.get(0)).toBe(0.06);
    // 10 steps of 512 tokens per second of wall time
    expect(data.series.get('tokens_per_s')!.value.get(19)).toBeCloseTo(5120);
    expect(data.series.get('system.memory')!.value.get(0)).toBe(1024);
    expect(data.systemSource).toBe('cpu');
    expect(data.stages).toHaveLength(1);
    expect(data.stages[0]).toMatchObject({ startStep: 0, endStep: 19, status: 'passed', attempt: 1 });
    expect(data.stages[0].verdicts[0].passed).toBe(true);
    expect(data.layerDensity[0].values).toEqual([null, 0.5, 0.7]);
  });

  it('keeps attn_entropy as a series only when steps report it; its chart shows with it', () => {
    const withTerm = (i: number): RunEvent => {
      const e = step(i) as Extract<RunEvent, { type: 'step' }>;
      return { ...e, metrics: { ...e.metrics, attn_entropy: 3 - i * 0.1 } };
    };
    const chart = CHARTS.find((c) => c.id === 'attn_entropy')!;
    const on = createMonitorStore();
    on.getState().load(detail([withTerm(0), withTerm(1)]));
    expect(on.getState().data.series.get('attn_entropy')!.value.get(1)).toBeCloseTo(2.9, 12);
    expect(chart.shown!(on.getState().data)).toBe(true);
    const off = createMonitorStore();
    off.getState().load(detail([step(0), step(1)]));
    expect(off.getState().data.series.has('attn_entropy')).toBe(false);
    expect(chart.shown!(off.getState().data)).toBe(false);
  });

  it('bumps version per batch, ignores other runs, and clears', () => {
    const store = createMonitorStore();
    store.getState().load(detail([]));
    const v = store.getState().version;
    store.getState().ingest([step(0), step(1), { ...step(2), runId: 'other' }]);
    expect(store.getState().version).toBe(v + 1);
    expect(store.getState().data.series.get('loss')!.length).toBe(2);
    store.getState().ingest([{ runId: 'r1', time: T0 + 500, type: 'status', status: 'completed' }]);
    expect(store.getState().status).toBe('completed');
    store.getState().clear();
    expect(store.getState().runId).toBeNull();
    expect(store.getState().data.series.size).toBe(0);
  });
});

// An in-process service: the run history lives here, events go to subscribers.
function fakeService(history: RunEvent[]) {
  const listeners = new Set<(e: RunEvent) => void>();
  const reconnects = new Set<() => void>();
  let answerGetRun: (() => void) | null = null;
  let holdGetRun = false;
  const api = {
    getRun: async () => {
      if (holdGetRun) await new Promise<void>((resolve) => { answerGetRun = resolve; });
      return detail(history.slice());
    },
    onRunEvent: (l: (e: RunEvent) => void) => { listeners.add(l); return () => listeners.delete(l); },
  } as unknown as StudioApi;
  const connection: StudioConnection = {
    api, kind: 'websocket', getState: () => 'open', onStateChange: () => () => {},
    onReconnect: (l) => { reconnects.add(l); return () => reconnects.delete(l); }, close: () => {},
  };
  return {
    connection,
    emit(e: RunEvent, record = true) { if (record) history.push(e); for (const l of listeners) l(e); },
    reconnect() { for (const l of reconnects) l(); },
    hold() { holdGetRun = true; },
    release() { holdGetRun = false; answerGetRun?.(); },
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('followRun', () => {
  it('loads the history, then adds live events without duplicates', async () => {
    const history = [step(0), step(1)];
    const service = fakeService(history);
    const store = createMonitorStore();
    service.hold();
    const stop = followRun(service.connection, store, 'r1', { schedule: (f) => f() });
    service.emit(step(2));           // arrives while getRun is in flight: history has it too
    service.release();
    await tick(); await tick();
    expect(store.getState().data.series.get('loss')!.length).toBe(3);
    service.emit(step(3));
    expect(store.getState().data.series.get('loss')!.length).toBe(4);
    stop();
    service.emit(step(4));
    expect(store.getState().data.series.get('loss')!.length).toBe(4);
  });

  it('re-fetches the whole run after a reconnect and shows the points it missed', async () => {
    const history = [step(0)];
    const service = fakeService(history);
    const store = createMonitorStore();
    const stop = followRun(service.connection, store, 'r1', { schedule: (f) => f() });
    await tick();
    expect(store.getState().data.series.get('loss')!.length).toBe(1);
    history.push(step(1), step(2), step(3)); // sent while the link was down
    service.reconnect();
    await tick(); await tick();
    const loss = store.getState().data.series.get('loss')!;
    expect(loss.length).toBe(4);
    expect(Array.from(loss.step.toArray())).toEqual([0, 1, 2, 3]);
    stop();
  });
});

describe('a live run at 20 steps/s', () => {
  it('stores every one of 2,000 steps once, in order, with the evals and samples between them', async () => {
    vi.useFakeTimers();
    try {
      // Steps 50 ms apart; an eval and a system sample every 100 steps at the step's own
      // millisecond (same time, different content: none may be taken for a duplicate).
      const events: RunEvent[] = [];
      for (let i = 0; i < 2_000; i++) {
        const time = T0 + i * 50;
        events.push(step(i, 0, time));
        if (i % 100 === 99) {
          events.push({ ...evalEvent(i), time });
          events.push({ runId: 'r1', time, type: 'system', sample: { source: 'cpu', utilization: i % 97, memory_bytes: 2 ** 30 } });
        }
      }
      // The service: live events to subscribers; getRun answers a snapshot of the run's log
      // taken right after step 299 (before that step's eval and sample, which share its
      // millisecond), and the answer arrives 1 s later while the stream goes on.
      const listeners = new Set<(e: RunEvent) => void>();
      let answer: (d: RunDetail) => void = () => {};
      const api = {
        getRun: () => new Promise<RunDetail>((resolve) => { answer = resolve; }),
        onRunEvent: (l: (e: RunEvent) => void) => { listeners.add(l); return () => listeners.delete(l); },
      } as unknown as StudioApi;
      const connection: StudioConnection = { api, kind: 'websocket', getState: () => 'open', onStateChange: () => () => {}, onReconnect: () => () => {}, close: () => {} };
      const store = createMonitorStore();
      const stop = followRun(connection, store, 'r1'); // the app's own batching (a flush every 200 ms)
      for (const [n, e] of events.entries()) {
        for (const l of listeners) l(e);
        if (e.type === 'step' && e.metrics.step === 299) {
          const snapshot = detail(events.slice(0, n + 1));
          setTimeout(() => answer(snapshot), 1000);
        }
        if (e.type === 'step') await vi.advanceTimersByTimeAsync(50);
      }
      await vi.advanceTimersByTimeAsync(1000);
      const data = store.getState().data;
      expect(data.eventCount).toBe(events.length);
      expect(Array.from(data.series.get('loss')!.step.toArray())).toEqual(Array.from({ length: 2_000 }, (_, i) => i));
      expect(Array.from(data.series.get('loss')!.value.toArray())).toEqual(events.filter((e) => e.type === 'step').map((e) => e.metrics.loss));
      expect(data.series.get('attn_kl')!.length).toBe(20);
      expect(data.series.get('system.utilization')!.length).toBe(20);
      expect(store.getState().version).toBeGreaterThan(400); // batches of a few steps, not one at the end
      stop();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('session hash', () => {
  it('round-trips view and run id through the URL hash', async () => {
    const { formatHash, parseHash, createSessionStore } = await import('./session-store');
    expect(formatHash('monitor', 'r 1')).toBe('#/monitor/r%201');
    expect(parseHash('#/monitor/r%201')).toEqual({ view: 'monitor', activeRunId: 'r 1' });
    expect(parseHash('#/bogus')).toEqual({ view: 'editor', activeRunId: null });
    expect(createSessionStore('#/runs').getState().view).toBe('runs');
  });
});
