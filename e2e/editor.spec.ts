// The graph editor as a person uses it: build the quick demo from an empty canvas by drag and
// drop, fill the inspector, watch validation react, export the JSON and compare it with the
// template, re-import it; undo/redo, copy/paste, delete and autosave restore.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from '@playwright/test';
import { expect, test } from './support/studio';
import { PROJECT_ROOT } from './support/renderer-build';
import { fillNode, inspector, setField } from './support/inspector';
import type { Pipeline } from '../core/schema';

const template = JSON.parse(readFileSync(join(PROJECT_ROOT, 'templates/quick-demo.json'), 'utf8')) as Pipeline;
const artifacts = join(PROJECT_ROOT, 'e2e/artifacts');

/** The pipeline without editor-only parts, nodes and links in a fixed order. */
/** What a pipeline means: without its layout and its `$schema` reference (an editor hint only). */
function semantic(p: Pipeline) {
  const { layout: _layout, $schema: _schema, ...rest } = p;
  return {
    ...rest,
    nodes: [...rest.nodes].sort((a, b) => a.id.localeCompare(b.id)),
    links: [...rest.links].sort((a, b) => `${a.from}>${a.to}`.localeCompare(`${b.from}>${b.to}`)),
  };
}

const canvasNodes = (page: Page) => page.locator('.react-flow__node');
const node = (page: Page, id: string) => page.locator(`[data-node-id="${id}"]`);

async function openTemplate(page: Page, name: string) {
  await page.getByRole('button', { name, exact: true }).click();
  await expect(page.getByRole('status')).toContainText('Opened template');
}

test('builds the quick demo by drag and drop, validates live, exports it equal to the template and re-imports it', async ({ page, studio }) => {
  test.setTimeout(240_000);
  await page.setViewportSize({ width: 1920, height: 1200 });
  await page.goto(studio.url);
  await page.getByRole('button', { name: 'start from scratch' }).click();
  const pane = page.locator('.react-flow__pane');
  await expect(pane).toBeVisible();

  // Nodes: drag each kind from the palette onto a free spot, then fill its inspector.
  for (const [i, n] of template.nodes.entries()) {
    await page.getByRole('navigation', { name: 'node palette' }).getByRole('button', { name: n.kind, exact: true })
      .dragTo(pane, { targetPosition: { x: 120 + (i % 6) * 215, y: 60 + Math.floor(i / 6) * 170 } });
    await expect(canvasNodes(page)).toHaveCount(i + 1);
    await fillNode(page, n);
  }

  // Pipeline settings: click the empty canvas to deselect, then fill name, author, seed...
  await pane.click({ position: { x: 700, y: 8 } });
  const settings = inspector(page);
  await settings.getByLabel('info.name', { exact: true }).fill(template.info.name);
  await settings.getByLabel('info.author', { exact: true }).fill(template.info.author);
  await settings.getByLabel('info.description', { exact: true }).fill(template.info.description);
  await setField(settings, 'seed', { type: 'integer', label: '', help: '' }, template.seed);
  await setField(settings, 'backend', { type: 'enum', label: '', help: '', options: ['auto', 'cpu', 'cuda'] }, template.backend);

  // Links: lay the graph out, fit it, and drag from each output handle to an input.
  await page.getByRole('button', { name: 'Auto-layout', exact: true }).click();
  await page.getByRole('button', { name: 'fit view' }).click();
  for (const link of template.links) {
    const from = template.nodes.find((x) => x.id === link.from)!;
    const type = from.kind === 'dataset' ? 'data' : 'model';
    await page.getByLabel(`${link.from} ${type} output`, { exact: true })
      .dragTo(page.getByLabel(`${link.to} ${type} input`, { exact: true }), { timeout: 15_000 });
  }
  await expect(page.locator('.react-flow__edge')).toHaveCount(template.links.length);
  await expect(page.getByLabel('validity')).toHaveText('valid');
  await page.getByRole('button', { name: 'Auto-layout', exact: true }).click(); // now by execution order: one row per stage
  await page.getByRole('button', { name: 'fit view' }).click();
  await page.screenshot({ path: join(artifacts, 'editor-built.png') });

  // A validation error appears on the node and in the problems panel, and goes when fixed.
  await node(page, 's1-train').click();
  const lr = inspector(page).getByLabel('lr', { exact: true });
  await lr.fill('0');
  await expect(page.getByRole('alert', { name: 'problems of s1-train' })).toContainText('lr');
  await expect(page.getByRole('region', { name: 'problems' }).getByRole('button', { name: /^problem s1-train( “[^”]*”)? · lr: / })).toBeVisible();
  await expect(inspector(page).getByRole('alert', { name: 'lr error' })).toBeVisible();
  await lr.fill('0.0001');
  await expect(page.getByRole('alert', { name: 'problems of s1-train' })).toHaveCount(0);
  await expect(page.getByLabel('validity')).toHaveText('valid');

  // The Replace inspector shows its mask heatmap with a density; the layer strip shows the
  // model after that node: layers 4-6 block-sparse with a trainable selector, the rest frozen.
  await node(page, 's1-replace').click();
  const strip = page.getByRole('region', { name: 'layer strip' });
  await expect(strip.getByLabel('layer 4: block-sparse, trainable selector')).toBeVisible();
  await expect(strip.getByLabel('layer 7: dense, frozen')).toBeVisible();
  await expect(page.getByRole('img', { name: /block mask of layer 4/ })).toBeVisible();
  await expect(page.getByLabel('mask density')).toContainText('%');
  await page.screenshot({ path: join(artifacts, 'editor-replace.png') });

  // Export: the downloaded file is the template, semantically.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export JSON' }).click()]);
  const file = await download.path();
  const exported = JSON.parse(readFileSync(file, 'utf8')) as Pipeline;
  expect(semantic(exported)).toEqual(semantic(template));
  expect(Object.keys(exported.layout!.nodes).sort()).toEqual(template.nodes.map((n) => n.id).sort());

  // Re-import it over an emptied canvas.
  await page.keyboard.press('Control+a');
  await page.keyboard.press('Delete');
  await expect(canvasNodes(page)).toHaveCount(0);
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.getByRole('button', { name: 'Import JSON' }).click()]);
  await chooser.setFiles(file);
  await expect(page.getByRole('status')).toContainText('Imported');
  await expect(canvasNodes(page)).toHaveCount(template.nodes.length);
  await expect(page.locator('.react-flow__edge')).toHaveCount(template.links.length);
  await expect(page.getByLabel('validity')).toHaveText('valid');
});

test('undo/redo, copy/paste, delete and autosave restore after a reload', async ({ page, studio }) => {
  await page.goto(studio.url);
  await page.evaluate(() => localStorage.clear());
  await page.reload();
  await openTemplate(page, template.info.name);
  const count = template.nodes.length;
  await expect(canvasNodes(page)).toHaveCount(count);

  await node(page, 's1-replace').click();
  await page.keyboard.press('Control+c');
  await page.keyboard.press('Control+v');
  await expect(canvasNodes(page)).toHaveCount(count + 1);
  await expect(node(page, 'replace-1')).toBeVisible();
  await page.keyboard.press('Control+z');
  await expect(canvasNodes(page)).toHaveCount(count);
  await page.keyboard.press('Control+Shift+z');
  await expect(canvasNodes(page)).toHaveCount(count + 1);
  // Ctrl+L lays the graph out: the pasted node moves from its paste spot.
  const before = await node(page, 'replace-1').boundingBox();
  await page.keyboard.press('Control+l');
  await expect.poll(async () => JSON.stringify(await node(page, 'replace-1').boundingBox())).not.toBe(JSON.stringify(before));
  await expect(canvasNodes(page)).toHaveCount(count + 1);
  await node(page, 'replace-1').click();
  await page.keyboard.press('Delete');
  await expect(canvasNodes(page)).toHaveCount(count);
  await expect(node(page, 'replace-1')).toHaveCount(0);

  // An edit, then a reload: the autosaved draft comes back. (Templates open on stage 1: fit the
  // view so stage 2's node is on screen, not under the minimap or outside the pane.)
  await page.getByRole('button', { name: 'fit view' }).click();
  await node(page, 's2-train').click();
  await inspector(page).getByLabel('steps', { exact: true }).fill('42');
  await expect(node(page, 's2-train')).toContainText('42 steps');
  await page.waitForTimeout(600); // autosave settles after 300 ms
  await page.reload();
  await expect(page.getByRole('status')).toContainText('Restored the autosaved draft');
  await expect(canvasNodes(page)).toHaveCount(count);
  await expect(node(page, 's2-train')).toContainText('42 steps');
  // The undo button is a command rendered by name from the registry, disabled after a restore.
  await expect(page.getByRole('button', { name: 'Undo', exact: true })).toBeDisabled();
  await page.screenshot({ path: join(artifacts, 'editor.png') });
});

test('the canvas refuses a data link into a node without a data input; double-click adds a node by search', async ({ page, studio }) => {
  await page.goto(studio.url);
  await openTemplate(page, template.info.name);
  await page.getByLabel('data data output', { exact: true }).dragTo(page.getByLabel('s1-freeze model input', { exact: true }));
  await expect(page.locator('.react-flow__edge')).toHaveCount(template.links.length);

  const pane = page.locator('.react-flow__pane');
  const box = (await pane.boundingBox())!;
  await pane.dblclick({ position: { x: box.width - 300, y: 30 } });
  const search = page.getByRole('dialog', { name: 'add node' });
  await search.getByLabel('search node kinds').fill('gat');
  await expect(search.getByRole('option')).toHaveCount(1);
  await search.getByLabel('search node kinds').press('Enter');
  await expect(canvasNodes(page)).toHaveCount(template.nodes.length + 1);
  await expect(node(page, 'gate-1')).toBeVisible();
  // A fresh gate is not linked yet: validation says so on the node.
  await expect(page.getByRole('alert', { name: 'problems of gate-1' })).toBeVisible();
});
