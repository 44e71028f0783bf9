// Layer-by-step heatmap (canvas): one row per layer, one column per evaluation. Dense layers
// (no value) stay dark; colour runs from low (blue) to high (yellow) over the shown range.
import { memo, useEffect, useMemo, useRef } from 'react';
import type { LayerRow } from '../stores/monitor-store';

const W = 520;
const H = 200;

/** An opaque pixel as the canvas stores it (RGBA bytes, read as one little-endian word). */
const pixel = (r: number, g: number, b: number) => ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;

// A perceptual blue -> teal -> yellow ramp, precomputed: one pixel per level, not per cell.
const RAMP: Uint32Array = (() => {
  const stops = [[32, 56, 120], [38, 150, 160], [120, 200, 110], [250, 220, 80]];
  const out = new Uint32Array(256);
  for (let level = 0; level < 256; level++) {
    const x = (level / 255) * (stops.length - 1);
    const i = Math.min(stops.length - 2, Math.floor(x));
    const f = x - i;
    const [r, g, b] = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
    out[level] = pixel(r, g, b);
  }
  return out;
})();

const ramp = (t: number) => RAMP[Math.round(Math.min(1, Math.max(0, t)) * 255)];
const BACKGROUND = pixel(0x12, 0x17, 0x22);

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
    // Pixels written directly (one putImageData, not a fillRect per cell: a long run has
    // hundreds of evaluations by tens of layers, redrawn per evaluation).
    const image = ctx.createImageData(W, H);
    const px = new Uint32Array(image.data.buffer);
    px.fill(BACKGROUND);
    if (rows.length && layers) {
      // Columns beyond the canvas width are merged by taking the latest row per pixel column;
      // rows taller than 6 pixels keep a one-pixel gap below.
      const cols = Math.min(rows.length, W);
      const rh = H / layers;
      const gap = rh > 6 ? 1 : 0;
      for (let x = 0; x < W; x++) {
        const c = Math.min(cols - 1, Math.floor((x * cols) / W));
        const row = rows[Math.min(rows.length - 1, Math.floor(((c + 1) * rows.length) / cols) - 1)];
        for (let l = 0; l < layers; l++) {
          const v = row.values[l];
          if (v === null || v === undefined) continue;
          const colour = ramp(max > 0 ? v / max : 0);
          const y1 = Math.min(H, Math.round((l + 1) * rh) - gap);
          for (let y = Math.round(l * rh); y < y1; y++) px[y * W + x] = colour;
        }
      }
    }
    ctx.putImageData(image, 0, 0);
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
