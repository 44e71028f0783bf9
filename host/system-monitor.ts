// System samples for the run monitor, once a second: CPU utilisation and RSS of the engine
// process from /proc (source 'cpu'), or GPU utilisation, memory, power and temperature of every
// device from NVML (nvidia-smi where the addon cannot) when the run uses a GPU (source 'gpu'). Where neither can be read (no /proc, no nvidia-smi), the
// monitor says so once instead of inventing numbers.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { clockTicksPerSecond } from './runner/clock-ticks';
import type { GpuDeviceSample, SystemSample } from '../core/events';
import { nvmlRead, type NvmlReading } from '../native/index';

export interface ProcessCpuTimes { ticks: number; at: number }

/** utime + stime of a process in clock ticks (/proc/<pid>/stat fields 14 and 15). */
export function readProcessTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** Resident set size in bytes (/proc/<pid>/status VmRSS, reported in kB). */
export function readProcessRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`/proc/${pid}/status: no VmRSS line`);
  return Number(match[1]) * 1024;
}

/** CPU percent between two readings (100 = one core fully busy; multi-threaded can exceed 100). */
export function cpuPercent(prev: ProcessCpuTimes, next: ProcessCpuTimes, ticksPerSecond: number): number {
  const seconds = (next.at - prev.at) / 1000;
  if (seconds <= 0) return 0;
  return (100 * (next.ticks - prev.ticks)) / ticksPerSecond / seconds;
}

/**
 * Parses `nvidia-smi --query-gpu=utilization.gpu,memory.used,memory.total,power.draw,temperature.gpu --format=csv,noheader,nounits`:
 * one line per device, in index order. The sample's own fields are the first device's.
 */
export function parseNvidiaSmi(text: string): SystemSample | null {
  const devices: GpuDeviceSample[] = [];
  for (const [index, line] of text.trim().split('\n').entries()) {
    const [util, used, total, power, temp] = line.split(',').map((s) => Number(s.trim()));
    if (!Number.isFinite(util) || !Number.isFinite(used)) break;
    const device: GpuDeviceSample = { index, utilization: util, memory_bytes: used * 1024 * 1024 };
    if (Number.isFinite(total)) device.memory_total_bytes = total * 1024 * 1024;
    if (Number.isFinite(power)) device.power_watts = power;
    if (Number.isFinite(temp)) device.temperature_c = temp;
    devices.push(device);
  }
  return gpuSample(devices);
}

/** Every GPU of an NVML reading as a sample (null when NVML has none). */
export function sampleFromNvml(reading: NvmlReading): SystemSample | null {
  if (!reading.available) return null;
  return gpuSample(reading.gpus.map((gpu) => {
    const device: GpuDeviceSample = { index: gpu.index, name: gpu.name, utilization: gpu.utilization, memory_bytes: gpu.memoryUsedBytes, memory_total_bytes: gpu.memoryTotalBytes };
    if (gpu.powerWatts !== undefined) device.power_watts = gpu.powerWatts;
    if (gpu.temperatureC !== undefined) device.temperature_c = gpu.temperatureC;
    return device;
  }));
}

function gpuSample(devices: GpuDeviceSample[]): SystemSample | null {
  const first = devices[0];
  if (!first) return null;
  const { index: _index, name: _name, ...fields } = first;
  return { source: 'gpu', ...fields, devices };
}

// NVML through the engine addon first (no process per sample); nvidia-smi where the addon can't.
async function queryGpu(): Promise<SystemSample | null> {
  return sampleFromNvml(nvmlRead()) ?? queryNvidiaSmi();
}

function queryNvidiaSmi(): Promise<SystemSample | null> {
  return new Promise((resolve) => {
    execFile('nvidia-smi', ['--query-gpu=utilization.gpu,memory.used,memory.total,power.draw,temperature.gpu', '--format=csv,noheader,nounits'],
      { timeout: 2000 }, (err, stdout) => resolve(err ? null : parseNvidiaSmi(stdout)));
  });
}

export interface MonitorOptions {
  pid: number;
  useGpu: boolean;
  onSample: (sample: SystemSample) => void;
  /** Called once when samples cannot be taken, with the reason. */
  onUnavailable: (reason: string) => void;
  intervalMs?: number;
}

/** Starts sampling; returns the stop function. */
export function startSystemMonitor(options: MonitorOptions): () => void {
  const interval = options.intervalMs ?? 1000;
  const ticksPerSecond = clockTicksPerSecond();
  let prev: ProcessCpuTimes | null = null;
  let gpuAvailable = options.useGpu;
  let unavailableSaid = false;
  const unavailable = (reason: string) => {
    if (!unavailableSaid) { unavailableSaid = true; options.onUnavailable(reason); }
  };
  const tick = async () => {
    if (gpuAvailable) {
      const sample = await queryGpu();
      if (sample) { options.onSample(sample); return; }
      gpuAvailable = false;
      unavailable('GPU metrics unavailable (neither NVML nor nvidia-smi answered); reporting the engine process CPU instead');
    }
    try {
      const next = { ticks: readProcessTicks(options.pid), at: Date.now() };
      const rss = readProcessRss(options.pid);
      if (prev) options.onSample({ source: 'cpu', utilization: cpuPercent(prev, next, ticksPerSecond), memory_bytes: rss });
      prev = next;
    } catch (e) {
      // After a first good reading a failure means the process is exiting (a zombie has no
      // VmRSS, then /proc/<pid> goes away): nothing to report.
      if (!prev) unavailable(`CPU metrics unavailable: ${(e as Error).message}`);
    }
  };
  const timer = setInterval(() => { void tick(); }, interval);
  void tick();
  return () => clearInterval(timer);
}
