import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { cpuPercent, parseNvidiaSmi, readProcessRss, readProcessTicks, sampleFromNvml, startSystemMonitor } from './system-monitor';
import { nvmlRead } from '../native/index';
import type { SystemSample } from '../core/events';

describe('system monitor', () => {
  it('reads this process\'s CPU ticks and RSS from /proc', () => {
    expect(readProcessTicks(process.pid)).toBeGreaterThan(0);
    const rss = readProcessRss(process.pid);
    expect(rss).toBeGreaterThan(10 * 1024 * 1024);
    expect(rss).toBe(Math.round(rss / 1024) * 1024);
  });

  it('turns tick deltas into percent of one core', () => {
    expect(cpuPercent({ ticks: 100, at: 0 }, { ticks: 250, at: 1000 }, 100)).toBe(150);
    expect(cpuPercent({ ticks: 100, at: 5 }, { ticks: 100, at: 5 }, 100)).toBe(0);
  });

  it('parses nvidia-smi csv and rejects garbage', () => {
    const first = { utilization: 87, memory_bytes: 10240 * 1024 * 1024, memory_total_bytes: 81920 * 1024 * 1024, power_watts: 250.5, temperature_c: 61 };
    expect(parseNvidiaSmi('87, 10240, 81920, 250.5, 61\n')).toEqual({ source: 'gpu', ...first, devices: [{ index: 0, ...first }] });
    // One line per device, in index order; the sample's own fields are device 0's.
    const two = parseNvidiaSmi('87, 10240, 81920, 250.5, 61\n3, 512, 81920, [N/A], 35\n');
    expect(two).toMatchObject({ utilization: 87, devices: [{ index: 0, utilization: 87 }, { index: 1, utilization: 3, memory_bytes: 512 * 1024 * 1024, temperature_c: 35 }] });
    expect(two!.devices![1].power_watts).toBeUndefined();
    expect(parseNvidiaSmi('87, 100, [N/A], [N/A], 40')).toMatchObject({ utilization: 87, temperature_c: 40 });
    expect(parseNvidiaSmi('NVIDIA-SMI has failed')).toBeNull();
    expect(parseNvidiaSmi('')).toBeNull();
  });

  it('samples a busy child process once per interval', async () => {
    const child = spawn(process.execPath, ['-e', 'const end = Date.now() + 3000; while (Date.now() < end) Math.sqrt(Math.random());']);
    const samples: SystemSample[] = [];
    try {
      const stop = startSystemMonitor({ pid: child.pid!, useGpu: false, intervalMs: 200, onSample: (s) => samples.push(s), onUnavailable: (r) => { throw new Error(r); } });
      await new Promise((r) => setTimeout(r, 1100));
      stop();
    } finally {
      child.kill('SIGKILL');
    }
    expect(samples.length).toBeGreaterThanOrEqual(3);
    expect(samples.every((s) => s.source === 'cpu' && s.memory_bytes > 0)).toBe(true);
    // A spinning child keeps (most of) one core busy; two cores are shared, so allow slack.
    expect(Math.max(...samples.map((s) => s.utilization))).toBeGreaterThan(30);
  });

  it('says once that a vanished process cannot be sampled', async () => {
    const reasons: string[] = [];
    const stop = startSystemMonitor({ pid: 2 ** 22 + 12345, useGpu: false, intervalMs: 20, onSample: () => {}, onUnavailable: (r) => reasons.push(r) });
    await new Promise((r) => setTimeout(r, 100));
    stop();
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/^CPU metrics unavailable: /);
  });
});

describe('sampleFromNvml', () => {
  it('takes every GPU of a reading (the first one on the sample itself), with power and temperature when reported', () => {
    const sample = sampleFromNvml({ available: true, gpus: [
      { index: 0, name: 'NVIDIA H200', utilization: 87, memoryUsedBytes: 5e9, memoryTotalBytes: 1.4e11, powerWatts: 410.5, temperatureC: 61 },
      { index: 1, name: 'other', utilization: 1, memoryUsedBytes: 1, memoryTotalBytes: 2 },
    ] });
    expect(sample).toEqual({ source: 'gpu', utilization: 87, memory_bytes: 5e9, memory_total_bytes: 1.4e11, power_watts: 410.5, temperature_c: 61, devices: [
      { index: 0, name: 'NVIDIA H200', utilization: 87, memory_bytes: 5e9, memory_total_bytes: 1.4e11, power_watts: 410.5, temperature_c: 61 },
      { index: 1, name: 'other', utilization: 1, memory_bytes: 1, memory_total_bytes: 2 },
    ] });
  });
  it('is null without NVML or without a GPU, so the monitor falls back', () => {
    expect(sampleFromNvml({ available: false, reason: 'NVML not found', gpus: [] })).toBeNull();
    expect(sampleFromNvml({ available: true, gpus: [] })).toBeNull();
  });
  it('the engine answers a reading on this machine (with its reason when there is no driver)', () => {
    const r = nvmlRead();
    expect(typeof r.available).toBe('boolean');
    if (!r.available) expect(r.reason).toMatch(/\S/);
  });
});
