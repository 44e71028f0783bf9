// Turns the quick demo into a run that finishes in a minute or two on two CPU cores, through the
// editor as a person would: a randomly initialised demo model (no pretrained weights needed),
// few steps per stage, frequent evaluations, no export node.
import { expect, type Page } from '@playwright/test';
import { inspector } from './inspector';

export const QUICK_DEMO_NAME = 'Quick demo: three stages in minutes';

export async function openQuickRun(page: Page, steps: number, options: { lr?: string } = {}): Promise<void> {
  await page.getByRole('button', { name: QUICK_DEMO_NAME, exact: true }).click();
  await expect(page.locator('.react-flow__node').first()).toBeVisible();
  // The template opens on its first stage; the whole graph is one fit away.
  await page.getByRole('button', { name: 'fit view' }).click();
  const root = inspector(page);
  await page.locator('[data-node-id="model"]').click();
  await root.getByLabel('source', { exact: true }).fill('init:models/demo/config.json');
  for (const train of ['s1-train', 's2-train', 's3-train']) {
    await page.locator(`[data-node-id="${train}"]`).click();
    await root.getByLabel('steps', { exact: true }).fill(String(steps));
    await root.getByLabel('eval_every', { exact: true }).fill(String(Math.max(1, Math.floor(steps / 2))));
    await root.getByLabel('warmup_steps', { exact: true }).fill('1');
    const curriculum = root.getByRole('button', { name: /^remove curriculum\[/ });
    while ((await curriculum.count()) > 1) await curriculum.last().click();
    await root.getByLabel('curriculum[0].seq_len', { exact: true }).fill('128');
    if (options.lr && train === 's1-train') await root.getByLabel('lr', { exact: true }).fill(options.lr);
  }
  await page.locator('[data-node-id="export"]').click();
  await page.getByRole('button', { name: 'Delete', exact: true }).click();
  await expect(page.getByLabel('validity')).toHaveText('valid');
}

/** Clicks Run and returns the run id the monitor follows. */
export async function startRun(page: Page): Promise<string> {
  await page.getByRole('button', { name: 'run', exact: true }).click();
  await expect(page.getByRole('tab', { name: 'Monitor' })).toHaveAttribute('aria-selected', 'true');
  await expect.poll(() => page.url()).toMatch(/#\/monitor\/.+/);
  return decodeURIComponent(page.url().split('#/monitor/')[1]);
}

/** Points drawn in a chart (its data-points attribute). */
export async function chartPoints(page: Page, metric: string): Promise<number> {
  return Number(await page.getByRole('figure', { name: metric, exact: true }).getAttribute('data-points') ?? 0);
}

export async function runStatus(page: Page): Promise<string> {
  return (await page.getByLabel('run status').textContent()) ?? '';
}

/** Waits until `metric` has points; fails at once, with the run's message, if the run fails first. */
export async function waitForPoints(page: Page, metric: string, timeout = 180_000): Promise<void> {
  await expect.poll(async () => {
    if ((await runStatus(page)) === 'failed') {
      const line = await page.getByLabel('run status').locator('xpath=..').textContent();
      throw new Error(`the run failed before drawing ${metric}: ${line}`);
    }
    return chartPoints(page, metric);
  }, { timeout }).toBeGreaterThan(0);
}
