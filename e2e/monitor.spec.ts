// The run monitor on a real run (serve -> RunManager -> engine): charts receive points, stages
// pass with gate verdicts, pause/resume act (always: the pause is sent before the first step),
// and a reload mid-run reconnects and redraws every point so far.
import { join } from 'node:path';
import { expect, test } from './support/studio';
import { PROJECT_ROOT } from './support/renderer-build';
import { chartPoints, openQuickRun, runStatus, startRun, waitForPoints } from './support/quick-run';

const CHARTS = ['loss', 'attn_kl', 'attn_recall', 'density', 'ppl_ratio', 'lr', 'grad_norm', 'tokens_per_s', 'system'];

test('a run streams into the monitor, survives a reload, pauses, resumes and completes', async ({ page, studio }) => {
  test.setTimeout(600_000);
  await page.setViewportSize({ width: 1600, height: 1100 });
  await page.goto(studio.url);
  await openQuickRun(page, 8);
  const runId = await startRun(page);
  expect(runId).toBeTruthy();

  // Pause at once: the engine is still loading the model and data, so the pause lands before
  // (or, on a very fast machine, within) the first steps and the run cannot have ended.
  await page.getByRole('button', { name: 'pause', exact: true }).click();
  await expect.poll(() => runStatus(page), { timeout: 30_000 }).toBe('paused');
  await page.waitForTimeout(2000); // a step already in flight when the pause arrived finishes first
  const pointsWhenPaused = await chartPoints(page, 'loss');
  await page.waitForTimeout(3000);
  expect(await chartPoints(page, 'loss')).toBe(pointsWhenPaused); // no training while paused
  await expect(page.getByRole('button', { name: 'resume', exact: true })).toBeEnabled();
  await page.getByRole('button', { name: 'resume', exact: true }).click();
  await expect.poll(() => runStatus(page), { timeout: 30_000 }).toBe('running');

  // Points arrive on the loss chart while the run goes.
  await waitForPoints(page, 'loss');
  await expect.poll(() => chartPoints(page, 'loss'), { timeout: 180_000 }).toBeGreaterThan(Math.max(2, pointsWhenPaused));
  for (const metric of CHARTS) await expect(page.getByRole('figure', { name: metric, exact: true })).toBeVisible();
  await expect(page.getByRole('figure', { name: 'system', exact: true })).toContainText(/CPU|GPU/);

  // Reload mid-run: the page reconnects, re-fetches the run and shows every point so far.
  const eventsBefore = Number((await page.getByText(/\d+ events/).textContent())!.match(/(\d+) events/)![1]);
  await page.reload();
  await expect(page.getByRole('tab', { name: 'Monitor' })).toHaveAttribute('aria-selected', 'true');
  await expect.poll(async () => Number((await page.getByText(/\d+ events/).textContent())?.match(/(\d+) events/)?.[1] ?? 0), { timeout: 30_000 })
    .toBeGreaterThanOrEqual(eventsBefore);
  expect(await chartPoints(page, 'loss')).toBeGreaterThan(2);

  // Completion: every stage reached its end with a gate verdict.
  await expect.poll(() => runStatus(page), { timeout: 420_000, intervals: [2000] }).toMatch(/completed|failed/);
  expect(await runStatus(page)).toBe('completed');
  const timeline = page.getByRole('region', { name: 'stage timeline' });
  await expect(timeline.getByLabel(/^stage 1 .*: (passed|failed|done)$/)).toHaveCount(1);
  await expect(timeline.getByLabel(/^stage 3 .*: (passed|failed|done)$/)).toHaveCount(1);
  await expect(timeline.getByText(/gate (passed|failed)/).first()).toBeVisible();
  await expect(timeline.getByLabel(/^stage 1 .*: passed$/)).toHaveCount(1);
  for (const metric of ['attn_kl', 'density', 'ppl_ratio']) expect(await chartPoints(page, metric)).toBeGreaterThan(0);
  await expect(page.getByRole('img', { name: /^density per layer: 12 layers by \d+ evaluations$/ })).toBeVisible();

  // Reading the charts: hover readout, time axis, log scale.
  const loss = page.getByRole('figure', { name: 'loss', exact: true });
  const plot = (await loss.locator('.chart-body').boundingBox())!;
  await page.mouse.move(plot.x + plot.width * 0.6, plot.y + plot.height / 2);
  await expect(loss.locator('.readout')).toContainText(/step \d+.*loss: [\d.]+/);
  await page.getByLabel('x axis').selectOption('time');
  await expect(loss.locator('.chart-body')).toContainText(/\ds/); // tick labels in seconds
  await page.getByLabel('log scale').check();
  await expect(loss.locator('.chart-body')).toContainText('10'); // powers of ten on the y axis
  await page.getByLabel('x axis').selectOption('step');
  await page.getByLabel('log scale').uncheck();
  await page.screenshot({ path: join(PROJECT_ROOT, 'e2e/artifacts/monitor.png'), fullPage: true });
});
