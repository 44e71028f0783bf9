// Durability of what a resume relies on (checkpoints, run.json) and the checks a resume makes
// of what it reads back.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Pipeline } from '../../core/schema';
import type { RunEvent, StepMetrics } from '../../core/events';
import type { EngineModel } from '../../native/engine-api';
import { durableFs } from '../durable-fs';
import { readRunRecord, RunStore } from '../run-store';
import { readCheckpointState, writeCheckpoint } from './checkpoint';
import { initialRunModelState } from './model-state';

const pipeline = { version: 1, info: { name: 'p', author: '', description: '' }, seed: 1, backend: 'cpu', nodes: [], links: [] } as unknown as Pipeline;
const init = { backend: 'cpu', threads: 2, versions: { studio: 't', node: process.version }, machine: { platform: 'linux', arch: 'x64', cpus: 2, cpuModel: 'x', totalMemoryBytes: 1 } };
const step = (i: number): RunEvent => ({ runId: 'r', time: 1000 + i, type: 'step', metrics: { stage: 0, step: i, stage_step: i, loss: 1 } as StepMetrics });

/** A model whose save/saveOptimizer write small files, like the engine's. */
const fakeModel = (tag: string) => ({
  save: async (dir: string) => { mkdirSync(dir, { recursive: true }); writeFileSync(join(dir, 'config.json'), '{}'); writeFileSync(join(dir, 'model.safetensors'), tag); },
  saveOptimizer: async (file: string) => { writeFileSync(file, tag); },
}) as unknown as EngineModel;

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'durability-')); });
afterEach(() => { vi.restoreAllMocks(); rmSync(dir, { recursive: true, force: true }); });

function watchSyncs(): string[] {
  const log: string[] = [];
  const file = durableFs.syncFile.bind(durableFs);
  const folder = durableFs.syncDir.bind(durableFs);
  vi.spyOn(durableFs, 'syncFile').mockImplementation((f) => { log.push(`file ${f}`); file(f); });
  vi.spyOn(durableFs, 'syncDir').mockImplementation((d) => { log.push(`dir ${d}`); folder(d); });
  return log;
}

describe('checkpoint durability', () => {
  it('fsyncs every file and folder of a checkpoint before the rename, and checkpoints/ after it', async () => {
    const runDir = join(dir, 'run');
    mkdirSync(join(runDir, 'checkpoints'), { recursive: true });
    const log = watchSyncs();
    const rel = await writeCheckpoint(fakeModel('a'), runDir, { stage: 0, step: 4, lr: 0.1, modelState: initialRunModelState(2) });
    const synced = log.map((l) => basename(l.split(' ')[1]));
    for (const f of ['state.json', 'optimizer.bin', 'model.safetensors', 'config.json', 'model']) expect(synced, f).toContain(f);
    expect(log.at(-1)).toBe(`dir ${join(runDir, 'checkpoints')}`);
    expect(readCheckpointState(join(runDir, rel)).step).toBe(4);
  });

  it('keeps the old stage folder until the new one is renamed in', async () => {
    const runDir = join(dir, 'run');
    mkdirSync(join(runDir, 'checkpoints'), { recursive: true });
    await writeCheckpoint(fakeModel('old'), runDir, { stage: 0, step: 4, lr: 0.1, modelState: initialRunModelState(2) });
    const seen: { final: number; old: string[] }[] = [];
    const folder = durableFs.syncDir.bind(durableFs);
    vi.spyOn(durableFs, 'syncDir').mockImplementation((d) => {
      if (d === join(runDir, 'checkpoints')) {
        seen.push({ final: readCheckpointState(join(runDir, 'checkpoints/stage-0')).step, old: readdirSync(d).filter((n) => n.startsWith('.stage-0.old-')) });
      }
      folder(d);
    });
    await writeCheckpoint(fakeModel('new'), runDir, { stage: 0, step: 8, lr: 0.1, modelState: initialRunModelState(2) });
    expect(seen).toHaveLength(1);
    expect(seen[0].final).toBe(8);
    expect(seen[0].old).toHaveLength(1); // the old one still existed when the new one arrived
    expect(readdirSync(join(runDir, 'checkpoints'))).toEqual(['stage-0']);
    expect(readFileSync(join(runDir, 'checkpoints/stage-0/model/model.safetensors'), 'utf8')).toBe('new');
  });

  it('a failed write leaves the old checkpoint in place', async () => {
    const runDir = join(dir, 'run');
    mkdirSync(join(runDir, 'checkpoints'), { recursive: true });
    await writeCheckpoint(fakeModel('old'), runDir, { stage: 0, step: 4, lr: 0.1, modelState: initialRunModelState(2) });
    const broken = { ...fakeModel('new'), saveOptimizer: async () => { throw new Error('disk full'); } } as unknown as EngineModel;
    await expect(writeCheckpoint(broken, runDir, { stage: 0, step: 8, lr: 0.1, modelState: initialRunModelState(2) })).rejects.toThrow('disk full');
    expect(readCheckpointState(join(runDir, 'checkpoints/stage-0')).step).toBe(4);
    expect(readdirSync(join(runDir, 'checkpoints'))).toEqual(['stage-0']);
  });
});

describe('run.json durability', () => {
  it('run.json is fsynced under its temp name, renamed, and its folder fsynced', () => {
    const log = watchSyncs();
    const store = RunStore.create(dir, pipeline, init);
    const file = join(store.runDir, 'run.json');
    expect(log).toEqual([`file ${file}.tmp`, `dir ${store.runDir}`]);
    store.close();
  });

  it('a committed checkpoint fsyncs metrics.jsonl before run.json records it', () => {
    const store = RunStore.create(dir, pipeline, init);
    store.append(step(0));
    const log = watchSyncs();
    store.commitCheckpoint({ stage: 0, path: 'checkpoints/stage-0', step: 1 });
    expect(log[0]).toBe(`file ${join(store.runDir, 'metrics.jsonl')}`);
    expect(log.slice(1)).toEqual([`file ${join(store.runDir, 'run.json')}.tmp`, `dir ${store.runDir}`]);
    store.close();
  });
});

describe('resume checks what it reads', () => {
  async function runWithCheckpoint(stateStep: number, committed: { path: string; step: number }): Promise<string> {
    const store = RunStore.create(dir, pipeline, init);
    for (let i = 0; i < 4; i++) store.append(step(i));
    await writeCheckpoint(fakeModel('a'), store.runDir, { stage: 0, step: stateStep, lr: 0.1, modelState: initialRunModelState(2) });
    store.commitCheckpoint({ stage: 0, path: committed.path, step: committed.step });
    store.append(step(4));
    store.close();
    return store.runDir;
  }

  it('refuses a state.json whose step contradicts run.json, and cuts nothing', async () => {
    const runDir = await runWithCheckpoint(4, { path: 'checkpoints/stage-0', step: 7 });
    const before = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8');
    expect(() => RunStore.reopenForResume(runDir)).toThrow(`cannot resume ${runDir}: run.json checkpoint "checkpoints/stage-0": its state.json says stage 0, step 4; run.json committed stage 0, step 7`);
    expect(readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')).toBe(before);
    expect(readRunRecord(runDir).resumes).toBe(0);
  });

  it('refuses a state.json of another stage', async () => {
    const runDir = await runWithCheckpoint(4, { path: 'checkpoints/stage-0', step: 4 });
    const file = join(runDir, 'checkpoints/stage-0/state.json');
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), stage: 1 }));
    expect(() => RunStore.reopenForResume(runDir)).toThrow(/its state\.json says stage 1, step 4; run\.json committed stage 0, step 4$/);
  });

  it('refuses a checkpoint path that leads outside the run folder (not loaded)', async () => {
    const runDir = await runWithCheckpoint(4, { path: '../../outside', step: 4 });
    // a well-formed checkpoint waits there: it must not be taken
    mkdirSync(join(runDir, '../../outside'), { recursive: true });
    writeFileSync(join(runDir, '../../outside/state.json'), readFileSync(join(runDir, 'checkpoints/stage-0/state.json')));
    expect(() => RunStore.reopenForResume(runDir)).toThrow(/run\.json checkpoint "\.\.\/\.\.\/outside": leads outside the run folder/);
  });

  it('refuses an absolute checkpoint path and one through a symlink', async () => {
    const runDir = await runWithCheckpoint(4, { path: join(dir, 'abs'), step: 4 });
    expect(() => RunStore.reopenForResume(runDir)).toThrow(/must be a path relative to the run folder/);
    const other = await runWithCheckpoint(4, { path: 'checkpoints/link', step: 4 });
    mkdirSync(join(dir, 'elsewhere'));
    writeFileSync(join(dir, 'elsewhere/state.json'), readFileSync(join(other, 'checkpoints/stage-0/state.json')));
    symlinkSync(join(dir, 'elsewhere'), join(other, 'checkpoints/link'));
    expect(() => RunStore.reopenForResume(other)).toThrow(/leads outside the run folder/);
  });

  it('takes a checkpoint that matches', async () => {
    const runDir = await runWithCheckpoint(4, { path: 'checkpoints/stage-0', step: 4 });
    const { checkpoint, store } = RunStore.reopenForResume(runDir);
    expect(checkpoint).toMatchObject({ stage: 0, step: 4, metricsLines: 4 });
    store.close();
    expect(existsSync(join(runDir, 'checkpoints/stage-0'))).toBe(true);
  });
});
