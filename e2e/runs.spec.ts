// Runs view on real runs: history with status and numbers, open a run's exact pipeline in the
// editor, cancel a run, compare runs (overlaid curves and a param-level pipeline diff).
import { join } from 'node:path';
import { expect, test } from './support/studio';
import { PROJECT_ROOT } from './support/renderer-build';
import { chartPoints, openQuickRun, runStatus, startRun, waitForPoints } from './support/quick-run';
import { inspector } from './support/inspector';

test('runs are listed, cancelled, compared and reopened in the editor', async ({ page, studio }) => {
  test.setTimeout(600_000);
  await page.setViewportSize({ width: 1600, height: 1100 });
  await page.goto(studio.url);
  await openQuickRun(page, 4);
  const first = await startRun(page);
  await waitForPoints(page, 'loss');
  await expect.poll(() => runStatus(page), { timeout: 420_000, intervals: [2000] }).toMatch(/completed|failed/);
  expect(await runStatus(page)).toBe('completed');

  // A second run with a different learning rate, cancelled once it has drawn a point.
  await page.getByRole('tab', { name: 'Editor' }).click();
  await page.locator('[data-node-id="s1-train"]').click();
  await inspector(page).getByLabel('lr', { exact: true }).fill('0.0003');
  const second = await startRun(page);
  expect(second).not.toBe(first);
  await waitForPoints(page, 'loss');
  await page.getByRole('button', { name: 'cancel', exact: true }).click();
  await expect.poll(() => runStatus(page), { timeout: 60_000 }).toMatch(/cancelled|completed/);

  // History.
  await page.getByRole('tab', { name: 'Runs' }).click();
  const table = page.getByRole('table', { name: 'run history' });
  await expect(table.getByRole('row', { name: `run ${first}` })).toContainText('completed');
  await expect(table.getByRole('row', { name: `run ${second}` })).toContainText(/cancelled|completed/);

  // Compare: overlaid loss curves and the lr difference, by node id and path.
  await page.getByLabel(`compare ${first}`).check();
  await page.getByLabel(`compare ${second}`).check();
  const compare = page.getByRole('region', { name: 'compare runs' });
  await expect(compare.getByRole('figure', { name: 'loss', exact: true })).toBeVisible();
  await expect.poll(() => compare.getByRole('figure', { name: 'loss', exact: true }).getAttribute('data-points').then(Number)).toBeGreaterThan(1);
  const diff = compare.getByLabel(`diff ${first} ${second}`);
  await expect(diff).toContainText('nodes.s1-train.params.lr');
  await expect(diff).toContainText('0.0003');
  await page.screenshot({ path: join(PROJECT_ROOT, 'e2e/artifacts/runs.png'), fullPage: true });

  // Reopen the first run's exact pipeline in the editor.
  await page.getByRole('button', { name: `open ${first} in editor` }).click();
  await expect(page.getByRole('tab', { name: 'Editor' })).toHaveAttribute('aria-selected', 'true');
  await page.locator('[data-node-id="s1-train"]').click();
  await expect(inspector(page).getByLabel('lr', { exact: true })).toHaveValue('0.0001');
  await expect(inspector(page).getByLabel('steps', { exact: true })).toHaveValue('4');
});
