// The run monitor on a real run (serve -> RunManager -> engine): charts receive points, stages
// pass with gate verdicts, pause/resume act, and a reload mid-run reconnects and redraws every
// point so far.
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

  // Points arrive on the loss chart while the run goes.
  await waitForPoints(page, 'loss');
  await expect.poll(() => chartPoints(page, 'loss'), { timeout: 180_000 }).toBeGreaterThan(2);
  for (const metric of CHARTS) await expect(page.getByRole('figure', { name: metric, exact: true })).toBeVisible();
  await expect(page.getByRole('figure', { name: 'system', exact: true })).toContainText(/CPU|GPU/);

  // Reload mid-run: the page reconnects, re-fetches the run and shows every point so far.
  const eventsBefore = Number((await page.getByText(/\d+ events/).textContent())!.match(/(\d+) events/)![1]);
  await page.reload();
  await expect(page.getByRole('tab', { name: 'Monitor' })).toHaveAttribute('aria-selected', 'true');
  await expect.poll(async () => Number((await page.getByText(/\d+ events/).textContent())?.match(/(\d+) events/)?.[1] ?? 0), { timeout: 30_000 })
    .toBeGreaterThanOrEqual(eventsBefore);
  expect(await chartPoints(page, 'loss')).toBeGreaterThan(2);

  // Pause and resume (when the run is still going).
  if ((await runStatus(page)) === 'running') {
    await page.getByRole('button', { name: 'pause', exact: true }).click();
    await expect.poll(() => runStatus(page), { timeout: 60_000 }).toMatch(/paused|completed|failed/);
    if ((await runStatus(page)) === 'paused') {
      const step = async () => (await page.getByText(/step \d+/).first().textContent())!.match(/step (\d+)/)![1];
      await page.waitForTimeout(1500); // the step in flight when pause arrived finishes first
      const pausedAt = await step();
      await page.waitForTimeout(2500);
      expect(await step()).toBe(pausedAt); // training stops while paused (system samples go on)
      await page.getByRole('button', { name: 'resume', exact: true }).click();
      await expect.poll(() => runStatus(page), { timeout: 60_000 }).toMatch(/running|completed/);
    }
  }

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
