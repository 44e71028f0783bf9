import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newRunId, readJsonl, readRunRecord, RunStore } from './run-store';
import type { RunEvent, StepMetrics } from '../core/events';
import type { Pipeline } from '../core/schema';

const pipeline = { version: 1, info: { name: 'p', author: '', description: '' }, seed: 1, backend: 'cpu', nodes: [], links: [] } as unknown as Pipeline;
const init = { backend: 'cpu', threads: 2, versions: { studio: 't', node: process.version }, machine: { platform: 'linux', arch: 'x64', cpus: 2, cpuModel: 'x', totalMemoryBytes: 1 } };
const step = (i: number): RunEvent => ({ runId: 'r', time: 1000 + i, type: 'step', metrics: { stage: 0, step: i, stage_step: i, loss: 1 / (i + 1) } as StepMetrics });

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'run-store-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('run ids', () => {
  it('sort by creation time', () => {
    const a = newRunId(new Date('2026-01-02T03:04:05.006Z'));
    const b = newRunId(new Date('2026-01-02T03:04:05.007Z'));
    const c = newRunId(new Date('2026-11-02T00:00:00.000Z'));
    expect(a).toMatch(/^20260102-030405006-[0-9a-f]{6}$/);
    expect([c, b, a].sort()).toEqual([a, b, c]);
  });
});

describe('readJsonl', () => {
  it('drops a torn last line and keeps the rest', () => {
    const f = join(dir, 'x.jsonl');
    writeFileSync(f, '{"a":1}\n{"a":2}\n{"a":');
    expect(readJsonl(f)).toEqual([{ a: 1 }, { a: 2 }]);
  });
  it('names the file and line of a bad line in the middle', () => {
    const f = join(dir, 'x.jsonl');
    writeFileSync(f, '{"a":1}\nnot json\n{"a":3}\n');
    expect(() => readJsonl(f)).toThrow(`${f}: line 2 is not valid JSON`);
  });
});

describe('RunStore', () => {
  it('writes pipeline.json, run.json and keeps wall-clock out of metrics.jsonl', () => {
    const store = RunStore.create(dir, pipeline, init);
    store.append(step(0));
    store.append({ runId: 'r', time: 5, type: 'log', level: 'info', message: 'hi' });
    store.append({ runId: 'r', time: 6, type: 'system', sample: { source: 'cpu', utilization: 50, memory_bytes: 10 } });
    store.flush();
    expect(JSON.parse(readFileSync(join(store.runDir, 'pipeline.json'), 'utf8')).info.name).toBe('p');
    expect(readRunRecord(store.runDir).hashes.pipeline).toMatch(/^[0-9a-f]{64}$/);
    expect(readFileSync(join(store.runDir, 'metrics.jsonl'), 'utf8')).toBe('{"type":"step","stage":0,"step":0,"stage_step":0,"loss":1}\n');
    expect(readJsonl(join(store.runDir, 'events.jsonl'))).toHaveLength(3);
    expect(readJsonl(join(store.runDir, 'system.jsonl'))).toEqual([{ time: 6, source: 'cpu', utilization: 50, memory_bytes: 10 }]);
  });

  it('flushes at stage boundaries without waiting for the timer', () => {
    const store = RunStore.create(dir, pipeline, init);
    store.append(step(0));
    expect(readFileSync(join(store.runDir, 'metrics.jsonl'), 'utf8')).toBe('');
    store.append({ runId: 'r', time: 1, type: 'stage_end', stage: 0, node: 't', status: 'done' });
    expect(readJsonl(join(store.runDir, 'metrics.jsonl'))).toHaveLength(1);
    store.close();
  });

  it('resumes from the last committed checkpoint: metrics cut back, torn tails dropped', () => {
    const store = RunStore.create(dir, pipeline, init);
    for (let i = 0; i < 3; i++) store.append(step(i));
    mkdirSync(join(store.runDir, 'checkpoints/stage-0'));
    writeFileSync(join(store.runDir, 'checkpoints/stage-0/state.json'), JSON.stringify({ format: 'sparse-studio-checkpoint/2', stage: 0, step: 3, lr: 1, modelState: {} }));
    store.commitCheckpoint({ stage: 0, path: 'checkpoints/stage-0', step: 3 });
    for (let i = 3; i < 5; i++) store.append(step(i));
    store.close();
    appendFileSync(join(store.runDir, 'metrics.jsonl'), '{"type":"step","sta');
    appendFileSync(join(store.runDir, 'events.jsonl'), '{"type":"lo');

    const { store: again, checkpoint } = RunStore.reopenForResume(store.runDir);
    expect(checkpoint).toEqual({ stage: 0, path: 'checkpoints/stage-0', step: 3, metricsLines: 3 });
    expect(readJsonl<{ step: number }>(join(store.runDir, 'metrics.jsonl')).map((m) => m.step)).toEqual([0, 1, 2]);
    expect(readFileSync(join(store.runDir, 'events.jsonl'), 'utf8').endsWith('\n')).toBe(true);
    again.append(step(3));
    again.close();
    expect(readJsonl<{ step: number }>(join(store.runDir, 'metrics.jsonl')).map((m) => m.step)).toEqual([0, 1, 2, 3]);
    expect(readRunRecord(store.runDir).resumes).toBe(1);
  });

  it('restarts from nothing when no checkpoint was committed', () => {
    const store = RunStore.create(dir, pipeline, init);
    store.append(step(0));
    store.close();
    const { checkpoint } = RunStore.reopenForResume(store.runDir);
    expect(checkpoint).toBeNull();
    expect(readFileSync(join(store.runDir, 'metrics.jsonl'), 'utf8')).toBe('');
  });

  it('names the file when a directory is not a run', () => {
    expect(() => RunStore.reopenForResume(dir)).toThrow(`${join(dir, 'run.json')}: no such file (not a run directory)`);
  });
});
