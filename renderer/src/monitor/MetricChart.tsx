// One metric chart (recharts axes, grid and stage bands; the decimated lines drawn as plain
// SVG paths through recharts' scales). Re-renders only when its own series grew or the
// drawing preferences changed.
import { memo, useId, useMemo, useSyncExternalStore } from 'react';
import { CartesianGrid, LineChart, ReferenceArea, ResponsiveContainer, XAxis, YAxis, usePlotArea, useXAxisInverseScale, useXAxisScale, useYAxisScale } from 'recharts';
import type { MonitorData } from '../stores/monitor-store';
import { axisTicks, drawLines, niceTicks, pathData, stageBands, type Band, type ChartSpec, type DrawnLine, type DrawOptions } from './chart-data';

const BAND_FILLS = ['#5aa9ff', '#f2b84b', '#3ec7b0', '#e86a92', '#a77bf3'];

/** Total points behind a chart's lines: it only changes when one of its series grew. */
function signature(data: MonitorData, spec: ChartSpec): string {
  return spec.lines(data).map((l) => `${l.key}:${data.series.get(l.key)?.length ?? 0}`).join(',') + `|${data.stages.length}:${data.lastStep}`;
}

export const MetricChart = memo(function MetricChart({ spec, data, version, options, title }: {
  spec: ChartSpec; data: MonitorData; version: number; options: DrawOptions; title?: string;
}) {
  // Charts whose series did not grow keep their lines object, so the recharts subtree below
  // (the expensive part) is skipped: an eval chart redraws per eval, not per step.
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const sig = useMemo(() => signature(data, spec), [data, version, spec]);
  const lines = useMemo(() => drawLines(data, spec.lines(data), options),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [data, sig, spec, options.xAxis, options.smoothing, options.logScale, options.buckets]);
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
          let d = pathData(l.points, l.breaks, x, y);
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
