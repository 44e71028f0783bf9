import { describe, expect, it } from 'vitest';
import { createMonitorStore } from '../stores/monitor-store';
import { CHARTS, drawLines, stageBands, tracePath, xAxisEnd } from './chart-data';
import type { XY } from '../series/downsample';

/** The path `tracePath` draws, as SVG path data (M = new subpath, L = segment). */
function pathData(points: XY[], breaks: number[], x: (v: number) => number, y: (v: number) => number): string {
  let d = '';
  tracePath(points, breaks, x, y, { moveTo: (px, py) => { d += `M${px},${py}`; }, lineTo: (px, py) => { d += `L${px},${py}`; } });
  return d;
}
import { syntheticRun } from '../bench/fixture';

describe('chart data', () => {
  const store = createMonitorStore();
  store.getState().load({ id: 'bench', name: 'b', status: 'running', startedAt: 0, stages: 3, final: {}, pipeline: null as never, events: syntheticRun(30_000), runDir: '' });
  const data = store.getState().data;

  it('draws every chart from the full series with at most 4 points per pixel column per line', () => {
    for (const chart of CHARTS.filter((c) => !c.shown || c.shown(data))) {
      const lines = drawLines(data, chart.lines(data), { xAxis: 'step', smoothing: 0.6, logScale: false, width: 250 });
      expect(lines.length, chart.id).toBeGreaterThan(0);
      for (const l of lines) {
        expect(l.points.length, `${chart.id} ${l.key}`).toBeLessThanOrEqual(1000);
        expect(l.sourcePoints).toBe(data.series.get(l.key)!.length);
      }
    }
    expect(data.series.get('loss')!.length).toBe(30_000);
  });

  it('labels the system chart CPU or GPU from the samples', () => {
    const labels = CHARTS.find((c) => c.id === 'system')!.lines(data).map((l) => l.label);
    expect(labels).toEqual(['CPU utilisation %', 'RSS MiB']);
  });

  it('tiles stage bands along the step axis and follows the time axis', () => {
    const bands = stageBands(data, 'step');
    expect(bands.map((b) => [b.x1, b.x2])).toEqual([[0, 10_000], [10_000, 20_000], [20_000, 29_999]]);
    const timeBands = stageBands(data, 'time');
    expect(timeBands[1].x1).toBeCloseTo(10_000 * 0.05);
  });

  it('drops non-positive values on a log scale', () => {
    const lines = drawLines(data, [{ key: 'lr', label: 'lr', color: '#fff', smooth: false }], { xAxis: 'step', smoothing: 0, logScale: true, width: 100 });
    expect(lines[0].points.every((p) => p.y > 0)).toBe(true);
  });
});

describe('the x axis end', () => {
  it('covers the last point by at most a tenth of a tick step and stays put while points arrive', () => {
    for (const xMax of [0.3, 7, 99, 1234, 99_999, 100_999, 2.5e6]) {
      const end = xAxisEnd(xMax);
      expect(end).toBeGreaterThanOrEqual(xMax);
      expect(end - xMax).toBeLessThanOrEqual(xMax * 0.05 + 1e-9); // a tick step is at most a quarter of the range
    }
    const ends = new Set<number>();
    for (let step = 100_000; step < 101_000; step += 4) ends.add(xAxisEnd(step));
    expect(ends.size).toBeLessThanOrEqual(2); // 250 appends, one axis change at most
    expect(xAxisEnd(0)).toBe(1);
  });
});

describe('incremental lines', () => {
  it('after live appends equal the lines drawn from scratch', () => {
    const events = syntheticRun(5_000);
    const steps = events.filter((e) => e.type === 'step');
    const cut = events.indexOf(steps[4_000]);
    const live = createMonitorStore();
    live.getState().load({ id: 'bench', name: 'b', status: 'running', startedAt: 0, stages: 3, final: {}, pipeline: null as never, events: events.slice(0, cut), runDir: '' });
    const loss = CHARTS[0];
    const opts = { xAxis: 'step' as const, smoothing: 0.6, logScale: false, width: 300, xEnd: 6_000 };
    drawLines(live.getState().data, loss.lines(live.getState().data), opts);
    for (let i = cut; i < events.length; i += 97) live.getState().ingest(events.slice(i, i + 97));
    const fresh = createMonitorStore();
    fresh.getState().load({ id: 'bench', name: 'b', status: 'running', startedAt: 0, stages: 3, final: {}, pipeline: null as never, events, runDir: '' });
    const a = drawLines(live.getState().data, loss.lines(live.getState().data), opts);
    const b = drawLines(fresh.getState().data, loss.lines(fresh.getState().data), opts);
    expect(a.map((l) => l.points)).toEqual(b.map((l) => l.points));
    expect(a[0].sourcePoints).toBe(5_000);
  });
});

describe('axis ticks', async () => {
  const { niceTicks, logTicks } = await import('./chart-data');
  it('gives a flat line a margin, also one that differs only in its last bits (an EMA of a constant)', () => {
    expect(niceTicks(1, 1).domain[0]).toBeLessThan(1);
    const { ticks } = niceTicks(0.9999999999999999, 1, 4);
    expect(ticks.length).toBeGreaterThan(1);
    expect(ticks.length).toBeLessThan(20);
  });

  it('rounds to 1/2/2.5/5 steps that cover the data', () => {
    expect(niceTicks(0, 100999, 5)).toEqual({ domain: [0, 125000], ticks: [0, 25000, 50000, 75000, 100000, 125000] });
    expect(niceTicks(0.8988, 0.9212, 4).ticks).toEqual([0.89, 0.9, 0.91, 0.92, 0.93]);
    expect(niceTicks(0, 1.05e-4, 4).ticks[0]).toBe(0); // no negative tick below a non-negative series
    expect(niceTicks(3, 3).domain[0]).toBeLessThan(3);
  });
  it('uses powers of ten on a log axis', () => {
    expect(logTicks(0.003, 7)).toEqual({ domain: [0.001, 10], ticks: [0.001, 0.01, 0.1, 1, 10] });
  });
});

describe('a paused run on the time axis', () => {
  it('draws no segment across the pause, but does on the step axis', () => {
    const store = createMonitorStore();
    const t0 = 1_700_000_000_000;
    const step = (i: number, time: number) => ({ runId: 'r', time, type: 'step' as const, metrics: {
      stage: 0, step: i, stage_step: i, loss: 5 - i, task_loss: 4, attn_kl_loss: 0, logit_kl_loss: 0, hidden_mse_loss: 0, lr: 1e-4, grad_norm: 1, tokens: 8, density: 1, seq_len: 8,
    } });
    store.getState().load({ id: 'r', name: 'r', status: 'running', startedAt: t0, stages: 1, final: {}, pipeline: null as never, runDir: '', events: [
      step(0, t0), step(1, t0 + 1000),
      { runId: 'r', time: t0 + 1500, type: 'status', status: 'paused' },
      { runId: 'r', time: t0 + 60_000, type: 'status', status: 'running' },
      step(2, t0 + 61_000), step(3, t0 + 62_000),
    ] });
    const data = store.getState().data;
    const spec = [{ key: 'loss', label: 'loss', color: '#fff', smooth: false }];
    const [time] = drawLines(data, spec, { xAxis: 'time', smoothing: 0, logScale: false, width: 100 });
    expect(time.breaks).toEqual([1.5]);
    const id = (v: number) => v;
    expect(pathData(time.points, time.breaks, id, id)).toBe('M0,5L1,4M61,3L62,2');
    const [steps] = drawLines(data, spec, { xAxis: 'step', smoothing: 0, logScale: false, width: 100 });
    expect(pathData(steps.points, steps.breaks, id, id)).toBe('M0,5L1,4L2,3L3,2');
  });
});
