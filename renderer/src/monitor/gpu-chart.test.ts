// The GPU panel's data: recorded samples (no GPU here) become one line per device for
// utilisation, memory, power and temperature, on the same step/time axis as the stage bands.
import { describe, expect, it } from 'vitest';
import type { RunEvent, SystemSample } from '../../../core/events';
import { createMonitorStore } from '../stores/monitor-store';
import { CHARTS, drawLines, gpuDevices, stageBands } from './chart-data';

const T0 = 1_700_000_000_000;
const step = (i: number, time: number): RunEvent => ({ runId: 'r', time, type: 'step', metrics: { stage: 0, step: i, stage_step: i, loss: 5, task_loss: 5, attn_kl_loss: 0, logit_kl_loss: 0, hidden_mse_loss: 0, lr: 1e-4, grad_norm: 1, tokens: 512, density: 1, seq_len: 64 } });
const sample = (time: number, s: SystemSample): RunEvent => ({ runId: 'r', time, type: 'system', sample: s });
const twoGpus = (k: number): SystemSample => ({
  source: 'gpu', utilization: 90, memory_bytes: 10 * 2 ** 30,
  devices: [
    { index: 0, name: 'H100', utilization: 90 + k, memory_bytes: 10 * 2 ** 30, memory_total_bytes: 80 * 2 ** 30, power_watts: 300 + k, temperature_c: 60 },
    { index: 1, name: 'H100', utilization: 10, memory_bytes: 2 ** 30, power_watts: 80, temperature_c: 40 },
  ],
});

function load(events: RunEvent[]) {
  const store = createMonitorStore();
  store.getState().load({ id: 'r', name: 'r', status: 'running', startedAt: T0, stages: 1, final: {}, pipeline: null as never, events, runDir: '' });
  return store.getState().data;
}
const chart = (id: string) => CHARTS.find((c) => c.id === id)!;
const shown = (data: ReturnType<typeof load>) => CHARTS.filter((c) => !c.shown || c.shown(data)).map((c) => c.id);

describe('GPU panel', () => {
  const events: RunEvent[] = [
    { runId: 'r', time: T0, type: 'stage_start', stage: 0, node: 't', name: 'Distil', steps: 4 },
    ...[0, 1, 2, 3].flatMap((i) => [step(i, T0 + 1000 * (i + 1)), sample(T0 + 1000 * (i + 1) + 500, twoGpus(i))]),
    { runId: 'r', time: T0 + 5000, type: 'stage_end', stage: 0, node: 't', status: 'done' },
  ];
  const data = load(events);

  it('keeps one series per device and field, and shows the GPU charts instead of the CPU one', () => {
    expect(gpuDevices(data)).toEqual([0, 1]);
    expect(data.series.get('gpu0.utilization')!.length).toBe(4);
    expect(data.series.get('gpu0.memory')!.value.get(0)).toBe(10 * 1024);
    expect(data.series.get('gpu1.power')!.value.get(3)).toBe(80);
    expect(data.series.has('system.utilization')).toBe(false); // GPU numbers never land on the CPU line
    expect(shown(data)).toEqual(expect.arrayContaining(['gpu_utilization', 'gpu_memory', 'gpu_power', 'gpu_temperature']));
    expect(shown(data)).not.toContain('system');
    expect(chart('gpu_power').lines(data).map((l) => l.label)).toEqual(['GPU 0 (H100) W', 'GPU 1 (H100) W']);
  });

  it('draws on the same axes as the stage bands', () => {
    const opts = { smoothing: 0, logScale: false, width: 100 } as const;
    const byTime = drawLines(data, chart('gpu_utilization').lines(data), { ...opts, xAxis: 'time' });
    expect(byTime.map((l) => l.points.map((p) => [p.x, p.y]))).toEqual([
      [[1.5, 90], [2.5, 91], [3.5, 92], [4.5, 93]],
      [[1.5, 10], [2.5, 10], [3.5, 10], [4.5, 10]],
    ]);
    const band = stageBands(data, 'time')[0];
    expect(band.x1).toBe(0);
    expect(band.x2).toBe(5);
    const byStep = drawLines(data, chart('gpu_temperature').lines(data), { ...opts, xAxis: 'step' });
    expect(byStep[0].points.map((p) => p.x)).toEqual([0, 1, 2, 3]); // the step each sample followed
  });

  it('a sample without per-device readings is device 0; unreported power and temperature hide their charts', () => {
    const d = load([sample(T0, { source: 'gpu', utilization: 55, memory_bytes: 2 ** 30 })]);
    expect(gpuDevices(d)).toEqual([0]);
    expect(d.series.get('gpu0.utilization')!.value.get(0)).toBe(55);
    expect(shown(d)).toContain('gpu_utilization');
    expect(shown(d)).not.toContain('gpu_power');
    expect(shown(d)).not.toContain('gpu_temperature');
  });

  it('an auto run that moves to the GPU keeps its CPU samples on the CPU chart', () => {
    const d = load([sample(T0, { source: 'cpu', utilization: 100, memory_bytes: 2 ** 30 }), sample(T0 + 1000, twoGpus(0))]);
    expect(shown(d)).toEqual(expect.arrayContaining(['system', 'gpu_utilization']));
    expect(d.series.get('system.utilization')!.length).toBe(1);
  });

  it('a CPU run shows the CPU chart and no GPU chart', () => {
    const d = load([sample(T0, { source: 'cpu', utilization: 100, memory_bytes: 2 ** 30 })]);
    expect(shown(d).filter((id) => id.startsWith('gpu'))).toEqual([]);
    expect(shown(d)).toContain('system');
  });
});
