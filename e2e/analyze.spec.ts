// "Analyze attention" on a Replace node of the seed template: the teacher's profile runs on the
// server (off its thread), the inspector shows the mass map, the floor curve, the recommended
// budgets and, next to the mask, the lowest attn_kl the mask allows.
import { join } from 'node:path';
import { expect, test } from './support/studio';
import { PROJECT_ROOT } from './support/renderer-build';
import { inspector } from './support/inspector';

const artifacts = join(PROJECT_ROOT, 'e2e/artifacts');

test('analyzes attention on a Replace node and shows the floor next to its mask', async ({ page, studio }) => {
  test.setTimeout(180_000);
  await page.setViewportSize({ width: 1600, height: 1100 });
  await page.goto(studio.url);
  await page.getByRole('button', { name: 'Seed plan: progressive block-sparse conversion', exact: true }).click();
  await expect(page.getByRole('status')).toContainText('Opened template');
  await page.getByRole('button', { name: 'fit view' }).click();

  await page.locator('[data-node-id="s3-replace"]').click();
  const panel = inspector(page);
  await expect(panel.getByLabel('attention analysis')).toContainText('Teacher of builtin:demo on 8 validation windows x 512 tokens of builtin:brown, block 16');
  await panel.getByRole('button', { name: 'Analyze attention' }).click();
  const bound = panel.getByLabel('attention bound');
  await expect(bound).toContainText(/at this mask, attn_kl ≥ \d+\.\d{3}/, { timeout: 150_000 });
  const value = Number((await bound.locator('b').textContent()) ?? 'NaN');
  expect(value).toBeGreaterThan(0);
  expect(value).toBeLessThan(10);
  await expect(bound).toContainText('Lower bound for any student confined to this mask at 512 tokens');
  await bound.scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(artifacts, 'analyze-attention-bound.png') });

  await expect(panel.getByRole('img', { name: /teacher attention mass map of layer 11: 32 blocks per side/ })).toBeVisible();
  await expect(panel.getByRole('img', { name: 'floor curve of layer 11' })).toBeVisible();
  const budgets = panel.getByRole('table', { name: 'recommended budgets' });
  await expect(budgets.locator('tbody tr')).toHaveCount(12);
  await expect(budgets.locator('tr.replaced')).toHaveCount(2);
  await panel.getByRole('img', { name: 'floor curve of layer 11' }).scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(artifacts, 'analyze-attention.png') });

  // A wider window keeps more teacher mass: the bound falls.
  await panel.getByLabel('window_blocks', { exact: true }).fill('6');
  await expect.poll(async () => Number(await bound.locator('b').textContent())).toBeLessThan(value);

  // Stage 1's Replace node uses the same profile (same data, length and block): its top-k mask
  // reads the oracle floor at its density, and says it is not a strict bound.
  await page.locator('[data-node-id="s1-replace"]').click();
  await expect(panel.getByLabel('attention bound')).toContainText(/at this mask, attn_kl ≳ \d+\.\d{3}/);
  await expect(panel.getByLabel('attention bound')).toContainText('not a strict bound');
});
