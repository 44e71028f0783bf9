import { describe, expect, it } from 'vitest';
import { createMonitorStore } from '../stores/monitor-store';
import { CHARTS, drawLines, stageBands } from './chart-data';
import { syntheticRun } from '../bench/fixture';

describe('chart data', () => {
  const store = createMonitorStore();
  store.getState().load({ id: 'bench', name: 'b', status: 'running', startedAt: 0, stages: 3, final: {}, pipeline: null as never, events: syntheticRun(30_000), runDir: '' });
  const data = store.getState().data;

  it('draws every chart from the full series with at most ~2 points per bucket per line', () => {
    for (const chart of CHARTS) {
      const lines = drawLines(data, chart.lines(data), { xAxis: 'step', smoothing: 0.6, logScale: false, buckets: 250 });
      expect(lines.length, chart.id).toBeGreaterThan(0);
      for (const l of lines) expect(l.points.length, `${chart.id} ${l.key}`).toBeLessThanOrEqual(502);
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
    const lines = drawLines(data, [{ key: 'lr', label: 'lr', color: '#fff', smooth: false }], { xAxis: 'step', smoothing: 0, logScale: true, buckets: 100 });
    expect(lines[0].points.every((p) => p.y > 0)).toBe(true);
  });
});

describe('axis ticks', async () => {
  const { niceTicks, logTicks } = await import('./chart-data');
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
