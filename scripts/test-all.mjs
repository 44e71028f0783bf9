#!/usr/bin/env node
// `npm test`: runs every suite — unit (vitest), native (C++ under ASan/UBSan) and e2e
// (Playwright in Chromium against `serve`) — and ends with one line `N passed, N failed`
// summing them all. The line is also written to .cache/test-summary.txt for .ci/run.
// Skipped tests (e.g. GPU tests on a machine without a GPU) are listed, never counted as passed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const cacheDir = join(root, '.cache');
mkdirSync(cacheDir, { recursive: true });
const only = new Set(process.argv.slice(2)); // e.g. `npm test -- unit native`
const want = (suite) => only.size === 0 || only.has(suite);

function run(cmd, args, env = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  return r.status ?? 1;
}

const readJson = (file) => { try { return JSON.parse(readFileSync(file, 'utf8')); } catch { return null; } };
const results = [];

if (want('unit')) {
  const out = join(cacheDir, 'vitest.json');
  rmSync(out, { force: true });
  const status = run('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`]);
  const j = readJson(out);
  const passed = j ? j.numPassedTests : 0;
  // A file that fails to load has no failed test of its own: count it once as a failure.
  const brokenFiles = j ? (j.testResults ?? []).filter((f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed')).length : 0;
  const failed = j ? j.numFailedTests + brokenFiles : 1;
  const skipped = j ? (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0) : 0;
  results.push({ suite: 'unit', passed, failed: j ? Math.max(failed, status !== 0 && failed === 0 ? 1 : 0) : 1, skipped });
}

if (want('native')) {
  const counts = join(root, 'native/test/build/counts.json');
  rmSync(counts, { force: true });
  run('node', ['scripts/native-tests.mjs']);
  const j = readJson(counts) ?? { passed: 0, failed: 1 };
  results.push({ suite: 'native', passed: j.passed, failed: j.failed, skipped: j.skipped ?? 0 });
}

if (want('cuda') && existsSync(join(root, 'scripts/cuda-tests.mjs'))) {
  const counts = join(cacheDir, 'cuda-counts.json');
  rmSync(counts, { force: true });
  run('node', ['scripts/cuda-tests.mjs', counts]);
  const j = readJson(counts) ?? { passed: 0, failed: 1, skipped: 0 };
  results.push({ suite: 'cuda', passed: j.passed, failed: j.failed, skipped: j.skipped ?? 0 });
}

if (want('e2e') && existsSync(join(root, 'playwright.config.ts'))) {
  const out = join(root, 'e2e/artifacts/results.json');
  rmSync(out, { force: true });
  const status = run('npx', ['playwright', 'test'], { PLAYWRIGHT_JSON_OUTPUT_NAME: out });
  const j = readJson(out);
  const s = j?.stats;
  const passed = s ? s.expected + (s.flaky ?? 0) : 0;
  const failed = s ? s.unexpected : 1;
  results.push({ suite: 'e2e', passed, failed: s ? Math.max(failed, status !== 0 && failed === 0 ? 1 : 0) : 1, skipped: s?.skipped ?? 0 });
}

for (const r of results) console.log(`${r.suite}: ${r.passed} passed, ${r.failed} failed${r.skipped ? `, ${r.skipped} skipped` : ''}`);
const passed = results.reduce((a, r) => a + r.passed, 0);
const failed = results.reduce((a, r) => a + r.failed, 0);
const line = `${passed} passed, ${failed} failed`;
writeFileSync(join(cacheDir, 'test-summary.txt'), line + '\n');
console.log(line);
process.exit(failed === 0 ? 0 : 1);
