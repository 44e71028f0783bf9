// watch follows a run folder another process writes: every step once, in order, through torn lines.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { RunFollower } from '../run-follow';

const CLI = fileURLToPath(new URL('../../bin/sparse-studio.mjs', import.meta.url));

// A writer in another process: 40 steps, each event written in two pieces with a pause between
// (a torn last line the reader sees), a stray torn line followed by a newline, then the summary.
const WRITER = `
const fs = require('fs');
const file = process.argv[1] + '/events.jsonl';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  const put = async (e) => {
    const line = JSON.stringify({ runId: 'x', time: Date.now(), ...e }) + '\\n';
    const cut = Math.floor(line.length / 2);
    fs.appendFileSync(file, line.slice(0, cut));
    await sleep(15);
    fs.appendFileSync(file, line.slice(cut));
  };
  await put({ type: 'stage_start', stage: 0, node: 't', name: 'Stage 1', steps: 40 });
  for (let s = 0; s < 40; s++) {
    await put({ type: 'step', metrics: { stage: 0, step: s, stage_step: s, loss: 5 - s / 100, task_loss: 5, attn_kl_loss: 0, logit_kl_loss: 0, hidden_mse_loss: 0, lr: 1e-4, grad_norm: 1, tokens: 8, density: 1, seq_len: 4 } });
    if (s === 20) fs.appendFileSync(file, '{"type":"step","metr\\n');
  }
  await put({ type: 'stage_end', stage: 0, node: 't', status: 'done' });
  await put({ type: 'summary', status: 'completed', runDir: process.argv[1], stages: [{ stage: 0, node: 't', name: 'Stage 1', status: 'done', attempts: 1, metrics: {} }], final: {} });
})();
`;

describe('watch', () => {
  const dirs: string[] = [];
  afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
  const runDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'watch-'));
    dirs.push(d);
    writeFileSync(join(d, 'events.jsonl'), '');
    return d;
  };

  it('RunFollower sees every step once, in order, while another process writes', async () => {
    const dir = runDir();
    const writer = spawn(process.execPath, ['-e', WRITER, dir], { stdio: 'ignore' });
    const steps: number[] = [];
    await new RunFollower(dir).follow((e) => { if (e.type === 'step') steps.push(e.metrics.step); }, { intervalMs: 5 });
    await new Promise((r) => writer.on('exit', r));
    expect(steps).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  it('sparse-studio watch prints each step once, in order, and the stage table', async () => {
    const dir = runDir();
    const watcher = spawn(process.execPath, [CLI, 'watch', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    watcher.stdout.on('data', (d) => { out += String(d); });
    const writer = spawn(process.execPath, ['-e', WRITER, dir], { stdio: 'ignore' });
    const code = await new Promise<number | null>((r) => watcher.on('exit', r));
    await new Promise((r) => writer.exitCode !== null ? r(null) : writer.on('exit', r));
    expect(code).toBe(0);
    const printed = [...out.matchAll(/^ {2}step (\d+) /gm)].map((m) => Number(m[1]));
    expect(printed).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(out).toContain('stage 1 Stage 1: 40 steps');
    expect(out).toMatch(/1 +Stage 1 +done +1/);
    expect(out).toContain('run completed');
  });

  it('refuses a folder that is not a run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'watch-none-'));
    dirs.push(dir);
    const child = spawn(process.execPath, [CLI, 'watch', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => { err += String(d); });
    expect(await new Promise((r) => child.on('exit', r))).toBe(2);
    expect(err).toContain('not a run folder');
  });
});
