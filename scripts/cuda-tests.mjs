#!/usr/bin/env node
// The CUDA suite of `npm test`. Where nvcc exists, the CUDA code must compile with warnings as
// errors (a failure counts as a failed test); the GPU tests then run where a device exists and
// are reported as skipped, with the reason, where none does. Writes {passed, failed, skipped}
// to the file named by argv[2].
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const countsFile = process.argv[2] ?? join(root, '.cache/cuda-counts.json');
const write = (c) => writeFileSync(countsFile, JSON.stringify(c));

if (spawnSync('nvcc', ['--version']).status !== 0) {
  console.log('cuda: nvcc not found; CUDA code not compiled and GPU tests not run');
  write({ passed: 0, failed: 0, skipped: 0 });
  process.exit(0);
}
const tests = join(root, 'native/build/cuda/cuda_tests');
const build = spawnSync(process.execPath, [join(root, 'scripts/build-cuda.mjs')], { stdio: 'inherit' });
if (build.status !== 0 || !existsSync(tests)) {
  console.log('FAIL cuda_build: the CUDA sources did not compile and link (see above)');
  write({ passed: 0, failed: 1, skipped: 0 });
  process.exit(1);
}
const run = spawnSync(tests, [countsFile], { stdio: 'inherit' });
if (!existsSync(countsFile)) write({ passed: 0, failed: 1, skipped: 0 });
const counts = JSON.parse(readFileSync(countsFile, 'utf8'));
process.exit(run.status === 0 && counts.failed === 0 ? 0 : 1);
