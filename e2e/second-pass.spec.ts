// The studio's second pass, as a person meets it: what the seed controls, a readable default
// view, refused links that say why, runs that queue, cancelled runs that say cancelled.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from '@playwright/test';
import { expect, test } from './support/studio';
import { PROJECT_ROOT } from './support/renderer-build';
import { inspector } from './support/inspector';
import { openQuickRun, startRun, waitForPoints } from './support/quick-run';

const artifacts = join(PROJECT_ROOT, 'e2e/artifacts');
const SEED_PLAN = 'Seed plan: progressive block-sparse conversion';

async function openTemplate(page: Page, name: string) {
  await page.getByRole('button', { name, exact: true }).click();
  await expect(page.getByRole('status')).toContainText('Opened template');
}

/** Links drawn under a node: each path sampled every 4 px, its ends excluded. */
async function linksUnderNodes(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const nodes = [...document.querySelectorAll('.react-flow__node')].map((n) => ({ id: n.getAttribute('data-id'), r: n.getBoundingClientRect() }));
    const hits: string[] = [];
    for (const edge of document.querySelectorAll('.react-flow__edge')) {
      const path = edge.querySelector('path.react-flow__edge-path') as SVGPathElement;
      const ctm = path.getScreenCTM()!;
      const length = path.getTotalLength();
      for (let d = 12; d < length - 12; d += 4) {
        const q = path.getPointAtLength(d);
        const p = new DOMPoint(q.x, q.y).matrixTransform(ctm);
        const hit = nodes.find((n) => p.x > n.r.left + 1 && p.x < n.r.right - 1 && p.y > n.r.top + 1 && p.y < n.r.bottom - 1);
        if (hit) { hits.push(`${edge.getAttribute('aria-label')} under ${hit.id}`); break; }
      }
    }
    return hits;
  });
}

/** The whole graph in view, as a person does before working on later stages. */
async function fitView(page: Page) {
  await page.getByRole('button', { name: 'fit view' }).click();
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
  await expect(uses).toContainText('random blocks: pipeline seed 7');

  await page.locator('[data-node-id="data"]').click();
  await expect(inspector(page).getByLabel('seed note')).toHaveText('0 follows the pipeline seed (now 7).');
  await inspector(page).getByLabel('seed', { exact: true }).fill('42');
  await expect(inspector(page).getByLabel('seed note')).toHaveText('Overrides the pipeline seed (7) for this node.');
});

test('a second run queues behind the active one, a reload finds the live run, and a cancelled run says cancelled', async ({ page, studio }) => {
  test.setTimeout(420_000);
  await page.setViewportSize({ width: 1600, height: 1000 });
  await page.goto(studio.url);
  await openQuickRun(page, 30);
  const first = await startRun(page);
  await expect(page.getByLabel('run status')).toHaveText('running', { timeout: 60_000 });

  // While it runs, the editor's Run button says a new run will queue, and the monitor shows it queued.
  await page.getByRole('tab', { name: 'Editor' }).click();
  const queue = page.getByRole('button', { name: 'queue run', exact: true });
  await expect(queue).toHaveText('▶ Queue run');
  await expect(queue).toHaveAccessibleDescription('A run is running: a new run queues');
  await expect(page.locator('#queue-note')).toHaveAttribute('title', `${first} running`);
  await page.setViewportSize({ width: 1440, height: 900 });
  await page.screenshot({ path: join(artifacts, 'second-pass-queue-button.png') });
  await page.setViewportSize({ width: 1600, height: 1000 });
  await queue.click();
  await expect.poll(() => page.url()).not.toContain(encodeURIComponent(first));
  const second = decodeURIComponent(page.url().split('#/monitor/')[1]);
  await expect(page.getByLabel('run status')).toHaveText('queued');
  await expect(page.getByRole('note', { name: 'queued' })).toContainText(`after ${first}`);
  await expect(page.getByRole('status')).toContainText(`Queued run ${second}`);
  await page.screenshot({ path: join(artifacts, 'second-pass-queued.png') });

  // A fresh page (no run in its address) monitors the live run, not "No run".
  await page.goto(studio.url);
  await page.getByRole('tab', { name: 'Monitor' }).click();
  await expect(page.getByRole('heading', { name: /No run/ })).toHaveCount(0);
  await expect(page.locator('.run-title code')).toHaveText(first);
  await page.reload();
  await page.getByRole('tab', { name: 'Monitor' }).click();
  await expect(page.locator('.run-title code')).toHaveText(first);

  // Cancel the queued one from its monitor, then the running one once it has drawn a point.
  await page.goto(`${studio.url}#/monitor/${encodeURIComponent(second)}`);
  await expect(page.getByLabel('run status')).toHaveText('queued');
  await page.getByRole('button', { name: 'cancel', exact: true }).click();
  await expect(page.getByLabel('run status')).toHaveText('cancelled');
  await page.goto(`${studio.url}#/monitor/${encodeURIComponent(first)}`);
  await waitForPoints(page, 'loss');
  await page.getByRole('button', { name: 'cancel', exact: true }).click();
  await expect(page.getByLabel('run status')).toHaveText('cancelled', { timeout: 60_000 });
  await expect(page.getByRole('status')).toContainText(`Run ${first} cancelled: cancelled after step`);
  const timeline = page.getByRole('region', { name: 'stage timeline' });
  await expect(timeline.getByLabel(/^stage 1 .*: cancelled$/)).toBeVisible();
  await expect(timeline.getByText('failed')).toHaveCount(0);
  const log = page.getByRole('region', { name: 'log' });
  await expect(log).toContainText('cancel requested');
  await expect(log).toContainText('s1-train: cancelled after step');
  // The header's step and the message name the same step.
  const message = await page.getByLabel('status message').textContent();
  const step = /after step (\d+)/.exec(message ?? '')![1];
  await expect(page.getByLabel('last step')).toHaveText(`step ${step}`);
  await page.screenshot({ path: join(artifacts, 'second-pass-cancelled.png') });
  const record = JSON.parse(readFileSync(join(studio.runsDir, first, 'run.json'), 'utf8'));
  expect(record.status).toBe('cancelled');
  expect(record.stages.map((s: { status: string }) => s.status)).toEqual(['cancelled']);
});

test('a refused link says why at the cursor', async ({ page, studio }) => {
  await page.setViewportSize({ width: 1920, height: 1100 }); // the template opens with its whole first stage in view
  await page.goto(studio.url);
  await openTemplate(page, SEED_PLAN);
  const hint = page.getByRole('alert', { name: 'link refused' });
  // Wrong port kind: a model state dropped on a data input.
  await page.getByLabel('s1-unfreeze model output', { exact: true }).dragTo(page.getByLabel('s1-train data input', { exact: true }));
  await expect(hint).toHaveText('wrong port kind: s1-unfreeze sends a model state, this input of s1-train takes data');
  await expect(page.getByRole('status')).toHaveText('Link refused: wrong port kind: s1-unfreeze sends a model state, this input of s1-train takes data');
  await page.screenshot({ path: join(artifacts, 'second-pass-link-refused.png') });
  // An occupied input.
  await page.getByLabel('s1-freeze model output', { exact: true }).dragTo(page.getByLabel('s1-distill model input', { exact: true }));
  await expect(hint).toHaveText('s1-distill already has a model-state input (delete that link first)');
  // Nothing was linked.
  await expect(page.locator('.react-flow__edge')).toHaveCount(22);
});

test('preflight errors show in the badge, and problems name their node by id and label', async ({ page, studio }) => {
  await page.goto(studio.url);
  await openTemplate(page, SEED_PLAN);
  await expect(page.getByLabel('validity')).toHaveText('valid');
  await page.locator('[data-node-id="data"]').click();
  await inspector(page).getByLabel('source', { exact: true }).fill('no/such/corpus.txt');
  await expect(page.getByLabel('validity')).toHaveText('valid');
  await page.getByRole('button', { name: 'preflight', exact: true }).click();
  await expect(page.getByLabel('validity')).toHaveText(/^\d+ preflight errors?$/);
  const problems = page.getByRole('region', { name: 'problems' });
  await expect(problems.getByRole('button', { name: /^problem data “Brown Corpus” · source: / })).toBeVisible();
  await expect(problems).not.toContainText('nodes[');
  // An edit makes the preflight outdated; a validation error takes over the badge.
  await fitView(page);
  await page.locator('[data-node-id="s1-train"]').click();
  await inspector(page).getByLabel('lr', { exact: true }).fill('0');
  await expect(page.getByLabel('validity')).toHaveText('1 problem');
  await expect(problems.getByRole('button', { name: /^problem s1-train “Stage 1: foundation” · lr: / })).toBeVisible();
  await page.screenshot({ path: join(artifacts, 'second-pass-problems.png') });
});

test('a template opens readable, stage by stage, with data links clear of nodes and selectable edges', async ({ page, studio }) => {
  await page.goto(studio.url);
  await openTemplate(page, SEED_PLAN);
  // Titles at least 11 px on screen.
  const title = page.locator('[data-node-id="s1-freeze"] .pnode-label');
  await expect(title).toBeVisible();
  const screenPx = await title.evaluate((el) => {
    const zoom = new DOMMatrix(getComputedStyle(el.closest('.react-flow__viewport')!).transform).a;
    return parseFloat(getComputedStyle(el).fontSize) * zoom;
  });
  expect(screenPx).toBeGreaterThanOrEqual(11);
  await page.screenshot({ path: join(artifacts, 'second-pass-opened.png') });

  // One frame per stage, named, around its nodes, stages left to right.
  const frames = page.getByRole('group', { name: /^stage \d / });
  await expect(frames).toHaveCount(3);
  await expect(page.getByRole('group', { name: 'stage 1 Stage 1: foundation' })).toContainText('Stage 1: foundation');
  await page.getByRole('button', { name: 'fit view' }).click();
  const boxes = await page.evaluate(() => {
    const rect = (el: Element) => { const r = el.getBoundingClientRect(); return { x: r.x, y: r.y, r: r.right, b: r.bottom }; };
    return {
      frames: [...document.querySelectorAll('.stage-frame')].map(rect),
      nodes: Object.fromEntries([...document.querySelectorAll('.react-flow__node')].map((n) => [n.getAttribute('data-id'), rect(n)])),
    };
  });
  const inside = (n: { x: number; y: number; r: number; b: number }, f: { x: number; y: number; r: number; b: number }) => n.x >= f.x && n.r <= f.r && n.y >= f.y && n.b <= f.b;
  for (const [i, ids] of [['s1-freeze', 's1-replace', 's1-unfreeze', 's1-distill', 's1-train', 's1-gate'], ['s2-replace-a', 's2-replace-b', 's2-unfreeze', 's2-train', 's2-gate'], ['s3-replace', 's3-unfreeze', 's3-train', 's3-gate']].entries()) {
    for (const id of ids) expect(inside(boxes.nodes[id], boxes.frames[i]), `${id} in frame ${i + 1}`).toBe(true);
  }
  expect(boxes.frames[0].r).toBeLessThan(boxes.frames[1].x);
  expect(boxes.frames[1].r).toBeLessThan(boxes.frames[2].x);

  // No link, data or model, runs under a node (sampled along each path, ends excluded).
  const under = await linksUnderNodes(page);
  expect(under).toEqual([]);

  // An edge can be clicked, is selected, and Delete removes it.
  const edges = page.locator('.react-flow__edge');
  const before = await edges.count();
  const point = await page.locator('.react-flow__edge[aria-label="link data to s2-train"] path.react-flow__edge-path').evaluate((path: SVGPathElement) => {
    const p = path.getPointAtLength(path.getTotalLength() - 30); // on its own riser, not the shared lane
    const s = new DOMPoint(p.x, p.y).matrixTransform(path.getScreenCTM()!);
    return { x: s.x, y: s.y };
  });
  await page.mouse.click(point.x, point.y);
  await expect(page.locator('.react-flow__edge[aria-label="link data to s2-train"]')).toHaveClass(/selected/);
  await page.getByRole('button', { name: 'Delete', exact: true }).click();
  await expect(edges).toHaveCount(before - 1);
});

test('the template gallery: Escape closes it, and it asks before replacing an edited draft', async ({ page, studio }) => {
  await page.goto(studio.url);
  await openTemplate(page, SEED_PLAN);
  const gallery = page.getByRole('region', { name: 'templates' });
  await page.getByRole('button', { name: 'Templates', exact: true }).click();
  await expect(gallery).toBeVisible();
  await page.keyboard.press('Escape');
  await expect(gallery).toHaveCount(0);

  // An unedited template is replaced without a question.
  await page.getByRole('button', { name: 'Templates', exact: true }).click();
  await openTemplate(page, 'Quick demo: three stages in minutes');
  // After an edit, opening a template asks; keeping the draft keeps it.
  await fitView(page);
  await page.locator('[data-node-id="s1-train"]').click();
  await inspector(page).getByLabel('steps', { exact: true }).fill('77');
  await page.getByRole('button', { name: 'Templates', exact: true }).click();
  await page.getByRole('button', { name: SEED_PLAN, exact: true }).click();
  const ask = page.getByRole('alertdialog', { name: 'replace the current pipeline' });
  await expect(ask).toContainText('Open “Seed plan: progressive block-sparse conversion” in place of “Quick demo: three stages in minutes”?');
  await expect(ask.getByRole('button', { name: 'Keep editing' })).toBeFocused();
  await page.screenshot({ path: join(artifacts, 'second-pass-ask.png') });
  await page.keyboard.press('Escape');
  await expect(ask).toHaveCount(0);
  await page.keyboard.press('Escape');
  await fitView(page);
  await page.locator('[data-node-id="s1-train"]').click();
  await expect(inspector(page).getByLabel('steps', { exact: true })).toHaveValue('77');
  // Asked again and confirmed, the template opens.
  await page.getByRole('button', { name: 'Templates', exact: true }).click();
  await page.getByRole('button', { name: SEED_PLAN, exact: true }).click();
  await ask.getByRole('button', { name: 'Open template' }).click();
  await expect(page.getByRole('status')).toHaveText(`Opened template “${SEED_PLAN}”`);
});

test('keyboard focus is visible on buttons and canvas nodes', async ({ page, studio }) => {
  await page.goto(studio.url);
  await openTemplate(page, SEED_PLAN);
  await page.keyboard.press('Tab');
  const run = page.getByRole('button', { name: 'run', exact: true });
  await run.focus();
  await expect(run).toBeFocused();
  expect(await run.evaluate((el) => getComputedStyle(el).outlineStyle)).toBe('solid');
  const node = page.locator('.react-flow__node[data-id="s1-freeze"]');
  await node.focus();
  expect(await node.locator('.pnode').evaluate((el) => getComputedStyle(el).boxShadow)).toContain('rgb(255, 209, 102)');
  await page.screenshot({ path: join(artifacts, 'second-pass-focus.png') });
});

test('nodes keep their size with errors and estimates, and the layer strip scrolls to layer 32', async ({ page, studio }) => {
  await page.goto(studio.url);
  await openTemplate(page, SEED_PLAN);
  await page.getByRole('button', { name: 'preflight', exact: true }).click();
  await fitView(page);
  await expect(page.getByLabel('preflight note s1-train')).toContainText('peak');
  await page.locator('[data-node-id="s1-train"]').click();
  await expect(inspector(page).getByRole('region', { name: 'preflight of this node' })).toContainText('Estimated peak memory');
  await inspector(page).getByLabel('lr', { exact: true }).fill('0');
  await expect(page.getByRole('alert', { name: 'problems of s1-train' })).toContainText('lr');
  await page.getByRole('button', { name: 'fit view' }).click();
  const rects = await page.locator('.react-flow__node').evaluateAll((els) => els.map((e) => { const r = e.getBoundingClientRect(); return { id: e.getAttribute('data-id'), x: r.x, y: r.y, r: r.right, b: r.bottom, h: r.height }; }));
  const heights = new Set(rects.map((r) => r.h.toFixed(1)));
  expect(heights.size, 'every node one height').toBe(1);
  for (const a of rects) for (const b of rects) {
    if (a.id! >= b.id!) continue;
    const overlap = a.x < b.r && b.x < a.r && a.y < b.b && b.y < a.b;
    expect(overlap, `${a.id} overlaps ${b.id}`).toBe(false);
  }
  await page.screenshot({ path: join(artifacts, 'second-pass-node-status.png') });

  await page.locator('[data-node-id="model"]').click();
  await inspector(page).getByLabel('num_layers', { exact: true }).fill('32');
  const strip = page.getByRole('region', { name: 'layer strip' });
  await expect(strip.getByRole('listitem')).toHaveCount(32);
  const last = strip.getByRole('listitem').last();
  await last.scrollIntoViewIfNeeded();
  const [cell, box] = [await last.boundingBox(), await strip.boundingBox()];
  expect(cell!.x + cell!.width).toBeLessThanOrEqual(box!.x + box!.width + 1);
  await expect(last).toHaveAttribute('aria-label', /^layer 32:/);
});

test('after a run, each stage frame shows its gate verdict', async ({ page, studio }) => {
  test.setTimeout(420_000);
  await page.setViewportSize({ width: 1600, height: 1000 });
  await page.goto(studio.url);
  await openQuickRun(page, 2);
  await startRun(page);
  await expect(page.getByLabel('run status')).toHaveText(/completed|failed/, { timeout: 400_000 });
  await page.getByRole('button', { name: 'open pipeline in editor' }).click();
  await page.getByRole('button', { name: 'fit view' }).click();
  for (const n of [1, 2, 3]) {
    await expect(page.getByRole('group', { name: new RegExp(`^stage ${n} `) }).getByLabel(/^gate verdict /)).toHaveText(/^(✓ gate passed|✗ gate failed → \w+)$/);
  }
  await page.screenshot({ path: join(artifacts, 'second-pass-verdicts.png') });
});

test('a problem clicked in the panel brings its node into view', async ({ page, studio }) => {
  await page.goto(studio.url);
  await openTemplate(page, SEED_PLAN);
  const far = page.locator('[data-node-id="s3-replace"]');
  await expect(far).not.toBeInViewport();
  // A model of 8 layers leaves layers 11-12 of s3-replace outside it.
  await page.locator('[data-node-id="model"]').click();
  await inspector(page).getByLabel('num_layers', { exact: true }).fill('8');
  await page.getByRole('region', { name: 'problems' }).getByRole('button', { name: /^problem s3-replace “[^”]*” · layers/ }).first().click();
  await expect(far).toBeInViewport();
  await expect(inspector(page).getByLabel('id', { exact: true })).toHaveValue('s3-replace');
});

test('the exported JSON ends with a newline and equals the pipeline.json of its run', async ({ page, studio }) => {
  test.setTimeout(300_000);
  await page.goto(studio.url);
  await openQuickRun(page, 2);
  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Export JSON', exact: true }).click();
  const exported = readFileSync(await (await download).path(), 'utf8');
  expect(exported.endsWith('}\n')).toBe(true);
  const id = await startRun(page);
  await expect(page.getByLabel('run status')).toHaveText(/running|completed/);
  expect(readFileSync(join(studio.runsDir, id, 'pipeline.json'), 'utf8')).toBe(exported);
  await page.getByRole('button', { name: 'cancel', exact: true }).click();
  await expect(page.getByLabel('run status')).toHaveText(/cancelled|completed/, { timeout: 120_000 });
});

test('every template opens readable with no link under a node', async ({ page, studio }) => {
  await page.goto(studio.url);
  const cards = page.getByRole('region', { name: 'templates' }).locator('.card-title');
  await expect(cards.first()).toBeVisible();
  const names = await cards.allTextContents();
  expect(names.length).toBeGreaterThanOrEqual(4);
  for (const name of names) {
    if (await page.getByRole('region', { name: 'templates' }).count() === 0) await page.getByRole('button', { name: 'Templates', exact: true }).click();
    await page.getByRole('button', { name, exact: true }).click();
    await expect(page.getByRole('status')).toHaveText(`Opened template “${name}”`);
    const label = page.locator('.react-flow__node .pnode-label').first();
    const px = await label.evaluate((el) => parseFloat(getComputedStyle(el).fontSize) * new DOMMatrix(getComputedStyle(el.closest('.react-flow__viewport')!).transform).a);
    expect(px, name).toBeGreaterThanOrEqual(11);
    await fitView(page);
    expect(await linksUnderNodes(page), name).toEqual([]);
  }
});
