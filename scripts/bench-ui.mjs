#!/usr/bin/env node
// npm run bench:ui — time to redraw the run monitor holding 100k points per step series
// (9 drawn series: the loss chart's five parts, lr, grad_norm, density, tokens/s), against the
// reference charts (the drawing path before the pixel-column reduction) measured in turns in
// the same page, and whether a live stream at 20 steps/s reaches the charts without a loss.
// Builds renderer/bench.html, serves it from a local static server, opens it in Debian's
// Chromium (playwright-core), and prints the page's measurements (ms) as one JSON line on
// stdout (a readable summary goes to stderr).
// Usage: node scripts/bench-ui.mjs [--steps N] [--redraws N] [--stream SECONDS] [--screenshot FILE]
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const flag = (name, fallback) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : fallback; };
const steps = Number(flag('--steps', '100000'));
const redraws = Number(flag('--redraws', '15'));
const stream = Number(flag('--stream', '10'));
const screenshot = flag('--screenshot', join(root, 'e2e/artifacts/bench-ui.png'));
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (!Number.isInteger(steps) || steps < 1000) { console.error('bench-ui: --steps must be an integer >= 1000'); process.exit(2); }
if (!Number.isInteger(redraws) || redraws < 1) { console.error('bench-ui: --redraws must be an integer >= 1'); process.exit(2); }
if (!Number.isInteger(stream) || stream < 1) { console.error('bench-ui: --stream must be a whole number of seconds >= 1'); process.exit(2); }
if (!existsSync(chromiumPath)) { console.error(`bench-ui: no Chromium at ${chromiumPath} (apt-get install -y chromium, or set CHROMIUM_PATH)`); process.exit(2); }

execFileSync(process.execPath, [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--config', join(root, 'scripts/bench-ui.vite.config.ts')], { cwd: root, stdio: 'inherit' });
const dist = join(root, 'dist/bench-ui');
const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.map': 'application/json' };
const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
  try {
    const body = await readFile(join(dist, path === '/' ? 'bench.html' : path));
    res.writeHead(200, { 'content-type': types[extname(path)] ?? 'application/octet-stream' }).end(body);
  } catch { res.writeHead(404).end(); }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = server.address().port;
const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${port}/bench.html?steps=${steps}&redraws=${redraws}&stream=${stream}`);
  await page.waitForFunction(() => window.__bench, null, { timeout: 300_000 });
  const result = await page.evaluate(() => window.__bench);
  if (result.error || errors.length) { console.error(`bench-ui: page failed: ${result.error ?? errors[0]}`); process.exitCode = 1; }
  if (screenshot) await page.screenshot({ path: screenshot });
  const round = (v) => (typeof v === 'number' ? Math.round(v * 10) / 10 : v);
  const out = Object.fromEntries(Object.entries(result).filter(([k]) => k !== 'seriesNames').map(([k, v]) => [k, round(v)]));
  console.log(JSON.stringify({ bench: 'ui-monitor-redraw', ...out }));
  if (!result.error) {
    console.error(`monitor redraw with ${result.seriesDrawn} series x ${steps} points: median ${round(result.redrawMedianMs)} ms, max ${round(result.redrawMaxMs)} ms `
      + `(reference charts ${round(result.referenceRedrawMedianMs)} ms: ${round(result.speedup)}x); first render ${round(result.firstRenderMs)} ms`);
    console.error(`stream at ${result.streamStepsPerSecond} steps/s for ${round(result.streamSeconds)} s: ${result.streamEventsSent} events sent, ${result.streamEventsStored} stored; `
      + `${result.streamStepsSent} steps sent, ${result.streamStepsStored} stored, ${result.streamStepsDrawn} drawn; longest gap between frames ${round(result.streamLongestFrameGapMs)} ms`);
  }
} finally {
  await browser.close();
  server.close();
}
