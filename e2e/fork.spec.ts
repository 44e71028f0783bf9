// Continue a run from a finished stage, as a person would: run the quick demo, change stage 3 in
// the editor, then in Runs pick a finished stage and "Continue from here". Stage 3 is refused with
// one line naming the changed node; stage 2 starts a new run after stage 2 that completes and is
// listed under its parent.
import { join } from 'node:path';
import { expect, test } from './support/studio';
import { PROJECT_ROOT } from './support/renderer-build';
import { openQuickRun, runStatus, startRun } from './support/quick-run';
import { inspector } from './support/inspector';

test('Continue from here forks a finished stage with the editor graph', async ({ page, studio }) => {
  test.setTimeout(600_000);
  await page.setViewportSize({ width: 1600, height: 1100 });
  await page.goto(studio.url);
  await openQuickRun(page, 2);
  const parent = await startRun(page);
  await expect.poll(() => runStatus(page), { timeout: 420_000, intervals: [2000] }).toMatch(/completed|failed/);
  expect(await runStatus(page)).toBe('completed');

  // Change stage 3 only: stages 1-2 stay what the run ran.
  await page.getByRole('tab', { name: 'Editor' }).click();
  await page.getByRole('button', { name: 'fit view' }).click();
  await page.locator('[data-node-id="s3-train"]').click();
  await inspector(page).getByLabel('lr', { exact: true }).fill('0.00002');

  await page.getByRole('tab', { name: 'Runs' }).click();
  const table = page.getByRole('table', { name: 'run history' });
  await expect(table.locator('tbody tr')).toHaveCount(1);
  await table.getByRole('button', { name: `continue ${parent}`, exact: true }).click();
  const stages = table.getByRole('group', { name: `finished stages of ${parent}` });
  await expect(stages.getByRole('button', { name: /^continue .* from stage \d$/ })).toHaveCount(3);

  // Stage 3 includes the changed node: refused in one line naming it; nothing new is listed.
  await stages.getByRole('button', { name: `continue ${parent} from stage 3`, exact: true }).click();
  await expect(stages.getByRole('alert')).toContainText("node 's3-train' differs at params.lr");
  await expect(table.locator('tbody tr')).toHaveCount(1);

  await stages.getByRole('button', { name: `continue ${parent} from stage 2`, exact: true }).click();
  await expect(page.getByRole('tab', { name: 'Monitor' })).toHaveAttribute('aria-selected', 'true');
  await expect.poll(() => page.url()).not.toContain(encodeURIComponent(parent));
  const child = decodeURIComponent(page.url().split('#/monitor/')[1]);
  await expect.poll(() => runStatus(page), { timeout: 300_000, intervals: [2000] }).toMatch(/completed|failed/);
  expect(await runStatus(page)).toBe('completed');

  // The family: the fork right under its parent, one level in, with a link back.
  await page.getByRole('tab', { name: 'Runs' }).click();
  const childRow = table.getByRole('row', { name: `run ${child}` });
  await expect(childRow).toHaveAttribute('data-depth', '1');
  await expect(childRow).toContainText(`continues ${parent} after stage 2`);
  const order = await table.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('aria-label')));
  expect(order).toEqual([`run ${parent}`, `run ${child}`]);
  await page.screenshot({ path: join(PROJECT_ROOT, 'e2e/artifacts/fork.png'), fullPage: true });

  // The parent link follows the parent in the monitor.
  await childRow.getByRole('button', { name: `parent ${parent}` }).click();
  await expect.poll(() => page.url()).toContain(`#/monitor/${encodeURIComponent(parent)}`);
});
