// `npm start` on a machine without the Electron runtime (like CI): one line saying so, then
// the studio served to a browser, reachable with the printed URL.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(__dirname, '..');
const electronPathFile = join(root, 'node_modules/electron/path.txt');
const electronInstalled = existsSync(electronPathFile) && existsSync(join(root, 'node_modules/electron/dist', readFileSync(electronPathFile, 'utf8').trim()));
const runsDir = mkdtempSync(join(tmpdir(), 'start-test-runs-'));
afterAll(() => rmSync(runsDir, { recursive: true, force: true }));

describe.skipIf(electronInstalled)('npm start without Electron', () => {
  it('says so in one line and serves the studio in the browser instead', async () => {
    const child = spawn(process.execPath, [join(root, 'scripts/start.mjs'), '--port', '0'], {
      cwd: root,
      // the installer honours this: no download attempt from a test
      env: { ...process.env, ELECTRON_SKIP_BINARY_DOWNLOAD: '1', SPARSE_STUDIO_RUNS: runsDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { out += c; });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no URL within 100 s:\n${out}`)), 100_000);
        child.stdout.on('data', () => {
          const m = /^Sparse Studio: (http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{32})$/m.exec(out);
          if (m) { clearTimeout(timer); resolve(m[1]); }
        });
        child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited ${code}:\n${out}`)); });
      });
      const lines = out.split('\n').filter((l) => l && !l.startsWith('sparse-studio: ') && !l.startsWith('built '));
      expect(lines).toEqual(['Electron runtime not found; serving the studio in your browser instead', `Sparse Studio: ${url}`]);
      const page = await fetch(url);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<div id="root">');
      expect((await fetch(url.replace(/\?token=.*/, ''))).status).toBe(401);
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });
});
