// Attaching a run folder another process writes, at the service level (what `serve` and the
// desktop app run): every step arrives once and in order, live and in getRun's history, through
// torn lines (mid-file and last), with system samples from system.jsonl on the same clock.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunEvent } from '../core/events';
import { createStudioService } from './studio-service';

const repo = join(import.meta.dirname, '..');

// Another process: 30 steps, each line written in two pieces (the reader sees torn last lines),
// a stray torn line mid-file, a GPU sample per step in system.jsonl (also written in pieces),
// the summary, then a torn last line it never finishes.
const WRITER = `
const fs = require('fs');
const dir = process.argv[1];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  const halves = async (file, line) => {
    const cut = Math.floor(line.length / 2);
    fs.appendFileSync(dir + '/' + file, line.slice(0, cut));
    await sleep(8);
    fs.appendFileSync(dir + '/' + file, line.slice(cut));
  };
  const put = (e) => halves('events.jsonl', JSON.stringify({ runId: 'torch', time: Date.now(), ...e }) + '\\n');
  await put({ type: 'status', status: 'running' });
  await put({ type: 'stage_start', stage: 0, node: 't', name: 'Stage 1', steps: 30 });
  for (let s = 0; s < 30; s++) {
    await put({ type: 'step', metrics: { stage: 0, step: s, stage_step: s, loss: 5 - s / 100, task_loss: 5, attn_kl_loss: 0, logit_kl_loss: 0, hidden_mse_loss: 0, lr: 1e-4, grad_norm: 1, tokens: 8, density: 1, seq_len: 4 } });
    await halves('system.jsonl', JSON.stringify({ time: Date.now(), source: 'gpu', utilization: 50 + s, memory_bytes: 2 ** 30, devices: [{ index: 0, utilization: 50 + s, memory_bytes: 2 ** 30, power_watts: 200, temperature_c: 60 }] }) + '\\n');
    if (s === 10) fs.appendFileSync(dir + '/events.jsonl', '{"type":"step","metr\\n');
  }
  await put({ type: 'stage_end', stage: 0, node: 't', status: 'done' });
  await put({ type: 'status', status: 'completed' });
  await put({ type: 'summary', status: 'completed', runDir: dir, stages: [{ stage: 0, node: 't', name: 'Stage 1', status: 'done', attempts: 1, metrics: {} }], final: { loss: 4.7 } });
  fs.appendFileSync(dir + '/events.jsonl', '{"type":"log","level":"info","mess');
})();
`;

describe('attachRun', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'attach-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  const runsDir = join(scratch, 'runs');
  const service = createStudioService({ runsDir, templatesDir: join(repo, 'templates'), projectRoot: repo, baseDir: scratch, confineClientPaths: true, warn: () => {} });
  afterAll(() => service.close());

  const runFolder = (name: string) => {
    const dir = join(scratch, 'cluster', name);
    mkdirSync(dir, { recursive: true });
    for (const f of ['events.jsonl', 'system.jsonl']) writeFileSync(join(dir, f), '');
    writeFileSync(join(dir, 'run.json'), JSON.stringify({ id: 'torch', name: 'exported run', status: 'running', startedAt: Date.now(), stages: [], final: {} }));
    return dir;
  };

  it('follows a folder another process writes: every step once, in order, live and in history, through torn lines', async () => {
    const dir = runFolder('job-1');
    const live: RunEvent[] = [];
    const off = service.onRunEvent((e) => live.push(e));
    const writer = spawn(process.execPath, ['-e', WRITER, dir], { stdio: 'ignore' });
    const { runId } = await service.attachRun('cluster/job-1'); // relative to the working folder
    expect(runId).toBe('attached-job-1');
    expect((await service.attachRun(dir)).runId).toBe(runId); // attaching again: the same run
    const listed = (await service.listRuns()).find((r) => r.id === runId);
    expect(listed).toMatchObject({ name: 'exported run', attachedFrom: dir });

    await new Promise((r) => writer.on('exit', r));
    const deadline = Date.now() + 10_000;
    while (!live.some((e) => e.runId === runId && e.type === 'summary') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 600)); // trailing samples
    off();

    const mine = live.filter((e) => e.runId === runId);
    const steps = (events: RunEvent[]) => events.flatMap((e) => (e.type === 'step' ? [e.metrics.step] : []));
    expect(steps(mine)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    const samples = mine.filter((e) => e.type === 'system');
    expect(samples).toHaveLength(30);
    expect(samples.map((e) => (e.type === 'system' ? e.sample.devices?.[0].utilization : -1))).toEqual(Array.from({ length: 30 }, (_, i) => 50 + i));
    expect(mine.at(-1)?.type).toBe('summary'); // the torn last line is never an event
    expect(mine.every((e) => e.runId === runId)).toBe(true);

    const detail = await service.getRun(runId);
    expect(detail.events).toEqual(mine); // the history is exactly what was streamed
    expect(detail).toMatchObject({ status: 'completed', stages: 1, runDir: dir });
    expect(detail.final).toEqual({ loss: 4.7 });

    await expect(service.pauseRun(runId)).rejects.toThrow(/is attached: the process that writes it controls it/);
    await expect(service.resumeRun(runId)).rejects.toThrow(/is attached/);
    await service.detachRun(runId);
    expect((await service.listRuns()).some((r) => r.id === runId)).toBe(false);
    await expect(service.getRun(runId)).rejects.toThrow();
  }, 30_000);

  it('refuses folders outside what serve reads for its clients, and folders that are not runs', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'attach-outside-'));
    try {
      writeFileSync(join(outside, 'events.jsonl'), '');
      await expect(service.attachRun(outside)).rejects.toThrow(/outside the folders this studio reads/);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
    mkdirSync(join(scratch, 'empty'), { recursive: true });
    await expect(service.attachRun('empty')).rejects.toThrow(/not a run folder/);
    await expect(service.attachRun('missing')).rejects.toThrow(/no such folder/);
  });

  it('a run folder of its own runs folder is that run', async () => {
    const own = join(runsDir, '20260101T000000000Z-abcdef');
    mkdirSync(own, { recursive: true });
    writeFileSync(join(own, 'run.json'), '{}');
    expect((await service.attachRun(own)).runId).toBe('20260101T000000000Z-abcdef');
  });
});
