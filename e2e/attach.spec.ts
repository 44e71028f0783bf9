// Attaching a run folder another process writes (an exported PyTorch project, a cluster folder):
// the Runs view's "Attach run folder…" opens it in the monitor, new lines arrive live, and the
// GPU panel draws the recorded GPU samples of its system.jsonl (two devices, no GPU needed).
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from './support/studio';
import { PROJECT_ROOT } from './support/renderer-build';
import { chartPoints, runStatus } from './support/quick-run';

const T0 = Date.now() - 60_000;

function stepLine(s: number): string {
  return JSON.stringify({ runId: 'torch', time: T0 + 1000 * (s + 1), type: 'step', metrics: { stage: 0, stage_step: s, step: s, loss: 5 - s / 20, task_loss: 5 - s / 20, attn_kl_loss: 0.1, logit_kl_loss: 0, hidden_mse_loss: 0, lr: 1e-4, grad_norm: 1, tokens: 512, density: 0.5, seq_len: 64 } }) + '\n';
}

function sampleLine(s: number): string {
  const device = (index: number, util: number) => ({ index, name: 'NVIDIA H100', utilization: util, memory_bytes: (10 + index) * 2 ** 30, memory_total_bytes: 80 * 2 ** 30, power_watts: 250 + util, temperature_c: 55 + index });
  return JSON.stringify({ time: T0 + 1000 * (s + 1) + 500, source: 'gpu', utilization: 90, memory_bytes: 10 * 2 ** 30, devices: [device(0, 90 - s), device(1, 40 + s)] }) + '\n';
}

test('attaches a folder another process writes and follows it: charts, stage bands and the GPU panel', async ({ page, studio }) => {
  // Inside the runs folder the service reads for its clients, but not one of its own runs.
  const dir = join(studio.runsDir, 'cluster', 'job-7');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'pipeline.json'), readFileSync(join(PROJECT_ROOT, 'templates', 'quick-demo.json')));
  writeFileSync(join(dir, 'run.json'), JSON.stringify({ id: 'torch', name: 'exported quick demo', status: 'running', startedAt: T0, stages: [], final: {} }));
  writeFileSync(join(dir, 'events.jsonl'), [
    JSON.stringify({ runId: 'torch', time: T0, type: 'status', status: 'running' }) + '\n',
    JSON.stringify({ runId: 'torch', time: T0 + 1, type: 'stage_start', stage: 0, node: 'train-1', name: 'Distil', steps: 20 }) + '\n',
    ...Array.from({ length: 10 }, (_, s) => stepLine(s)),
  ].join('') + stepLine(10).slice(0, 40)); // the writer is mid-line
  writeFileSync(join(dir, 'system.jsonl'), Array.from({ length: 10 }, (_, s) => sampleLine(s)).join(''));

  await page.goto(studio.url);
  await page.getByRole('tab', { name: 'Runs' }).click();
  await page.getByRole('button', { name: 'attach run folder' }).click();
  await page.getByRole('textbox', { name: 'run folder path' }).fill(dir);
  await page.getByRole('button', { name: 'attach', exact: true }).click();

  await expect(page.getByRole('tab', { name: 'Monitor' })).toHaveAttribute('aria-selected', 'true');
  await expect(page.getByRole('heading', { name: /attached-job-7/ })).toBeVisible();
  await expect.poll(() => chartPoints(page, 'loss')).toBeGreaterThanOrEqual(10);
  for (const id of ['gpu_utilization', 'gpu_memory', 'gpu_power', 'gpu_temperature']) {
    const chart = page.getByRole('figure', { name: id, exact: true });
    await expect(chart).toBeVisible();
    await expect(chart).toContainText('GPU 0 (NVIDIA H100)');
    await expect(chart).toContainText('GPU 1 (NVIDIA H100)');
  }
  await expect(page.getByRole('figure', { name: 'system', exact: true })).toHaveCount(0); // no CPU samples
  const gpuBefore = await chartPoints(page, 'gpu_utilization');
  expect(gpuBefore).toBeGreaterThan(0);

  // The other process goes on: the torn line completes, more steps and samples, the stage ends.
  const lossBefore = await chartPoints(page, 'loss');
  appendFileSync(join(dir, 'events.jsonl'), stepLine(10).slice(40) + Array.from({ length: 9 }, (_, s) => stepLine(s + 11)).join(''));
  appendFileSync(join(dir, 'system.jsonl'), Array.from({ length: 10 }, (_, s) => sampleLine(s + 10)).join(''));
  await expect.poll(() => chartPoints(page, 'loss')).toBeGreaterThan(lossBefore);
  await expect.poll(() => chartPoints(page, 'gpu_utilization')).toBeGreaterThan(gpuBefore);
  appendFileSync(join(dir, 'events.jsonl'), [
    JSON.stringify({ runId: 'torch', time: T0 + 21_000, type: 'stage_end', stage: 0, node: 'train-1', status: 'done' }),
    JSON.stringify({ runId: 'torch', time: T0 + 21_001, type: 'status', status: 'completed' }),
    JSON.stringify({ runId: 'torch', time: T0 + 21_002, type: 'summary', status: 'completed', runDir: dir, stages: [{ stage: 0, node: 'train-1', name: 'Distil', status: 'done', attempts: 1, metrics: {} }], final: {} }),
  ].join('\n') + '\n');
  await expect.poll(() => runStatus(page)).toBe('completed');
  await expect(page.getByRole('region', { name: 'stage timeline' }).getByLabel(/^stage 1 .*: done$/)).toHaveCount(1);

  // Listed next to local runs, marked as attached; detach removes it from the list.
  await page.getByRole('tab', { name: 'Runs' }).click();
  const row = page.getByRole('row', { name: 'run attached-job-7' });
  await expect(row).toContainText('exported quick demo');
  await expect(row).toContainText(`attached: ${dir}`);
  await row.getByRole('button', { name: 'detach attached-job-7' }).click();
  await expect(page.getByRole('row', { name: 'run attached-job-7' })).toHaveCount(0);
});
