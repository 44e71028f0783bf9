#!/usr/bin/env node
// `npm run bench`: every benchmark in one run, so the ratios it prints compare numbers
// measured on the same machine at the same time: GEMM (ours vs shapes of a real step),
// block-sparse attention (time vs density, as a ratio to the dense kernel), a training step,
// and the UI redraw benchmark when the renderer build exists. Nothing here asserts a time.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const cli = join(root, 'bin/sparse-studio.mjs');
const benches = process.argv.slice(2).length ? process.argv.slice(2) : ['gemm', 'attention', 'train'];
let failed = 0;
for (const name of benches) {
  if (name === 'ui') continue;
  console.log(`\n# bench ${name}`);
  const r = spawnSync(process.execPath, [cli, 'bench', name], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
if (benches.includes('ui') || process.argv.length <= 2) {
  const ui = join(root, 'scripts/bench-ui.mjs');
  if (existsSync(ui)) {
    console.log('\n# bench ui');
    const r = spawnSync(process.execPath, [ui], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) failed++;
  }
}
process.exit(failed ? 1 : 0);
