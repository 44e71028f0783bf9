// Layer x expert heatmap of a mixture-of-experts run (canvas): one row per MoE layer, one column
// per expert, the latest evaluation's usage share. Colour is the load relative to uniform
// (E x share): dark = starved, mid = balanced (1), bright = the layer's busiest expert, clamped
// at 2x uniform so one hot expert does not wash out the rest. Nothing is drawn for dense runs.
import { memo, useEffect, useRef } from 'react';
import type { ExpertUsage } from '../stores/monitor-store';

const CELL_W = 28;
const CELL_H = 18;
/** Loads at or above this multiple of the uniform share get the brightest colour. */
const LOAD_CAP = 2;

function color(load: number): string {
  // Blue (starved) -> teal (uniform) -> yellow (>= LOAD_CAP x uniform).
  const t = Math.min(1, Math.max(0, load / LOAD_CAP));
  const stops = [[20, 30, 70], [38, 150, 160], [250, 220, 80]];
  const x = t * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const c = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** The MoE layers (0-based index and shares) of a usage record, in layer order. */
export function moeRows(usage: ExpertUsage): { layer: number; shares: number[] }[] {
  return usage.layers.flatMap((shares, layer) => (shares ? [{ layer, shares }] : []));
}

export const ExpertUsageHeatmap = memo(function ExpertUsageHeatmap({ usage }: { usage: ExpertUsage | undefined }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const rows = usage ? moeRows(usage) : [];
  const experts = rows.reduce((n, r) => Math.max(n, r.shares.length), 0);
  useEffect(() => {
    const ctx = canvas.current?.getContext('2d');
    if (!ctx) return;
    rows.forEach((r, y) => r.shares.forEach((share, e) => {
      ctx.fillStyle = color(share * r.shares.length);
      ctx.fillRect(e * CELL_W, y * CELL_H, CELL_W - 1, CELL_H - 1);
    }));
  });
  if (!usage || rows.length === 0) return null;
  const loads = rows.flatMap((r) => r.shares.map((s) => s * r.shares.length));
  return (
    <figure className="chart heat" aria-label="expert_usage">
      <figcaption>
        <span className="chart-title">Expert usage (layer x expert)</span><code className="chart-id">expert_usage</code>
        <span className="muted">step {usage.step} · {rows.length} MoE layers · {experts} experts · load {Math.min(...loads).toFixed(2)}-{Math.max(...loads).toFixed(2)} x uniform</span>
      </figcaption>
      <div className="heat-body">
        <div className="heat-axis">{rows.map((r) => <span key={r.layer} style={{ height: CELL_H }}>{r.layer + 1}</span>)}</div>
        <canvas ref={canvas} width={experts * CELL_W} height={rows.length * CELL_H} role="img"
          aria-label={`expert_usage: ${rows.length} MoE layers by ${experts} experts at step ${usage.step}`} />
      </div>
    </figure>
  );
});
