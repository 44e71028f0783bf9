// The studio's second pass, as a person meets it: what the seed controls, a readable default
// view, refused links that say why, runs that queue, cancelled runs that say cancelled.
import { join } from 'node:path';
import type { Page } from '@playwright/test';
import { expect, test } from './support/studio';
import { PROJECT_ROOT } from './support/renderer-build';
import { inspector } from './support/inspector';

const artifacts = join(PROJECT_ROOT, 'e2e/artifacts');
const SEED_PLAN = 'Seed plan: progressive block-sparse conversion';

async function openTemplate(page: Page, name: string) {
  await page.getByRole('button', { name, exact: true }).click();
  await expect(page.getByRole('status')).toContainText('Opened template');
}

test('the inspector says which seed controls what', async ({ page, studio }) => {
  await page.goto(studio.url);
  await openTemplate(page, SEED_PLAN);
  await page.screenshot({ path: join(artifacts, 'second-pass-seed-plan-default.png') });
  await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
  const settings = inspector(page);
  await settings.getByLabel('seed', { exact: true }).fill('7');
  const uses = settings.getByRole('list', { name: 'what the seeds control' });
  await expect(uses).toContainText('document split and training order: pipeline seed 7');
  await expect(uses).toContainText('random blocks and indexer initialisation: pipeline seed 7');

  await page.locator('[data-node-id="data"]').click();
  await expect(inspector(page).getByLabel('seed note')).toHaveText('0 follows the pipeline seed (now 7).');
  await inspector(page).getByLabel('seed', { exact: true }).fill('42');
  await expect(inspector(page).getByLabel('seed note')).toHaveText('Overrides the pipeline seed (7) for this node.');
});
