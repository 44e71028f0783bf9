import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import type { Pipeline } from '../../../core/schema';
import { dataLaneY, NODE_H, NODE_W, openingViewport, stageFrames, stageLayout } from './stage-layout';

const template = JSON.parse(readFileSync(new URL('../../../templates/seed-progressive.json', import.meta.url), 'utf8')) as Pipeline;
const laidOut = (): Pipeline => ({ ...template, layout: { nodes: stageLayout(template) } });

describe('stage layout', () => {
  it('puts stages left to right, each framed around its own nodes, datasets under the row', () => {
    const p = laidOut();
    const frames = stageFrames(p);
    expect(frames.map((f) => f.name)).toEqual(['Stage 1: foundation', 'Stage 2: expansion', 'Stage 3: optimisation']);
    for (let i = 1; i < frames.length; i++) expect(frames[i - 1].x + frames[i - 1].width).toBeLessThan(frames[i].x);
    const pos = p.layout!.nodes;
    for (const f of frames) for (const id of f.nodes) {
      expect(pos[id].x).toBeGreaterThan(f.x);
      expect(pos[id].x + NODE_W).toBeLessThan(f.x + f.width);
    }
    expect(pos.data.y).toBeGreaterThan(dataLaneY(p));
    expect(dataLaneY(p)).toBeGreaterThan(Math.max(...frames.map((f) => f.y + f.height)));
    expect(pos.model.y + NODE_H).toBeLessThan(dataLaneY(p));
  });

  it('opens at a readable zoom from the left', () => {
    const v = openingViewport(laidOut(), 870, 530);
    expect(v.zoom).toBeGreaterThanOrEqual(0.8);
    expect(v.x).toBeGreaterThan(0);
  });
});
