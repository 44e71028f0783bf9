// The e2e fixture: a real `sparse-studio serve --port 0` per worker, with a fresh runs folder.
// Tests get the page URL with its token, and import `test`/`expect` from here:
//   import { expect, test } from './support/studio';
//   test('...', async ({ page, studio }) => { await page.goto(studio.url); ... });
import { test as base, expect } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from './renderer-build';

export interface Studio {
  /** Page URL including ?token=. */
  url: string;
  /** http://127.0.0.1:PORT (no token). */
  origin: string;
  token: string;
  /** The runs folder this server writes to (empty at start). */
  runsDir: string;
  /** Everything serve wrote to stderr so far (for failure messages). */
  stderr(): string;
}

const URL_LINE = /^Sparse Studio: (http:\/\/[^\s/]+)\/\?token=([0-9a-f]{32})$/m;

export async function startServe(runsDir: string, timeoutMs = 60_000): Promise<{ studio: Studio; stop(): Promise<void> }> {
  const child: ChildProcess = spawn(process.execPath, [join(PROJECT_ROOT, 'bin/sparse-studio.mjs'), 'serve', '--port', '0'], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, SPARSE_STUDIO_RUNS: runsDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  const studio = await new Promise<Studio>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve printed no URL within ${timeoutMs} ms; stderr: ${stderr.trim()}`)), timeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const m = URL_LINE.exec(stdout);
      if (!m) return;
      clearTimeout(timer);
      resolve({ url: `${m[1]}/?token=${m[2]}`, origin: m[1], token: m[2], runsDir, stderr: () => stderr });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with code ${code} before printing its URL; stderr: ${stderr.trim()}`));
    });
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  return { studio, stop };
}

export const test = base.extend<{ studio: Studio }, { serveWorker: Studio }>({
  serveWorker: [async ({}, use) => {
    const runsDir = mkdtempSync(join(tmpdir(), 'sparse-studio-e2e-runs-'));
    const { studio, stop } = await startServe(runsDir);
    try {
      await use(studio);
    } finally {
      await stop();
      rmSync(runsDir, { recursive: true, force: true });
    }
  }, { scope: 'worker', timeout: 90_000 }],
  studio: async ({ serveWorker }, use) => { await use(serveWorker); },
});

export { expect };
