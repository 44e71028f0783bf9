// One metric chart (recharts): decimated lines, stage bands shaded, no animation. Re-renders
// when the monitor's version or the drawing preferences change.
import { memo, useMemo } from 'react';
import { CartesianGrid, Legend, Line, LineChart, ReferenceArea, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import type { MonitorData } from '../stores/monitor-store';
import { drawLines, stageBands, type ChartSpec, type DrawOptions } from './chart-data';

const BAND_FILLS = ['#5aa9ff', '#f2b84b', '#3ec7b0', '#e86a92', '#a77bf3'];

export const MetricChart = memo(function MetricChart({ spec, data, version, options, title }: {
  spec: ChartSpec; data: MonitorData; version: number; options: DrawOptions; title?: string;
}) {
  const lines = useMemo(() => drawLines(data, spec.lines(data), options),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [data, version, spec, options.xAxis, options.smoothing, options.logScale, options.buckets]);
  const bands = useMemo(() => stageBands(data, options.xAxis),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [data, version, options.xAxis]);
  const points = lines.reduce((n, l) => n + l.points.length, 0);
  const hasRight = lines.some((l) => l.axis === 'right');
  const fmt = (v: number) => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(3))));
  return (
    <figure className="chart" aria-label={spec.id} data-points={points}>
      <figcaption>
        <span className="chart-title">{title ?? spec.title}</span>
        <code className="chart-id">{spec.id}</code>
        {spec.unit && <span className="muted">{spec.unit}</span>}
      </figcaption>
      {lines.length === 0 ? <div className="chart-empty">no points yet</div> : (
        <div className="chart-body">
          <ResponsiveContainer width="100%" height="100%">
            <LineChart margin={{ top: 6, right: hasRight ? 4 : 14, bottom: 0, left: 0 }}>
              <CartesianGrid stroke="#2a3142" strokeDasharray="3 3" />
              <XAxis dataKey="x" type="number" domain={['dataMin', 'dataMax']} allowDuplicatedCategory={false}
                tick={{ fill: '#8b95a8', fontSize: 11 }} stroke="#3a4356" tickFormatter={(v: number) => (options.xAxis === 'time' ? `${Math.round(v)}s` : String(v))} />
              <YAxis yAxisId="left" scale={options.logScale ? 'log' : 'auto'} domain={['auto', 'auto']} allowDataOverflow={false}
                tick={{ fill: '#8b95a8', fontSize: 11 }} stroke="#3a4356" width={52} tickFormatter={fmt} />
              {hasRight && <YAxis yAxisId="right" orientation="right" tick={{ fill: '#8b95a8', fontSize: 11 }} stroke="#3a4356" width={48} tickFormatter={fmt} />}
              {bands.map((b) => (
                <ReferenceArea key={b.index} yAxisId="left" x1={b.x1} x2={b.x2} ifOverflow="hidden"
                  fill={BAND_FILLS[b.index % BAND_FILLS.length]} fillOpacity={b.status === 'failed' ? 0.14 : 0.06}
                  stroke={b.status === 'failed' ? '#e5484d' : 'none'} strokeOpacity={0.4}
                  label={{ value: b.label, position: 'insideTopLeft', fill: '#8b95a8', fontSize: 10 }} />
              ))}
              {lines.map((l) => (
                <Line key={l.key} yAxisId={l.axis} data={l.points} dataKey="y" name={l.label} stroke={l.color}
                  dot={false} strokeWidth={l.key === 'attn_kl' ? 2 : 1.4} isAnimationActive={false} connectNulls />
              ))}
              <Tooltip contentStyle={{ background: '#151a24', border: '1px solid #2f3747', fontSize: 12 }} labelStyle={{ color: '#c9d1e0' }}
                labelFormatter={(v) => `${options.xAxis === 'time' ? 'time' : 'step'} ${v}`} formatter={(v) => (typeof v === 'number' ? fmt(v) : String(v))} isAnimationActive={false} />
              <Legend wrapperStyle={{ fontSize: 11, color: '#aab3c5' }} iconSize={8} />
            </LineChart>
          </ResponsiveContainer>
        </div>
      )}
    </figure>
  );
});
