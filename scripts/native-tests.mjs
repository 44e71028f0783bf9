#!/usr/bin/env node
// Builds and runs the native C++ test binary: every native/src/*.cpp (the engine without its
// N-API binding, which lives in native/src/napi/) plus every native/test/test_*.cpp, compiled
// with AddressSanitizer and UndefinedBehaviorSanitizer. Prints each test line and finally
// `native: N passed, N failed`. Writes the counts to native/test/build/counts.json.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const srcDir = join(root, 'native/src');
const testDir = join(root, 'native/test');
const buildDir = join(testDir, 'build');
mkdirSync(buildDir, { recursive: true });

const cpp = (dir) => (existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cpp')).map((f) => join(dir, f)) : []);
const sources = cpp(srcDir);
const tests = cpp(testDir).filter((f) => /\/test_[^/]+\.cpp$/.test(f));
const filter = process.argv[2];

if (tests.length === 0) {
  console.log('native: 0 passed, 0 failed');
  writeFileSync(join(buildDir, 'counts.json'), JSON.stringify({ passed: 0, failed: 0 }));
  process.exit(0);
}

const exe = join(buildDir, 'native_tests');
const mainFile = join(buildDir, 'main.cpp');
writeFileSync(mainFile, '#define CHECK_MAIN\n#include "../check.h"\n');
const flags = ['-std=c++17', '-O1', '-g', '-fno-omit-frame-pointer', '-fsanitize=address,undefined',
  '-fno-sanitize-recover=undefined', '-pthread', '-I', srcDir, '-I', testDir, '-Wall', '-Wextra', '-Wno-unused-parameter'];
const libs = ['-ldl'];
try {
  // Compile each translation unit separately so both cores can be used and errors are local.
  const objs = [];
  const units = [...sources, ...tests, mainFile];
  const jobs = units.map((src) => {
    const obj = join(buildDir, src.replace(root, '').replace(/[\/.]/g, '_') + '.o');
    objs.push(obj);
    return { src, obj };
  });
  const { cpus } = await import('node:os');
  const parallel = Math.max(1, cpus().length);
  const { spawn } = await import('node:child_process');
  let failedCompile = false;
  for (let i = 0; i < jobs.length; i += parallel) {
    await Promise.all(jobs.slice(i, i + parallel).map(({ src, obj }) => new Promise((resolve) => {
      const p = spawn('g++', [...flags, '-c', src, '-o', obj], { stdio: 'inherit' });
      p.on('close', (code) => { if (code !== 0) failedCompile = true; resolve(); });
    })));
  }
  if (failedCompile) throw new Error('compile failed');
  execFileSync('g++', [...flags, ...objs, '-o', exe, ...libs], { stdio: 'inherit' });
} catch (e) {
  console.log('FAIL native_build: the native test binary did not compile');
  console.log('native: 0 passed, 1 failed');
  writeFileSync(join(buildDir, 'counts.json'), JSON.stringify({ passed: 0, failed: 1 }));
  process.exit(1);
}
const run = spawnSync(exe, filter ? [filter] : [], { encoding: 'utf8', env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' }, maxBuffer: 1 << 26 });
process.stdout.write(run.stdout);
process.stderr.write(run.stderr);
const m = /native: (\d+) passed, (\d+) failed/.exec(run.stdout);
let passed = m ? +m[1] : 0;
let failed = m ? +m[2] : 0;
if (run.status !== 0 && failed === 0) { failed = 1; console.log(`FAIL native_run: exited with ${run.status ?? run.signal} (sanitizer report above)`); }
writeFileSync(join(buildDir, 'counts.json'), JSON.stringify({ passed, failed }));
if (!m || run.status !== 0) console.log(`native: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
