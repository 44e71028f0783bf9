// The monitor's charts as they were drawn before the pixel-column reduction, kept as the UI
// bench's reference (like OpenBLAS for the GEMM bench): min-max decimation into 250 buckets
// of the whole series on every redraw, and the whole recharts chart (axes, grid, bands) plus
// SVG paths re-rendered whenever a chart's series grew. Used by bench-main.tsx only.
import { memo, useId, useMemo, useSyncExternalStore } from 'react';
import { CartesianGrid, LineChart, ReferenceArea, ResponsiveContainer, XAxis, YAxis, usePlotArea, useXAxisInverseScale, useXAxisScale, useYAxisScale } from 'recharts';
import type { MonitorData } from '../stores/monitor-store';
import type { Column, Series } from '../series/column';
import { SmoothedColumn, type XY } from '../series/downsample';
import { axisTicks, CHARTS, niceTicks, stageBands, type Band, type ChartSpec, type DrawnLine, type DrawOptions, type LineSpec } from '../monitor/chart-data';

type ReferenceOptions = DrawOptions & { buckets: number };

export function ReferenceCharts({ data, version, options }: { data: MonitorData; version: number; options: DrawOptions }) {
  const opts = useMemo(() => ({ ...options, buckets: 250 }), [options]);
  return (
    <div className="charts" data-version={version}>
      {CHARTS.filter((spec) => !spec.shown || spec.shown(data)).map((spec) => (
        <ReferenceChart key={spec.id} spec={spec} data={data} version={version} options={opts} />
      ))}
    </div>
  );
}

function referenceLines(data: MonitorData, specs: LineSpec[], options: ReferenceOptions): DrawnLine[] {
  const out: DrawnLine[] = [];
  for (const spec of specs) {
    const series = data.series.get(spec.key);
    if (!series || series.length === 0) continue;
    const xs = options.xAxis === 'time' ? series.time : series.step;
    const ys = spec.smooth !== false && options.smoothing > 0 ? smoothed(series, options.smoothing) : series.value;
    let points = minMaxDecimate(xs, ys, options.buckets);
    if (options.logScale) points = points.filter((p) => p.y > 0);
    out.push({ key: spec.key, label: spec.label, color: spec.color, axis: spec.axis ?? 'left', points, breaks: [], sourcePoints: series.length });
  }
  return out;
}

const smoothCache = new WeakMap<Series, SmoothedColumn>();

function smoothed(series: Series, weight: number) {
  let cached = smoothCache.get(series);
  if (!cached) { cached = new SmoothedColumn(series.value); smoothCache.set(series, cached); }
  return cached.values(weight);
}

/** SVG path data through `points`, starting a new subpath after a gap (non-finite y). */
function pathData(points: XY[], x: (v: number) => number | undefined, y: (v: number) => number | undefined): string {
  let d = '';
  let pen = false;
  for (const p of points) {
    const px = x(p.x);
    const py = Number.isFinite(p.y) ? y(p.y) : undefined;
    if (px === undefined || py === undefined || !Number.isFinite(py)) { pen = false; continue; }
    d += `${pen ? 'L' : 'M'}${px.toFixed(1)},${py.toFixed(1)}`;
    pen = true;
  }
  return d;
}

/**
 * Reduce (xs, ys) to at most ~2*buckets points: per bucket of equal x width, the minimum and
 * the maximum in their original order, plus the first and last points. NaN values are skipped.
 * `ys` may be a Column or a plain array (smoothed values).
 */
function minMaxDecimate(xs: Column, ys: Column | ArrayLike<number>, buckets: number, xRange?: [number, number]): XY[] {
  const n = xs.length;
  const yAt = 'get' in ys ? (i: number) => (ys as Column).get(i) : (i: number) => (ys as ArrayLike<number>)[i];
  if (n === 0) return [];
  const start = xRange ? xs.lowerBound(xRange[0]) : 0;
  const end = xRange ? xs.upperBound(xRange[1]) : n;
  const count = end - start;
  if (count <= 0) return [];
  const out: XY[] = [];
  if (count <= buckets * 2) {
    for (let i = start; i < end; i++) {
      const y = yAt(i);
      if (!Number.isNaN(y)) out.push({ x: xs.get(i), y });
    }
    return out;
  }
  const x0 = xs.get(start);
  const x1 = xs.get(end - 1);
  const width = (x1 - x0) / buckets || 1;
  let i = start;
  let lastPushed = -1;
  const pushIndex = (k: number) => {
    if (k === lastPushed || k < 0) return;
    out.push({ x: xs.get(k), y: yAt(k) });
    lastPushed = k;
  };
  const firstValid = findValid(start, end, 1, yAt);
  pushIndex(firstValid);
  for (let b = 0; b < buckets && i < end; b++) {
    const limit = b === buckets - 1 ? Infinity : x0 + (b + 1) * width;
    let minI = -1;
    let maxI = -1;
    let minY = Infinity;
    let maxY = -Infinity;
    for (; i < end && xs.get(i) < limit; i++) {
      const y = yAt(i);
      if (Number.isNaN(y)) continue;
      if (y < minY) { minY = y; minI = i; }
      if (y > maxY) { maxY = y; maxI = i; }
    }
    if (minI < 0) continue;
    if (minI <= maxI) { pushIndex(minI); pushIndex(maxI); } else { pushIndex(maxI); pushIndex(minI); }
  }
  pushIndex(findValid(end - 1, start - 1, -1, yAt));
  return out;
}

function findValid(from: number, stop: number, dir: 1 | -1, yAt: (i: number) => number): number {
  for (let i = from; i !== stop; i += dir) if (!Number.isNaN(yAt(i))) return i;
  return -1;
}

const BAND_FILLS = ['#5aa9ff', '#f2b84b', '#3ec7b0', '#e86a92', '#a77bf3'];

/** Total points behind a chart's lines: it only changes when one of its series grew. */
function signature(data: MonitorData, spec: ChartSpec): string {
  return spec.lines(data).map((l) => `${l.key}:${data.series.get(l.key)?.length ?? 0}`).join(',') + `|${data.stages.length}:${data.lastStep}`;
}

const ReferenceChart = memo(function ReferenceChart({ spec, data, version, options, title }: {
  spec: ChartSpec; data: MonitorData; version: number; options: ReferenceOptions; title?: string;
}) {
  // Charts whose series did not grow keep their lines object, so the recharts subtree below
  // (the expensive part) is skipped: an eval chart redraws per eval, not per step.
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const sig = useMemo(() => signature(data, spec), [data, version, spec]);
  const lines = useMemo(() => referenceLines(data, spec.lines(data), options),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [data, sig, spec, options.xAxis, options.smoothing, options.logScale]);
  const bands = useMemo(() => stageBands(data, options.xAxis),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [data, sig, options.xAxis]);
  const points = lines.reduce((n, l) => n + l.points.length, 0);
  return (
    <figure className="chart" aria-label={spec.id} data-points={points}>
      <figcaption>
        <span className="chart-title">{title ?? spec.title}</span>
        <code className="chart-id">{spec.id}</code>
        {spec.unit && <span className="muted">{spec.unit}</span>}
      </figcaption>
      {lines.length > 0 && (
        <div className="chart-legend">
          {lines.map((l) => <span key={l.key}><i style={{ background: l.color }} />{l.label}</span>)}
        </div>
      )}
      {lines.length === 0 ? <div className="chart-empty">no points yet</div> : <ChartPlot lines={lines} bands={bands} xAxis={options.xAxis} logScale={options.logScale} />}
    </figure>
  );
});

const fmt = (v: number) => (Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(4))));

/**
 * The lines themselves: one SVG path per line through recharts' own axis scales. Recharts'
 * <Line> keeps every point in its store and re-derives it per render; with 8 series that
 * cost most of a redraw, so the monitor draws its decimated paths directly.
 */
function PathLayer({ lines, axis }: { lines: DrawnLine[]; axis: 'left' | 'right' }) {
  const x = useXAxisScale();
  const y = useYAxisScale(axis);
  const plot = usePlotArea();
  const clipId = `clip-${useId().replace(/[^a-zA-Z0-9_-]/g, '')}`;
  if (!x || !y || !plot) return null;
  return (
    <g className="paths">
      <defs><clipPath id={clipId}><rect x={plot.x} y={plot.y} width={plot.width} height={plot.height} /></clipPath></defs>
      <g clipPath={`url(#${clipId})`}>
        {lines.filter((l) => l.axis === axis).map((l) => {
          let d = pathData(l.points, x, y);
          if (l.points.length === 1 && d) d += 'h0.01';
          return <path key={l.key} d={d} fill="none" stroke={l.color} strokeWidth={l.key === 'attn_kl' ? 2 : 1.4}
            strokeLinejoin="round" strokeLinecap="round" vectorEffect="non-scaling-stroke" />;
        })}
      </g>
    </g>
  );
}

/** Pointer position over one chart, outside React state so a mouse move redraws only the readout. */
function createHoverBus() {
  let px: number | null = null;
  const listeners = new Set<() => void>();
  return {
    set(next: number | null) { px = next; for (const l of listeners) l(); },
    get: () => px,
    subscribe(l: () => void) { listeners.add(l); return () => { listeners.delete(l); }; },
  };
}
type HoverBus = ReturnType<typeof createHoverBus>;

/** The point of `points` (sorted by x) nearest to x. */
function nearest(points: DrawnLine['points'], x: number) {
  let lo = 0;
  let hi = points.length - 1;
  if (hi < 0) return undefined;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid].x < x) lo = mid + 1; else hi = mid;
  }
  const before = points[Math.max(0, lo - 1)];
  return Math.abs(before.x - x) < Math.abs(points[lo].x - x) ? before : points[lo];
}

/** Crosshair and values of every line at the pointer (replaces recharts' Tooltip, which re-derives every point). */
function HoverReadout({ bus, lines, xAxis }: { bus: HoverBus; lines: DrawnLine[]; xAxis: DrawOptions['xAxis'] }) {
  const px = useSyncExternalStore(bus.subscribe, bus.get);
  const invert = useXAxisInverseScale();
  const plot = usePlotArea();
  if (px === null || !invert || !plot || px < plot.x || px > plot.x + plot.width) return null;
  const x = Number(invert(px));
  const rows = lines.map((l) => ({ l, p: nearest(l.points, x) })).filter((r) => r.p);
  const boxX = px + 186 > plot.x + plot.width ? px - 182 : px + 8;
  return (
    <g className="readout" pointerEvents="none">
      <line x1={px} x2={px} y1={plot.y} y2={plot.y + plot.height} stroke="#8b95a8" strokeDasharray="3 3" />
      <rect x={boxX} y={plot.y + 4} width={174} height={16 + rows.length * 14} rx={4} fill="#151a24" stroke="#2f3747" opacity={0.95} />
      <text x={boxX + 8} y={plot.y + 16} fill="#c9d1e0" fontSize={11}>{xAxis === 'time' ? `${x.toFixed(1)} s` : `step ${Math.round(x)}`}</text>
      {rows.map(({ l, p }, i) => (
        <text key={l.key} x={boxX + 8} y={plot.y + 30 + i * 14} fill={l.color} fontSize={11}>{l.label}: {fmt(p!.y)}</text>
      ))}
    </g>
  );
}

const ChartPlot = memo(function ChartPlot({ lines, bands, xAxis, logScale }: { lines: DrawnLine[]; bands: Band[]; xAxis: DrawOptions['xAxis']; logScale: boolean }) {
  const hasRight = lines.some((l) => l.axis === 'right');
  let xMax = 0;
  for (const l of lines) if (l.points.length) xMax = Math.max(xMax, l.points[l.points.length - 1].x);
  for (const b of bands) xMax = Math.max(xMax, b.x1);
  // The x axis ends at the last point (no empty margin); its ticks are the round ones inside.
  const xEnd = xMax || 1;
  const x = { domain: [0, xEnd] as [number, number], ticks: niceTicks(0, xEnd, 5).ticks.filter((t) => t <= xEnd) };
  const left = axisTicks(lines, 'left', logScale);
  const right = hasRight ? axisTicks(lines, 'right', false) : null;
  const bus = useMemo(createHoverBus, []);
  return (
    <div className="chart-body" onMouseMove={(e) => bus.set(e.clientX - e.currentTarget.getBoundingClientRect().left)} onMouseLeave={() => bus.set(null)}>
      <ResponsiveContainer width="100%" height="100%">
        <LineChart margin={{ top: 6, right: hasRight ? 4 : 24, bottom: 0, left: 0 }}>
          <CartesianGrid stroke="#2a3142" strokeDasharray="3 3" />
          <XAxis dataKey="x" type="number" domain={x.domain} ticks={x.ticks} allowDataOverflow interval={0}
            tick={{ fill: '#8b95a8', fontSize: 11 }} stroke="#3a4356" tickFormatter={(v: number) => (xAxis === 'time' ? `${Math.round(v)}s` : String(Math.round(v)))} />
          <YAxis yAxisId="left" type="number" scale={logScale ? 'log' : 'linear'} domain={left.domain} ticks={left.ticks} allowDataOverflow interval={0}
            tick={{ fill: '#8b95a8', fontSize: 11 }} stroke="#3a4356" width={52} tickFormatter={fmt} />
          {hasRight && <YAxis yAxisId="right" type="number" orientation="right" domain={right?.domain} ticks={right?.ticks} allowDataOverflow interval={0}
            tick={{ fill: '#8b95a8', fontSize: 11 }} stroke="#3a4356" width={48} tickFormatter={fmt} />}
          {bands.map((b) => (
            <ReferenceArea key={b.index} yAxisId="left" x1={b.x1} x2={b.x2} ifOverflow="hidden"
              fill={BAND_FILLS[b.index % BAND_FILLS.length]} fillOpacity={b.status === 'failed' ? 0.14 : 0.07}
              stroke={b.status === 'failed' ? '#e5484d' : 'none'} strokeOpacity={0.4} />
          ))}
          <PathLayer lines={lines} axis="left" />
          {hasRight && <PathLayer lines={lines} axis="right" />}
          <HoverReadout bus={bus} lines={lines} xAxis={xAxis} />
        </LineChart>
      </ResponsiveContainer>
    </div>
  );
});
