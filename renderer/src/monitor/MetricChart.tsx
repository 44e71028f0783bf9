// One metric chart: recharts draws the frame (axes, grid, stage bands, hover readout) and the
// reduced lines go on a canvas through recharts' own scales. A redraw after new points touches
// only the canvas: the frame's props stay equal while the axes keep their place (xAxisEnd, round
// y ticks), so recharts' subtree, the expensive part, is skipped.
import { createContext, memo, useContext, useEffect, useLayoutEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import { CartesianGrid, LineChart, ReferenceArea, ResponsiveContainer, XAxis, YAxis, usePlotArea, useXAxisInverseScale, useXAxisScale, useYAxisScale } from 'recharts';
import type { MonitorData } from '../stores/monitor-store';
import { changedFrom, paintLines, type PlotScales } from './line-canvas';
import { axisTicks, drawLines, niceTicks, seriesXMax, stageBands, xAxisEnd, type Band, type ChartSpec, type DrawnLine, type DrawOptions } from './chart-data';

const BAND_FILLS = ['#5aa9ff', '#f2b84b', '#3ec7b0', '#e86a92', '#a77bf3'];

/** Points behind a chart's lines and the stages' states: it changes when one of its series grew or a stage began or ended. */
function signature(data: MonitorData, spec: ChartSpec): string {
  return spec.lines(data).map((l) => `${l.key}:${data.series.get(l.key)?.length ?? 0}`).join(',')
    + `|${data.stages.map((s) => `${s.status}:${s.startStep}:${s.endStep}:${s.endTime}`).join(',')}`;
}

/** Everything recharts draws; compared by value, so an append that moves no axis redraws no frame. */
interface Frame {
  x: { domain: [number, number]; ticks: number[] };
  left: { domain: [number, number]; ticks: number[] };
  right: { domain: [number, number]; ticks: number[] } | null;
  bands: Band[];
  xAxis: DrawOptions['xAxis'];
  logScale: boolean;
}

function chartFrame(lines: DrawnLine[], bands: Band[], xEnd: number, options: DrawOptions): Frame {
  const hasRight = lines.some((l) => l.axis === 'right');
  return {
    // The x axis ends just past the last point; its ticks are the round ones inside.
    x: { domain: [0, xEnd], ticks: niceTicks(0, xEnd, 5).ticks.filter((t) => t <= xEnd) },
    left: axisTicks(lines, 'left', options.logScale),
    right: hasRight ? axisTicks(lines, 'right', false) : null,
    // Bands end at the axis end at most, and a running stage's band reaches it: the frame
    // changes when the axis moves or a stage begins or ends, not per step.
    bands: bands.map((b) => ({ ...b, x2: b.status === 'running' ? xEnd : Math.min(b.x2, xEnd) })),
    xAxis: options.xAxis,
    logScale: options.logScale,
  };
}

/** `value`, or the previous one while it is equal by value (small objects only). */
function useStable<T>(value: T): T {
  const last = useRef<{ key: string; value: T } | null>(null);
  const key = JSON.stringify(value);
  if (!last.current || last.current.key !== key) last.current = { key, value };
  return last.current.value;
}

/** The drawn lines, handed to the line canvas and the readout without re-rendering the frame. */
const LinesContext = createContext<DrawnLine[]>([]);

// Plot width of the last chart measured: a chart mounted later starts from it.
let knownPlotWidth = 600;

export const MetricChart = memo(function MetricChart({ spec, data, version, options, title }: {
  spec: ChartSpec; data: MonitorData; version: number; options: DrawOptions; title?: string;
}) {
  // A chart whose series did not grow stops here: its view below gets equal props and is
  // skipped (an eval chart redraws per eval, not per step).
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const sig = useMemo(() => signature(data, spec), [data, version, spec]);
  return <ChartView spec={spec} data={data} sig={sig} options={options} title={title} />;
});

const ChartView = memo(function ChartView({ spec, data, sig, options, title }: {
  spec: ChartSpec; data: MonitorData; sig: string; options: DrawOptions; title?: string;
}) {
  const [width, setWidth] = useState(knownPlotWidth);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const specs = useMemo(() => spec.lines(data), [data, sig, spec]);
  const bands = useMemo(() => stageBands(data, options.xAxis),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [data, sig, options.xAxis]);
  const xEnd = useMemo(() => xAxisEnd(bands.reduce((m, b) => Math.max(m, b.x1), seriesXMax(data, specs, options.xAxis))), [data, specs, bands, options.xAxis]);
  const lines = useMemo(() => drawLines(data, specs, { ...options, width, xEnd }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [data, specs, options.xAxis, options.smoothing, options.logScale, width, xEnd]);
  const frame = useStable(chartFrame(lines, bands, xEnd, options));
  const onPlotWidth = useMemo(() => (w: number) => { knownPlotWidth = w; setWidth(w); }, []);
  let points = 0;
  let sourcePoints = 0;
  for (const l of lines) { points += l.points.length; sourcePoints += l.sourcePoints; }
  return (
    <figure className="chart" aria-label={spec.id} data-points={points} data-source-points={sourcePoints}>
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
      {lines.length === 0 ? <div className="chart-empty">no points yet</div> : (
        <LinesContext.Provider value={lines}>
          <ChartPlot frame={frame} onPlotWidth={onPlotWidth} />
        </LinesContext.Provider>
      )}
    </figure>
  );
});

const fmt = (v: number) => (Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(4))));

/**
 * The lines themselves, on a canvas over the plot area, through recharts' own axis scales.
 * Recharts' <Line> keeps every point in its store and re-derives it per render, and an SVG
 * path of thousands of points is re-parsed and re-stroked whole per redraw; the canvas is
 * painted again only right of the first changed point (line-canvas.ts).
 */
function LineCanvas() {
  const lines = useContext(LinesContext);
  const x = useXAxisScale();
  const left = useYAxisScale('left');
  const right = useYAxisScale('right');
  const plot = usePlotArea();
  const canvas = useRef<HTMLCanvasElement>(null);
  const painted = useRef<{ lines: DrawnLine[]; scales: PlotScales } | null>(null);
  useLayoutEffect(() => {
    const ctx = canvas.current?.getContext('2d');
    if (!ctx || !plot || !x) return;
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(plot.width * ratio));
    const h = Math.max(1, Math.round(plot.height * ratio));
    if (ctx.canvas.width !== w || ctx.canvas.height !== h) { ctx.canvas.width = w; ctx.canvas.height = h; painted.current = null; }
    const scales: PlotScales = { x, left, right, plot, ratio };
    const from = changedFrom(painted.current, lines, scales);
    if (from !== null) paintLines(ctx, lines, scales, from);
    painted.current = { lines, scales };
  }, [lines, x, left, right, plot]);
  if (!plot) return null;
  return (
    <foreignObject x={plot.x} y={plot.y} width={plot.width} height={plot.height} pointerEvents="none">
      <canvas ref={canvas} className="chart-lines" style={{ width: plot.width, height: plot.height, display: 'block' }} />
    </foreignObject>
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
function HoverReadout({ bus, xAxis }: { bus: HoverBus; xAxis: DrawOptions['xAxis'] }) {
  const lines = useContext(LinesContext);
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

/** Reports the plot's width in pixels: the lines are reduced to one bucket per pixel column. */
function PlotWidth({ onWidth }: { onWidth: (width: number) => void }) {
  const plot = usePlotArea();
  const width = plot ? Math.max(1, Math.round(plot.width)) : 0;
  useEffect(() => { if (width > 0) onWidth(width); }, [width, onWidth]);
  return null;
}

const ChartPlot = memo(function ChartPlot({ frame, onPlotWidth }: { frame: Frame; onPlotWidth: (width: number) => void }) {
  const { x, left, right, bands, xAxis, logScale } = frame;
  const hasRight = right !== null;
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
          {hasRight && <YAxis yAxisId="right" type="number" orientation="right" domain={right.domain} ticks={right.ticks} allowDataOverflow interval={0}
            tick={{ fill: '#8b95a8', fontSize: 11 }} stroke="#3a4356" width={48} tickFormatter={fmt} />}
          {bands.map((b) => (
            <ReferenceArea key={b.index} yAxisId="left" x1={b.x1} x2={b.x2} ifOverflow="hidden"
              fill={BAND_FILLS[b.index % BAND_FILLS.length]} fillOpacity={b.status === 'failed' ? 0.14 : 0.07}
              stroke={b.status === 'failed' ? '#e5484d' : 'none'} strokeOpacity={0.4} />
          ))}
          <LineCanvas />
          <HoverReadout bus={bus} xAxis={xAxis} />
          <PlotWidth onWidth={onPlotWidth} />
        </LineChart>
      </ResponsiveContainer>
    </div>
  );
});
