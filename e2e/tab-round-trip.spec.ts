// Moving between the views keeps the page alive: after a run and an edit, Editor -> Runs ->
// Monitor -> Editor raises no page error and shows the canvas again. (The canvas and xyflow
// once held two copies of the selection that flip-flopped into a render loop here.)
import { expect, test } from './support/studio';
import { inspector } from './support/inspector';
import { openQuickRun, runStatus, startRun } from './support/quick-run';

test('the editor survives a round trip through Runs and Monitor after a run and an edit', async ({ page, studio }) => {
  test.setTimeout(300_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(studio.url);
  await openQuickRun(page, 2);
  await startRun(page);
  await expect.poll(() => runStatus(page), { timeout: 240_000, intervals: [2000] }).toMatch(/completed|failed/);

  await page.getByRole('tab', { name: 'Editor' }).click();
  await page.getByRole('button', { name: 'fit view' }).click();
  await page.locator('[data-node-id="s3-train"]').click();
  await inspector(page).getByLabel('lr', { exact: true }).fill('0.00002');
  for (const view of ['Runs', 'Monitor', 'Editor', 'Runs', 'Editor', 'Monitor', 'Editor']) {
    await page.getByRole('tab', { name: view }).click();
    await expect(page.getByRole('tab', { name: view })).toHaveAttribute('aria-selected', 'true');
  }
  await expect(page.locator('[data-node-id="s3-train"]')).toHaveClass(/selected/);
  await expect(inspector(page).getByLabel('lr', { exact: true })).toHaveValue('0.00002');
  expect(errors).toEqual([]);
});
