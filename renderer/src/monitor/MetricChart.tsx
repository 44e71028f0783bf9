// One metric chart (recharts): decimated lines, stage bands shaded, no animation. Re-renders
// when the monitor's version or the drawing preferences change.
import { memo, useMemo } from 'react';
import { CartesianGrid, Line, LineChart, ReferenceArea, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import type { MonitorData } from '../stores/monitor-store';
import { drawLines, stageBands, type Band, type ChartSpec, type DrawnLine, type DrawOptions } from './chart-data';

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

const ChartPlot = memo(function ChartPlot({ lines, bands, xAxis, logScale }: { lines: DrawnLine[]; bands: Band[]; xAxis: DrawOptions['xAxis']; logScale: boolean }) {
  const hasRight = lines.some((l) => l.axis === 'right');
  return (
    <div className="chart-body">
      <ResponsiveContainer width="100%" height="100%">
        <LineChart margin={{ top: 6, right: hasRight ? 4 : 14, bottom: 0, left: 0 }}>
          <CartesianGrid stroke="#2a3142" strokeDasharray="3 3" />
          <XAxis dataKey="x" type="number" domain={[0, 'dataMax']} interval={0} tickCount={6}
            tick={{ fill: '#8b95a8', fontSize: 11 }} stroke="#3a4356" tickFormatter={(v: number) => (xAxis === 'time' ? `${Math.round(v)}s` : String(v))} />
          <YAxis yAxisId="left" scale={logScale ? 'log' : 'auto'} domain={['auto', 'auto']} interval={0}
            tick={{ fill: '#8b95a8', fontSize: 11 }} stroke="#3a4356" width={52} tickFormatter={fmt} />
          {hasRight && <YAxis yAxisId="right" orientation="right" interval={0} tick={{ fill: '#8b95a8', fontSize: 11 }} stroke="#3a4356" width={48} tickFormatter={fmt} />}
          {bands.map((b) => (
            <ReferenceArea key={b.index} yAxisId="left" x1={b.x1} x2={b.x2} ifOverflow="hidden"
              fill={BAND_FILLS[b.index % BAND_FILLS.length]} fillOpacity={b.status === 'failed' ? 0.14 : 0.07}
              stroke={b.status === 'failed' ? '#e5484d' : 'none'} strokeOpacity={0.4} />
          ))}
          {lines.map((l) => (
            <Line key={l.key} yAxisId={l.axis} data={l.points} dataKey="y" name={l.label} stroke={l.color}
              dot={false} strokeWidth={l.key === 'attn_kl' ? 2 : 1.4} isAnimationActive={false} />
          ))}
          <Tooltip contentStyle={{ background: '#151a24', border: '1px solid #2f3747', fontSize: 12 }} labelStyle={{ color: '#c9d1e0' }}
            labelFormatter={(v) => `${xAxis === 'time' ? 'time' : 'step'} ${v}`} formatter={(v) => (typeof v === 'number' ? fmt(v) : String(v))} isAnimationActive={false} />
        </LineChart>
      </ResponsiveContainer>
    </div>
  );
});
