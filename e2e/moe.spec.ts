// A mixture-of-experts run in the studio: the Qwen3-MoE double-sparsity template on the built-in
// MoE demo, shortened in the inspector (2 steps a stage, one 512-token sequence), runs to the end;
// the monitor shows the load-balance curve and the layer x expert usage heatmap.
import { join } from 'node:path';
import { expect, test } from './support/studio';
import { PROJECT_ROOT } from './support/renderer-build';
import { inspector } from './support/inspector';
import { runStatus, startRun, waitForPoints } from './support/quick-run';

const MOE_TEMPLATE = 'Qwen3-MoE: double sparsity (block-sparse attention on routed experts)';

test('the MoE template runs and the monitor shows expert usage per layer', async ({ page, studio }) => {
  test.setTimeout(300_000);
  await page.setViewportSize({ width: 1600, height: 1100 });
  await page.goto(studio.url);
  await page.getByRole('button', { name: MOE_TEMPLATE, exact: true }).click();
  await expect(page.locator('.react-flow__node').first()).toBeVisible();
  await page.getByRole('button', { name: 'fit view' }).click();
  const root = inspector(page);
  for (const train of ['s1-train', 's2-train', 's3-train']) {
    await page.locator(`[data-node-id="${train}"]`).click();
    await expect(root.getByLabel('load_balance', { exact: true })).toHaveValue('seed');
    await root.getByLabel('steps', { exact: true }).fill('2');
    await root.getByLabel('eval_every', { exact: true }).fill('1');
    await root.getByLabel('eval_batches', { exact: true }).fill('1');
    await root.getByLabel('batch_size', { exact: true }).fill('1');
    await root.getByLabel('warmup_steps', { exact: true }).fill('1');
    const curriculum = root.getByRole('button', { name: /^remove curriculum\[/ });
    while ((await curriculum.count()) > 1) await curriculum.last().click();
    await root.getByLabel('curriculum[0].seq_len', { exact: true }).fill('512');
  }
  await page.locator('[data-node-id="export"]').click();
  await page.getByRole('button', { name: 'Delete', exact: true }).click();
  await expect(page.getByLabel('validity')).toHaveText('valid');

  await startRun(page);
  await waitForPoints(page, 'load_balance_loss');
  const heatmap = page.getByRole('img', { name: /^expert_usage: 6 MoE layers by 8 experts at step \d+$/ });
  await expect(heatmap).toBeVisible({ timeout: 120_000 });
  await expect.poll(() => runStatus(page), { timeout: 240_000, intervals: [2000] }).toMatch(/completed|failed/);
  expect(await runStatus(page)).toBe('completed');
  await expect(page.getByRole('figure', { name: 'expert_usage', exact: true })).toContainText(/6 MoE layers · 8 experts · load [\d.]+-[\d.]+ x uniform/);
  await page.getByRole('figure', { name: 'expert_usage', exact: true }).scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(PROJECT_ROOT, 'e2e/artifacts/moe-usage.png'), fullPage: true });
});
