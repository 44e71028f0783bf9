// Layer-by-step heatmap (canvas): one row per layer, one column per evaluation. Dense layers
// (no value) stay dark; colour runs from low (blue) to high (yellow) over the shown range.
import { memo, useEffect, useMemo, useRef } from 'react';
import type { LayerRow } from '../stores/monitor-store';

const W = 520;
const H = 200;

// A perceptual blue -> teal -> yellow ramp, precomputed: one string per level, not per cell.
const RAMP: string[] = (() => {
  const stops = [[32, 56, 120], [38, 150, 160], [120, 200, 110], [250, 220, 80]];
  return Array.from({ length: 256 }, (_, level) => {
    const x = (level / 255) * (stops.length - 1);
    const i = Math.min(stops.length - 2, Math.floor(x));
    const f = x - i;
    const c = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  });
})();

const ramp = (t: number) => RAMP[Math.round(Math.min(1, Math.max(0, t)) * 255)];

/** Redraws only when rows were added (`count`), not on every step of a live run. */
export const LayerHeatmap = memo(function LayerHeatmap({ id, title, rows, count, fixedMax }: { id: string; title: string; rows: LayerRow[]; count: number; fixedMax?: number }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const { max, layers } = useMemo(() => {
    let m = fixedMax ?? 0;
    if (fixedMax === undefined) for (const r of rows) for (const v of r.values) if (v !== null && v > m) m = v;
    return { max: m, layers: rows.reduce((n, r) => Math.max(n, r.values.length), 0) };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [rows, count, fixedMax]);
  useEffect(() => {
    const el = canvas.current;
    const ctx = el?.getContext('2d');
    if (!el || !ctx) return;
    ctx.fillStyle = '#121722';
    ctx.fillRect(0, 0, W, H);
    if (!rows.length || !layers) return;
    // Columns beyond the canvas width are merged by taking the latest row per pixel column.
    const cols = Math.min(rows.length, W);
    const cw = W / cols;
    const rh = H / layers;
    for (let c = 0; c < cols; c++) {
      const row = rows[Math.min(rows.length - 1, Math.floor(((c + 1) * rows.length) / cols) - 1)];
      for (let l = 0; l < layers; l++) {
        const v = row.values[l];
        if (v === null || v === undefined) continue;
        ctx.fillStyle = ramp(max > 0 ? v / max : 0);
        ctx.fillRect(c * cw, l * rh, Math.ceil(cw), Math.ceil(rh) - (rh > 6 ? 1 : 0));
      }
    }
  }, [rows, count, layers, max]);
  return (
    <figure className="chart heat" aria-label={id}>
      <figcaption>
        <span className="chart-title">{title}</span><code className="chart-id">{id}</code>
        <span className="muted">{rows.length} evals · {layers} layers · max {max.toPrecision(3)}</span>
      </figcaption>
      <div className="heat-body">
        <div className="heat-axis">{Array.from({ length: layers }, (_, i) => <span key={i}>{i + 1}</span>)}</div>
        <canvas ref={canvas} width={W} height={H} role="img" aria-label={`${id}: ${layers} layers by ${rows.length} evaluations`} />
      </div>
    </figure>
  );
});
