// Builds dist/renderer with Vite when any renderer/core source is newer than the last build,
// so a test run always exercises the current code but does not rebuild needlessly.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

function newestMtime(path: string): number {
  let info;
  try { info = statSync(path); } catch { return 0; }
  if (!info.isDirectory()) return info.mtimeMs;
  let newest = 0;
  for (const name of readdirSync(path)) {
    if (name === 'node_modules' || name === 'dist') continue;
    newest = Math.max(newest, newestMtime(join(path, name)));
  }
  return newest;
}

export function buildRendererIfStale(root = PROJECT_ROOT): 'built' | 'fresh' {
  const built = newestMtime(join(root, 'dist/renderer/index.html'));
  const sources = Math.max(...['renderer', 'core', 'vite.config.ts'].map((p) => newestMtime(join(root, p))));
  if (built > 0 && built >= sources) return 'fresh';
  try {
    execFileSync(process.execPath, [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'error'], { cwd: root, stdio: 'pipe' });
  } catch (error) {
    const output = `${(error as { stderr?: Buffer }).stderr ?? ''}`.trim().split('\n').slice(0, 20).join('\n');
    throw new Error(`vite build of the renderer failed:\n${output}`);
  }
  return 'built';
}
