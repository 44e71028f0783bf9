// Smoke: the studio page loads from `serve`, lists the shipped templates by name, opens one as
// a graph, and the server refuses requests without the token.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from './support/studio';
import { PROJECT_ROOT } from './support/renderer-build';

interface TemplateFile { id: string; name: string; nodes: number }

const templates: TemplateFile[] = readdirSync(join(PROJECT_ROOT, 'templates'))
  .filter((f) => f.endsWith('.json'))
  .map((f) => {
    const p = JSON.parse(readFileSync(join(PROJECT_ROOT, 'templates', f), 'utf8'));
    return { id: f.slice(0, -5), name: p.info.name as string, nodes: (p.nodes as unknown[]).length };
  });

const templateEntry = (page: import('@playwright/test').Page, name: string) =>
  page.getByRole('button', { name, exact: true }).or(page.getByRole('link', { name, exact: true }));

test('the page loads and lists every template by name', async ({ page, studio }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(studio.url);
  await expect(page).toHaveTitle(/Sparse Studio/);
  expect(templates.length).toBeGreaterThan(0);
  for (const t of templates) await expect(templateEntry(page, t.name), t.id).toBeVisible();
  expect(errors).toEqual([]);
});

test('a template opens as a graph with one node per pipeline node', async ({ page, studio }) => {
  const quick = templates.find((t) => t.id === 'quick-demo') ?? templates[0];
  await page.goto(studio.url);
  await templateEntry(page, quick.name).click();
  await expect(page.locator('.react-flow__node')).toHaveCount(quick.nodes);
  await page.screenshot({ path: join(PROJECT_ROOT, 'e2e/artifacts/smoke.png'), fullPage: true });
});

test('requests without the token get 401', async ({ request, studio }) => {
  expect((await request.get(`${studio.origin}/`)).status()).toBe(401);
  expect((await request.get(`${studio.origin}/index.html`)).status()).toBe(401);
  expect((await request.get(`${studio.origin}/?token=${'0'.repeat(32)}`)).status()).toBe(401);
  expect((await request.get(studio.url)).status()).toBe(200);
});
