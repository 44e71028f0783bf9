// Painting a chart's lines on its canvas, incrementally: after an append only the tail of the
// plot is cleared and stroked again. Stroking every line's few thousand antialiased segments is
// the largest cost of a redraw on a CPU-rastered canvas; the tail is a few dozen of them.
import type { XY } from '../series/downsample';
import { tracePath, type DrawnLine } from './chart-data';

type Scale = (v: number) => number | undefined;

export interface PlotScales {
  x: Scale;
  left?: Scale;
  right?: Scale;
  /** The plot area in the chart's pixels. */
  plot: { x: number; y: number; width: number; height: number };
  /** Canvas pixels per chart pixel. */
  ratio: number;
}

/** Leading points `next` shares with `prev`: the reducer keeps the objects of untouched columns. */
export function sharedPrefix(prev: XY[], next: XY[]): number {
  const n = Math.min(prev.length, next.length);
  let i = 0;
  while (i < n && prev[i] === next[i]) i++;
  return i;
}

const sameBreaks = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
const sameScales = (a: PlotScales, b: PlotScales) => a.x === b.x && a.left === b.left && a.right === b.right && a.ratio === b.ratio
  && a.plot.x === b.plot.x && a.plot.y === b.plot.y && a.plot.width === b.plot.width && a.plot.height === b.plot.height;

/**
 * The x (data units) from which `next` differs from what was painted (`prev`): null when
 * nothing changed, -Infinity when everything must be painted again (other scales, other
 * lines, or points that were not appended at the right).
 */
export function changedFrom(prev: { lines: DrawnLine[]; scales: PlotScales } | null, lines: DrawnLine[], scales: PlotScales): number | null {
  if (!prev || !sameScales(prev.scales, scales) || prev.lines.length !== lines.length) return -Infinity;
  let from: number | null = null;
  for (let i = 0; i < lines.length; i++) {
    const a = prev.lines[i];
    const b = lines[i];
    if (a.key !== b.key || a.color !== b.color || a.axis !== b.axis || !sameBreaks(a.breaks, b.breaks)) return -Infinity;
    const k = sharedPrefix(a.points, b.points);
    if (k === a.points.length && k === b.points.length) continue;
    if (k === 0) return -Infinity;
    const x = b.points[k - 1].x;
    // Both tails must lie right of the last shared point, or the change is not only at the end.
    for (const tail of [a.points, b.points]) for (let j = k; j < tail.length; j++) if (tail[j].x < x) return -Infinity;
    from = from === null ? x : Math.min(from, x);
  }
  return from;
}

const lineWidth = (l: DrawnLine) => (l.key === 'attn_kl' ? 2 : 1.4);

/** Paints `lines` right of `from` (data x; -Infinity: the whole plot) over what is already there. */
export function paintLines(ctx: CanvasRenderingContext2D, lines: DrawnLine[], s: PlotScales, from: number): void {
  const { plot, ratio, x } = s;
  // Draw in the chart's own coordinates (the scales' pixels), shifted onto the canvas.
  ctx.setTransform(ratio, 0, 0, ratio, -plot.x * ratio, -plot.y * ratio);
  ctx.save();
  let left = plot.x;
  if (from !== -Infinity) {
    // From a whole canvas pixel left of the first changed segment, wide enough for a stroke.
    left = Math.max(plot.x, Math.floor(((x(from) ?? plot.x) - 3 - plot.x) * ratio) / ratio + plot.x);
    ctx.beginPath();
    ctx.rect(left, plot.y, plot.x + plot.width - left, plot.height);
    ctx.clip();
  }
  ctx.clearRect(left, plot.y, plot.x + plot.width - left, plot.height);
  // Bevel joins: at 1.4 px they look like round ones, and stroke several times faster
  // (a round join is an arc per point, thousands per line).
  ctx.lineJoin = 'bevel';
  ctx.lineCap = 'round';
  for (const l of lines) {
    const y = l.axis === 'right' ? s.right : s.left;
    if (!y) continue;
    // Start at the last point left of the cleared strip, so the segment into it is stroked.
    let start = l.points.length - 1;
    while (start > 0 && (x(l.points[start].x) ?? -Infinity) >= left - 3) start--;
    const points = from === -Infinity || start <= 0 ? l.points : l.points.slice(start);
    ctx.beginPath();
    tracePath(points, l.breaks, x, y, ctx);
    // A lone point still shows, as a dot (round cap of a tiny segment).
    if (l.points.length === 1) {
      const px = x(l.points[0].x);
      const py = y(l.points[0].y);
      if (px !== undefined && py !== undefined) ctx.lineTo(px + 0.01, py);
    }
    ctx.strokeStyle = l.color;
    ctx.lineWidth = lineWidth(l);
    ctx.stroke();
  }
  ctx.restore();
}
