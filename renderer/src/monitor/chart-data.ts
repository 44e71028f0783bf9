// What the charts draw, computed from the monitor store's full series: smoothed (EMA, into a
// copy), reduced to at most four points per pixel column, in step or time units, plus stage bands.
import { SmoothedColumn, type XY } from '../series/downsample';
import { drawable, PixelColumns, type PixelSpan } from '../series/pixel-columns';
import type { Column, Series } from '../series/column';
import { gpuSeriesKey, type GpuField, type MonitorData } from '../stores/monitor-store';
import type { XAxisKind } from '../stores/prefs-store';

export interface LineSpec { key: string; label: string; color: string; smooth?: boolean; axis?: 'left' | 'right' }

export interface ChartSpec {
  /** The metric name as written in the schema: the chart's accessible name. */
  id: string;
  title: string;
  lines: (data: MonitorData) => LineSpec[];
  unit?: string;
  /** Drawn only when this holds (default: always). */
  shown?: (data: MonitorData) => boolean;
}

export interface DrawnLine {
  key: string; label: string; color: string; axis: 'left' | 'right'; points: XY[];
  /** Stored points behind the line (drawn or not). */
  sourcePoints: number;
  /** x values where the line is cut (pauses on the time axis): no segment crosses them. */
  breaks: number[];
}

export interface DrawOptions { xAxis: XAxisKind; smoothing: number; logScale: boolean }

/** Where one chart draws: pixel columns across its plot and the end of its x axis (from xAxisEnd). */
export interface DrawArea { width: number; xEnd?: number }

const PALETTE = ['#5aa9ff', '#f2b84b', '#3ec7b0', '#e86a92', '#a77bf3', '#9bd267', '#f08a4b', '#6ed3f0', '#d3d36e', '#c08af5', '#78e0b6', '#ff9f9f'];

export function colorAt(i: number): string {
  return PALETTE[i % PALETTE.length];
}

export function drawLines(data: MonitorData, specs: LineSpec[], options: DrawOptions & DrawArea): DrawnLine[] {
  const out: DrawnLine[] = [];
  const span: PixelSpan = { x0: 0, x1: options.xEnd ?? xAxisEnd(seriesXMax(data, specs, options.xAxis)), width: options.width };
  for (const spec of specs) {
    const series = data.series.get(spec.key);
    if (!series || series.length === 0) continue;
    const xs = options.xAxis === 'time' ? series.time : series.step;
    const ys = spec.smooth !== false && options.smoothing > 0 ? smoothed(series, options.smoothing) : series.value;
    const points = reducer(xs, ys, span, options.logScale).points();
    const breaks = options.xAxis === 'time' ? (data.pauses ?? []).map((p) => p.from) : [];
    out.push({ key: spec.key, label: spec.label, color: spec.color, axis: spec.axis ?? 'left', points, breaks, sourcePoints: series.length });
  }
  return out;
}

/** The largest x of the lines' series (their last points: steps and times only grow). */
export function seriesXMax(data: MonitorData, specs: LineSpec[], xAxis: XAxisKind): number {
  let max = 0;
  for (const spec of specs) {
    const s = data.series.get(spec.key);
    if (s && s.length) max = Math.max(max, (xAxis === 'time' ? s.time : s.step).last());
  }
  return max;
}

/**
 * The end of the x axis: `xMax` rounded up to a tenth of the axis' tick step. The axis then
 * moves only every few hundred steps of a long run, so the chart frame (axes, grid, bands) is
 * not redrawn with every point and the pixel columns keep their place (incremental reduction).
 */
export function xAxisEnd(xMax: number): number {
  if (!(xMax > 0) || !Number.isFinite(xMax)) return 1;
  const { ticks } = niceTicks(0, xMax, 5);
  const grain = (ticks[1] - ticks[0]) / 10;
  return Number((Math.ceil(xMax / grain - 1e-9) * grain).toPrecision(12));
}

// One incremental reducer per drawn column: a redraw after an append reads only the new points.
const reducers = new WeakMap<Column, PixelColumns>();

function reducer(xs: Column, ys: Column, span: PixelSpan, logScale: boolean): PixelColumns {
  const keep = drawable(logScale);
  let r = reducers.get(ys);
  if (!r || !r.fits(xs, ys, span, keep)) { r = new PixelColumns(xs, ys, span, keep); reducers.set(ys, r); }
  return r;
}

const smoothCache = new WeakMap<Series, SmoothedColumn>();

function smoothed(series: Series, weight: number) {
  let cached = smoothCache.get(series);
  if (!cached) { cached = new SmoothedColumn(series.value); smoothCache.set(series, cached); }
  return cached.values(weight);
}

/** Where a line is drawn: a canvas 2D context, or anything with its moveTo/lineTo. */
export interface Pen { moveTo(x: number, y: number): void; lineTo(x: number, y: number): void }

/** Traces `points` in pixels with `out`, starting a new subpath after a gap (non-finite y) or across a break. */
export function tracePath(points: XY[], breaks: number[], x: (v: number) => number | undefined, y: (v: number) => number | undefined, out: Pen): void {
  let pen = false;
  let b = 0;
  let prevX = -Infinity;
  for (const p of points) {
    while (b < breaks.length && breaks[b] <= prevX) b++;
    if (b < breaks.length && breaks[b] > prevX && breaks[b] <= p.x && prevX !== -Infinity) pen = false;
    prevX = p.x;
    const px = x(p.x);
    const py = Number.isFinite(p.y) ? y(p.y) : undefined;
    if (px === undefined || py === undefined || !Number.isFinite(py)) { pen = false; continue; }
    if (pen) out.lineTo(px, py); else out.moveTo(px, py);
    pen = true;
  }
}

export interface Band { x1: number; x2: number; label: string; status: string; index: number }

export function stageBands(data: MonitorData, xAxis: XAxisKind): Band[] {
  const bands: Band[] = [];
  // A stage's band runs up to where the next one starts, so the bands tile the axis.
  data.stages.forEach((s, i) => {
    const label = `${s.stage + 1}. ${s.name}${s.attempt > 1 ? ` (try ${s.attempt})` : ''}`;
    if (xAxis === 'time') {
      const lastTime = data.series.get('loss')?.time.last() ?? s.startTime;
      bands.push({ x1: s.startTime, x2: s.endTime ?? Math.max(lastTime, s.startTime), label, status: s.status, index: i });
    } else if (s.startStep !== null) {
      const end = s.endStep === null ? Math.max(data.lastStep, s.startStep) : s.endStep + 1;
      bands.push({ x1: s.startStep, x2: end, label, status: s.status, index: i });
    }
  });
  return bands;
}

const perLayer = (data: MonitorData, metric: string): LineSpec[] => {
  const lines: LineSpec[] = [];
  for (const key of data.series.keys()) {
    const m = key.match(new RegExp(`^${metric}\\.layer(\\d+)$`));
    if (m && hasValues(data, key)) lines.push({ key, label: `layer ${m[1]}`, color: colorAt(Number(m[1])), smooth: false });
  }
  return lines;
};

function hasValues(data: MonitorData, key: string): boolean {
  const s = data.series.get(key)!;
  for (let i = 0; i < s.length; i++) if (!Number.isNaN(s.value.get(i))) return true;
  return false;
}

/** The monitor's charts, in reading order. */
export const CHARTS: ChartSpec[] = [
  { id: 'loss', title: 'Loss and its parts', lines: () => [
    { key: 'loss', label: 'loss', color: colorAt(0) },
    { key: 'task_loss', label: 'task_loss', color: colorAt(1) },
    { key: 'attn_kl_loss', label: 'attn_kl_loss', color: colorAt(2) },
    { key: 'logit_kl_loss', label: 'logit_kl_loss', color: colorAt(3) },
    { key: 'hidden_mse_loss', label: 'hidden_mse_loss', color: colorAt(4) },
    { key: 'eval_loss', label: 'eval loss', color: colorAt(5), smooth: false },
  ] },
  { id: 'attn_kl', title: 'Attention KL (mean and per layer)', lines: (d) => [
    { key: 'attn_kl', label: 'attn_kl (mean)', color: '#ffffff', smooth: false }, ...perLayer(d, 'attn_kl'),
  ] },
  { id: 'attn_recall', title: 'Attention recall', lines: () => [{ key: 'attn_recall', label: 'attn_recall', color: colorAt(2), smooth: false }] },
  { id: 'density', title: 'Density (kept block pairs)', lines: () => [
    { key: 'density', label: 'density (train)', color: colorAt(4), smooth: false },
    { key: 'eval_density', label: 'density (eval)', color: colorAt(1), smooth: false },
  ] },
  { id: 'out_cos', title: 'Output cosine (student vs teacher)', lines: () => [{ key: 'out_cos', label: 'out_cos', color: colorAt(0), smooth: false }] },
  { id: 'ppl_ratio', title: 'Perplexity ratio (teacher / student)', lines: () => [{ key: 'ppl_ratio', label: 'ppl_ratio', color: colorAt(6), smooth: false }] },
  { id: 'lr', title: 'Learning rate', lines: () => [{ key: 'lr', label: 'lr', color: colorAt(7), smooth: false }] },
  { id: 'grad_norm', title: 'Gradient norm (before clipping)', lines: () => [{ key: 'grad_norm', label: 'grad_norm', color: colorAt(3) }] },
  // Mixture-of-experts runs only: the load-balancing term the steps added and transformers' aux loss.
  { id: 'load_balance_loss', title: 'Load balance (mixture of experts)', shown: (d) => hasSeries(d, 'aux_loss'), lines: () => [
    { key: 'load_balance_loss', label: 'load_balance_loss', color: colorAt(8) },
    { key: 'aux_loss', label: 'aux_loss', color: colorAt(9), axis: 'right' },
  ] },
  // Runs whose Train nodes weigh the attention-entropy term only.
  { id: 'attn_entropy', title: 'Attention entropy', unit: 'nats', shown: (d) => hasSeries(d, 'attn_entropy'), lines: () => [
    { key: 'attn_entropy', label: 'attn_entropy', color: colorAt(6) },
  ] },
  { id: 'tokens_per_s', title: 'Throughput', unit: 'tokens/s', lines: () => [{ key: 'tokens_per_s', label: 'tokens/s', color: colorAt(5) }] },
  { id: 'system', title: 'System', shown: (d) => gpuDevices(d).length === 0 || hasSeries(d, 'system.utilization'), lines: () => [
    { key: 'system.utilization', label: 'CPU utilisation %', color: colorAt(0), smooth: false },
    { key: 'system.memory', label: 'RSS MiB', color: colorAt(1), smooth: false, axis: 'right' },
  ] },
  gpuChart('gpu_utilization', 'GPU utilisation', '%', 'utilization'),
  gpuChart('gpu_memory', 'GPU memory', 'MiB', 'memory'),
  gpuChart('gpu_power', 'GPU power', 'W', 'power'),
  gpuChart('gpu_temperature', 'GPU temperature', '°C', 'temperature'),
];

/** Indices of the GPUs the run's samples report, ascending. */
export function gpuDevices(data: MonitorData): number[] {
  const out: number[] = [];
  for (const key of data.series.keys()) {
    const m = /^gpu(\d+)\.utilization$/.exec(key);
    if (m) out.push(Number(m[1]));
  }
  return out.sort((a, b) => a - b);
}

function hasSeries(data: MonitorData, key: string): boolean {
  return (data.series.get(key)?.length ?? 0) > 0;
}

/** One GPU reading per device, one line each, on the run's step or time axis (stage bands included). */
function gpuChart(id: string, title: string, unit: string, field: GpuField): ChartSpec {
  return {
    id, title, unit,
    shown: (d) => gpuDevices(d).some((i) => field === 'utilization' || field === 'memory' || hasValues(d, gpuSeriesKey(i, field))),
    lines: (d) => gpuDevices(d).map((i) => ({
      key: gpuSeriesKey(i, field), label: `GPU ${i}${d.gpuNames?.[i] ? ` (${d.gpuNames[i]})` : ''} ${unit}`, color: colorAt(i), smooth: false,
    })),
  };
}

/** Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten. */
export function niceTicks(lo: number, hi: number, count = 5): { domain: [number, number]; ticks: number[] } {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return { domain: [0, 1], ticks: [0, 1] };
  // A flat line (or one that differs only in the last bits: an EMA of a constant) gets a margin;
  // a step below the numbers' resolution would never advance the loop below.
  if (hi - lo <= Math.max(Math.abs(lo), Math.abs(hi)) * 1e-9) { const d = Math.abs(lo) * 0.1 || 1; lo -= d; hi += d; }
  const raw = (hi - lo) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((v) => v >= raw) ?? 10 * power;
  const first = Math.floor(lo / step + 1e-9) * step;
  const last = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = first; v <= last + step * 1e-6; v += step) ticks.push(Number(v.toPrecision(12)));
  return { domain: [ticks[0], ticks[ticks.length - 1]], ticks };
}

/** Powers of ten covering [lo, hi] (both > 0), for a log axis. */
export function logTicks(lo: number, hi: number): { domain: [number, number]; ticks: number[] } {
  if (!(lo > 0) || !(hi > 0)) return { domain: [0.1, 1], ticks: [0.1, 1] };
  const a = Math.floor(Math.log10(lo));
  const b = Math.max(a + 1, Math.ceil(Math.log10(hi)));
  const ticks: number[] = [];
  for (let e = a; e <= b; e++) ticks.push(Number((10 ** e).toPrecision(12)));
  return { domain: [ticks[0], ticks[ticks.length - 1]], ticks };
}

/** Axis ticks for the drawn points of one axis: nice round values around min and max. */
export function axisTicks(lines: DrawnLine[], axis: 'left' | 'right', log: boolean): { domain: [number, number]; ticks: number[] } {
  let lo = Infinity;
  let hi = -Infinity;
  for (const l of lines) {
    if (l.axis !== axis) continue;
    for (const p of l.points) {
      if (log && p.y <= 0) continue;
      if (p.y < lo) lo = p.y;
      if (p.y > hi) hi = p.y;
    }
  }
  if (!Number.isFinite(lo)) return log ? logTicks(0.1, 1) : niceTicks(0, 1);
  return log ? logTicks(lo, hi) : niceTicks(lo, hi, 4);
}
