import { describe, expect, it } from 'vitest';
import { Column } from '../series/column';
import { drawable, PixelColumns } from '../series/pixel-columns';
import type { DrawnLine } from './chart-data';
import { changedFrom, sharedPrefix, type PlotScales } from './line-canvas';

const id = (v: number) => v;
const scales: PlotScales = { x: id, left: id, plot: { x: 0, y: 0, width: 100, height: 50 }, ratio: 1 };
const line = (points: DrawnLine['points'], key = 'loss'): DrawnLine => ({ key, label: key, color: '#fff', axis: 'left', points, breaks: [], sourcePoints: points.length });

describe('incremental line painting', () => {
  const xs = new Column();
  const ys = new Column();
  for (let i = 0; i < 5_000; i++) { xs.push(i); ys.push(Math.sin(i / 50)); }
  const reducer = new PixelColumns(xs, ys, { x0: 0, x1: 10_000, width: 100 }, drawable(false));

  it('repaints from the last point an append left in place', () => {
    const before = reducer.points();
    for (let i = 5_000; i < 5_100; i++) { xs.push(i); ys.push(Math.sin(i / 50)); }
    const after = reducer.points();
    const k = sharedPrefix(before, after);
    expect(k).toBeGreaterThan(before.length - 8); // only the last column or two changed
    expect(k).toBeLessThan(after.length);
    const from = changedFrom({ lines: [line(before)], scales }, [line(after)], scales);
    expect(from).toBe(after[k - 1].x);
    expect(from).toBeGreaterThan(4_800);
    // nothing new: nothing to paint
    expect(changedFrom({ lines: [line(after)], scales }, [line(reducer.points())], scales)).toBeNull();
  });

  it('repaints everything for other scales, other lines, or a change that is not at the end', () => {
    const pts = reducer.points();
    expect(changedFrom(null, [line(pts)], scales)).toBe(-Infinity);
    expect(changedFrom({ lines: [line(pts)], scales }, [line(pts)], { ...scales, x: (v) => v * 2 })).toBe(-Infinity);
    expect(changedFrom({ lines: [line(pts)], scales }, [line(pts, 'task_loss')], scales)).toBe(-Infinity);
    const moved = pts.slice();
    moved[3] = { ...moved[3] };
    expect(changedFrom({ lines: [line(pts)], scales }, [line(moved)], scales)).toBe(moved[2].x);
    const back = [...pts, { x: 1, y: 0 }];
    expect(changedFrom({ lines: [line(pts)], scales }, [line(back)], scales)).toBe(-Infinity);
  });
});
