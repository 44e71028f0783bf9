// Run monitor store: every point of one run, kept for drawing at any zoom.
//
// Design choices:
// - Points live in chunked Float64 columns (series/column.ts) inside a mutable `data` object;
//   zustand only carries a `version` number that bumps per ingested batch. Copying 100k-point
//   arrays into immutable state on every step would stall the page; bumping a counter does not.
// - Events are folded in order; `load` rebuilds everything from a RunDetail (after a reload or
//   a reconnect), so the monitor never depends on having seen the live stream from the start.
// - Metric names are the schema's (loss, attn_kl, density...), which the charts use as their
//   accessible names.
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { GateVerdict, GpuDeviceSample, RunEvent, RunStatus, PerLayer, SystemSample } from '../../../core/events';
import type { RunDetail } from '../../../core/api';
import type { Pipeline } from '../../../core/schema';
import { Series } from '../series/column';

export const STEP_METRICS = ['loss', 'task_loss', 'attn_kl_loss', 'logit_kl_loss', 'hidden_mse_loss', 'lr', 'grad_norm', 'density', 'seq_len'] as const;
export const EVAL_METRICS = ['attn_kl', 'attn_recall', 'ppl_ratio', 'ppl', 'logit_kl', 'out_cos', 'sparsity', 'attn_flops_saved'] as const;
/** Mixture-of-experts step metrics: series only where a run records them (dense runs have none). */
export const MOE_STEP_METRICS = ['aux_loss', 'load_balance_loss', 'expert_usage_min', 'expert_usage_max', 'routing_entropy'] as const;
/** Step metrics of optional loss terms, present only on the steps that weigh them. */
export const TERM_STEP_METRICS = ['attn_entropy'] as const;

/** The latest evaluation's expert usage: per layer the share per expert (null: a dense-MLP layer). */
export interface ExpertUsage { step: number; layers: (number[] | null)[] }

export interface StageSpan {
  stage: number;
  node: string;
  name: string;
  steps: number;
  attempt: number;
  startStep: number | null;
  endStep: number | null;
  startTime: number;
  endTime: number | null;
  status: 'running' | 'passed' | 'failed' | 'done' | 'cancelled';
  verdicts: GateVerdict[];
}

export interface LayerRow { step: number; time: number; values: PerLayer }

export interface LogLine { time: number; level: 'info' | 'warn' | 'error'; message: string }

/** Mutable point storage; readers re-read it when `version` changes. */
export interface MonitorData {
  series: Map<string, Series>;
  stages: StageSpan[];
  layerDensity: LayerRow[];
  layerKl: LayerRow[];
  logs: LogLine[];
  systemSource: 'cpu' | 'gpu' | null;
  /** GPU names by device index, where the samples carry them. */
  gpuNames?: Record<number, string>;
  startTime: number | null;
  lastStep: number;
  eventCount: number;
  /** Pauses on the time axis (seconds since the first event); `to` null while paused. */
  pauses?: { from: number; to: number | null }[];
  /** Recent (time, tokens) of step events, for a smoothed tokens/s. */
  recentSteps: { time: number; tokens: number }[];
  /** Mixture-of-experts runs: the latest evaluation's expert usage (absent otherwise). */
  expertUsage?: ExpertUsage;
}

export interface MonitorState {
  runId: string | null;
  status: RunStatus | null;
  statusMessage: string;
  pipeline: Pipeline | null;
  version: number;
  data: MonitorData;
  load(detail: RunDetail): void;
  ingest(events: RunEvent[]): void;
  clear(): void;
}

const TOKENS_PER_S_WINDOW = 10;

function emptyData(): MonitorData {
  return { series: new Map(), stages: [], layerDensity: [], layerKl: [], logs: [], pauses: [], systemSource: null, startTime: null, lastStep: -1, eventCount: 0, recentSteps: [] };
}

export function seriesOf(data: MonitorData, name: string): Series {
  let s = data.series.get(name);
  if (!s) { s = new Series(); data.series.set(name, s); }
  return s;
}

/** Seconds since the run's first event: the time axis. */
function seconds(data: MonitorData, time: number): number {
  if (data.startTime === null) data.startTime = time;
  return (time - data.startTime) / 1000;
}

/** Folds one event into `data`; returns a new status when the event carries one. */
export function applyEvent(data: MonitorData, event: RunEvent): { status?: RunStatus; message?: string } {
  data.eventCount++;
  const t = seconds(data, event.time);
  switch (event.type) {
    case 'status': {
      const pauses = (data.pauses ??= []);
      const open = pauses[pauses.length - 1];
      if (event.status === 'paused') { if (!open || open.to !== null) pauses.push({ from: t, to: null }); }
      else if (open && open.to === null) open.to = t;
      return { status: event.status, message: event.message ?? '' };
    }
    case 'summary':
      return { status: event.status };
    case 'stage_start':
      data.stages.push({
        stage: event.stage, node: event.node, name: event.name, steps: event.steps,
        attempt: data.stages.filter((s) => s.stage === event.stage).length + 1,
        startStep: null, endStep: null, startTime: t, endTime: null, status: 'running', verdicts: [],
      });
      return {};
    case 'stage_end': {
      const span = lastSpan(data, event.stage);
      if (span) { span.status = event.status; span.endTime = t; span.endStep = data.lastStep >= 0 ? data.lastStep : span.startStep; }
      return {};
    }
    case 'step': {
      const m = event.metrics;
      for (const name of STEP_METRICS) seriesOf(data, name).push(m.step, t, m[name]);
      for (const name of MOE_STEP_METRICS) if (m[name] !== undefined) seriesOf(data, name).push(m.step, t, m[name]);
      for (const name of TERM_STEP_METRICS) if (m[name] !== undefined) seriesOf(data, name).push(m.step, t, m[name]);
      seriesOf(data, 'tokens_per_s').push(m.step, t, tokensPerSecond(data, event.time, m.tokens));
      data.lastStep = m.step;
      const span = lastSpan(data, m.stage);
      if (span && span.startStep === null) span.startStep = m.step;
      return {};
    }
    case 'eval': {
      const m = event.metrics;
      for (const name of EVAL_METRICS) seriesOf(data, name).push(m.step, t, m[name]);
      seriesOf(data, 'eval_loss').push(m.step, t, m.loss);
      seriesOf(data, 'eval_density').push(m.step, t, m.density);
      m.per_layer.attn_kl.forEach((v, layer) => seriesOf(data, `attn_kl.layer${layer + 1}`).push(m.step, t, v ?? NaN));
      data.layerDensity.push({ step: m.step, time: t, values: m.per_layer.density });
      data.layerKl.push({ step: m.step, time: t, values: m.per_layer.attn_kl });
      if (m.per_layer.expert_usage) data.expertUsage = { step: m.step, layers: m.per_layer.expert_usage };
      return {};
    }
    case 'gate': {
      const span = lastSpan(data, event.verdict.stage);
      if (span) span.verdicts.push(event.verdict);
      return {};
    }
    case 'system': {
      const s = event.sample;
      data.systemSource = s.source;
      const step = Math.max(0, data.lastStep);
      if (s.source === 'gpu') { pushGpuSample(data, step, t, s); return {}; }
      seriesOf(data, 'system.utilization').push(step, t, s.utilization);
      seriesOf(data, 'system.memory').push(step, t, s.memory_bytes / 2 ** 20);
      return {};
    }
    case 'log':
      data.logs.push({ time: event.time, level: event.level, message: event.message });
      return {};
    case 'checkpoint':
      data.logs.push({ time: event.time, level: 'info', message: `checkpoint (stage ${event.stage + 1}): ${event.path}` });
      return {};
  }
}

/** Series of one GPU's readings: `gpu<index>.<field>` (see GPU_FIELDS). */
export const GPU_FIELDS = ['utilization', 'memory', 'power', 'temperature'] as const;
export type GpuField = (typeof GPU_FIELDS)[number];
export const gpuSeriesKey = (index: number, field: GpuField) => `gpu${index}.${field}`;

/**
 * A GPU sample, one set of series per device (a sample without `devices` is device 0). Power
 * and temperature a device does not report are gaps (NaN), not zeros.
 */
function pushGpuSample(data: MonitorData, step: number, t: number, s: SystemSample): void {
  const devices: GpuDeviceSample[] = s.devices?.length ? s.devices : [{ index: 0, ...s }];
  for (const d of devices) {
    if (!Number.isInteger(d.index) || d.index < 0 || d.index > 63) continue;
    seriesOf(data, gpuSeriesKey(d.index, 'utilization')).push(step, t, d.utilization);
    seriesOf(data, gpuSeriesKey(d.index, 'memory')).push(step, t, d.memory_bytes / 2 ** 20);
    seriesOf(data, gpuSeriesKey(d.index, 'power')).push(step, t, d.power_watts ?? NaN);
    seriesOf(data, gpuSeriesKey(d.index, 'temperature')).push(step, t, d.temperature_c ?? NaN);
    if (d.name) (data.gpuNames ??= {})[d.index] = d.name;
  }
}

function lastSpan(data: MonitorData, stage: number): StageSpan | undefined {
  for (let i = data.stages.length - 1; i >= 0; i--) if (data.stages[i].stage === stage) return data.stages[i];
  return undefined;
}

function tokensPerSecond(data: MonitorData, time: number, tokens: number): number {
  const recent = data.recentSteps;
  recent.push({ time, tokens });
  if (recent.length > TOKENS_PER_S_WINDOW + 1) recent.shift();
  if (recent.length < 2) return NaN;
  const dt = (time - recent[0].time) / 1000;
  if (dt <= 0) return NaN;
  let sum = 0;
  for (let i = 1; i < recent.length; i++) sum += recent[i].tokens;
  return sum / dt;
}

export type MonitorStore = StoreApi<MonitorState>;

export function createMonitorStore(): MonitorStore {
  return createStore<MonitorState>()((set, get) => ({
    runId: null,
    status: null,
    statusMessage: '',
    pipeline: null,
    version: 0,
    data: emptyData(),
    load(detail) {
      const data = emptyData();
      let status: RunStatus = detail.status;
      let message = '';
      for (const event of detail.events) {
        const change = applyEvent(data, event);
        if (change.status) { status = change.status; message = change.message ?? message; }
      }
      // The summary is authoritative over a status event replayed from the log.
      if (detail.status !== 'running' && detail.status !== 'pending' && detail.status !== 'queued') status = detail.status;
      set({ runId: detail.id, status, statusMessage: message, pipeline: detail.pipeline, data, version: get().version + 1 });
    },
    ingest(events) {
      const { runId, data } = get();
      let status = get().status;
      let message = get().statusMessage;
      let changed = false;
      for (const event of events) {
        if (event.runId !== runId) continue;
        const change = applyEvent(data, event);
        if (change.status) { status = change.status; message = change.message ?? message; }
        changed = true;
      }
      if (changed) set({ status, statusMessage: message, version: get().version + 1 });
    },
    clear() {
      set({ runId: null, status: null, statusMessage: '', pipeline: null, data: emptyData(), version: get().version + 1 });
    },
  }));
}

// Selectors (module level, so components share them and re-render only on what they read).
export const selectMonitorVersion = (s: MonitorState) => s.version;
export const selectMonitorRunId = (s: MonitorState) => s.runId;
export const selectMonitorStatus = (s: MonitorState) => s.status;
export const selectMonitorStatusMessage = (s: MonitorState) => s.statusMessage;
export const selectMonitorData = (s: MonitorState) => s.data;
