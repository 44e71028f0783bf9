// Forks with the real engine: a tiny two-stage run, then "continue from stage 1" with the same
// graph gives the uninterrupted run's metrics; a changed stage 1 is refused with one line naming
// the node; a changed stage 2 runs from stage 1's checkpoint and records its parent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunManager } from './run-manager';
import { readRunRecord } from './run-store';
import { parseForkSpec, planFork } from './fork';
import { prefixHash } from '../core/prefix';
import { tinyPipeline, writeTinyFixture } from './runner/testing/tiny';
import type { Pipeline } from '../core/schema';
import { createStudioService } from './studio-service';
import { checkApiCall, SERVER_METHODS } from './api-call';

const root = mkdtempSync(join(tmpdir(), 'fork-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const lines = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean);
const node = (p: Pipeline, id: string) => p.nodes.find((n) => n.id === id)! as any;

describe('fork: continue a run from a finished stage', () => {
  let fixture: { config: string; corpus: string };
  let manager: RunManager;
  let parentDir: string;
  let parentId: string;

  beforeAll(async () => {
    fixture = writeTinyFixture(join(root, 'fixture'));
    manager = new RunManager({ runsDir: join(root, 'runs'), threads: 1 });
    parentId = await manager.start(tinyPipeline(fixture));
    const end = await manager.waitForEnd(parentId);
    expect(end.status).toBe('completed');
    parentDir = end.runDir;
  });

  it('parses RUN_DIR:STAGE', () => {
    expect(parseForkSpec('runs/a:b:2')).toEqual({ runDir: 'runs/a:b', stage: 2 });
    expect(() => parseForkSpec('runs/a')).toThrow(/--from must be RUN_DIR:STAGE/);
    expect(() => parseForkSpec('runs/a:0')).toThrow(/--from must be RUN_DIR:STAGE/);
  });

  it('with the graph unchanged, the forked run gives the uninterrupted run\'s metrics for the later stage', async () => {
    const id = await manager.start(tinyPipeline(fixture), { fork: { runDir: parentDir, stage: 1 } });
    const end = await manager.waitForEnd(id);
    expect([end.status, end.message]).toEqual(['completed', undefined]);
    expect(lines(end.runDir)).toEqual(lines(parentDir));
    const record = readRunRecord(end.runDir);
    expect(record.parent).toEqual({ runId: parentId, stage: 1, prefixHash: prefixHash(tinyPipeline(fixture), 1), runDir: parentDir });
    expect(record.hashes.model).toBe(readRunRecord(parentDir).hashes.model);
    expect(record.checkpoints.map((c) => c.stage)).toEqual([0, 1]);
    expect(existsSync(join(end.runDir, 'checkpoints', 'stage-0', 'state.json'))).toBe(true);
    expect(record.stages.map((s) => s.stage)).toEqual([0, 1]);
    expect((await manager.list()).find((r) => r.id === id)?.parent).toEqual({ runId: parentId, stage: 1 });
    // The stage-1 events come from the parent: the new run never ran stage 1 itself.
    const events = (await manager.get(id)).events;
    expect(events.filter((e) => e.type === 'stage_start').map((e) => (e as { stage: number }).stage)).toEqual([0, 1]);
  });

  it('a changed later stage runs from the checkpoint: stage 1 lines are the parent\'s, stage 2 differs', async () => {
    const changed = tinyPipeline(fixture, { train2: { lr: 5e-4 } });
    const id = await manager.start(changed, { fork: { runDir: parentDir, stage: 1 } });
    const end = await manager.waitForEnd(id);
    expect(end.status).toBe('completed');
    const parentLines = lines(parentDir);
    const mine = lines(end.runDir);
    const stage1 = readRunRecord(parentDir).checkpoints[0].metricsLines;
    expect(mine.slice(0, stage1)).toEqual(parentLines.slice(0, stage1));
    expect(mine.slice(stage1)).not.toEqual(parentLines.slice(stage1));
  });

  it('refuses, with one line naming the first differing node, a pipeline whose stage 1 changed', async () => {
    const changed = tinyPipeline(fixture, { train1: { lr: 1e-3 } });
    const before = await manager.list();
    await expect(manager.start(changed, { fork: { runDir: parentDir, stage: 1 } }))
      .rejects.toThrow(`cannot continue from stage 1 of ${parentDir}: node 'a5-train' differs at params.lr: 0.003 -> 0.001; stages 1-1 must be unchanged`);
    const mask = structuredClone(tinyPipeline(fixture));
    node(mask, 'a2-replace').params.mask.random_blocks = 0;
    expect(() => planFork(mask, { runDir: parentDir, stage: 2 })).toThrow(/node 'a2-replace' differs at params\.mask\.random_blocks: 1 -> 0/);
    expect(() => planFork(tinyPipeline(fixture), { runDir: parentDir, stage: 3 })).toThrow(/stage 3 does not exist/);
    expect(() => planFork(tinyPipeline(fixture), { runDir: join(root, 'nope'), stage: 1 })).toThrow(/no such file/);
    expect((await manager.list()).length).toBe(before.length);
  });

  it('refuses in the engine when the data the parent used has changed', async () => {
    const other = writeTinyFixture(join(root, 'fixture2'));
    const p = tinyPipeline(fixture);
    // Same path, other text: the prefix is identical, the content hash is not.
    const { writeFileSync } = await import('node:fs');
    const saved = readFileSync(fixture.corpus, 'utf8');
    writeFileSync(fixture.corpus, readFileSync(other.corpus, 'utf8').split('\n').slice(0, 60).join('\n') + '\n');
    try {
      const id = await manager.start(p, { fork: { runDir: parentDir, stage: 1 } });
      const end = await manager.waitForEnd(id);
      expect(end.status).toBe('failed');
      expect(end.message).toMatch(/^cannot continue after stage 1: the dataset's text differs from the parent run's/);
    } finally {
      writeFileSync(fixture.corpus, saved);
    }
  });

  it('forkRun over the StudioApi: checked arguments, the same refusal as the command line', async () => {
    expect(checkApiCall({ method: 'forkRun', args: [{ runId: 'x', stage: 1, pipeline: {} }] }, SERVER_METHODS).method).toBe('forkRun');
    expect(() => checkApiCall({ method: 'forkRun', args: ['x', 1] }, SERVER_METHODS)).toThrow(/forkRun/);
    const service = createStudioService({ runsDir: join(root, 'runs'), templatesDir: join(root, 'templates'), baseDir: root });
    try {
      await expect(service.forkRun({ runId: parentId, stage: 0, pipeline: tinyPipeline(fixture) })).rejects.toThrow(/forkRun: stage must be a stage number from 1/);
      await expect(service.forkRun({ runId: 'no-such-run', stage: 1, pipeline: tinyPipeline(fixture) })).rejects.toThrow(/run 'no-such-run': not found/);
      await expect(service.forkRun({ runId: parentId, stage: 1, pipeline: tinyPipeline(fixture, { train1: { steps: 5 } }) }))
        .rejects.toMatchObject({ code: 'fork_refused', message: expect.stringMatching(/node 'a5-train' differs at params\.steps: 4 -> 5/) });
    } finally {
      await service.close();
    }
  });
});
