#!/usr/bin/env node
// Builds the CUDA backend when nvcc is found: every native/cuda/*.cu compiled for sm_80 and
// sm_90 (+ compute_90 PTX) with warnings as errors, linked with the static CUDA runtime into
// the test and bench binaries native/build/cuda/cuda_tests, cuda_bench (which also link the CPU
// engine, their reference) and into native/build/Release/sparse_cuda.node (loaded separately
// from the engine addon, so CPU-only machines are unaffected). The module must export the
// backend factory and its interface version and need no engine symbol (the engine dlopens it
// with RTLD_LOCAL): both are checked after linking. The C++ files of native/cuda compile with warnings as errors too.
// The binaries need nothing of Node: where node-addon-api cannot be resolved (a copy of the
// repository without node_modules, as sent to a GPU machine) or Node's headers are missing, the
// module alone is skipped, with the reason, and the binaries are still built.
// Without nvcc it says so in one line and exits 0. `--check` only compiles (CI's -Werror gate).
// `--plan` prints the build plan as JSON ({module, skipped, outputs, steps}) and runs nothing
// (it needs no nvcc). An object is rebuilt only when older than its source, a header of
// native/cuda or native/src, or this script. Compiles run one per core (SPARSE_CUDA_JOBS caps it).
// scripts/gpu/device-check.sh builds cuda_tests and cuda_bench with the same flags where Node is
// missing (build_without_node): keep the two in step.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cpus } from 'node:os';
import { createRequire } from 'node:module';

const root = new URL('..', import.meta.url).pathname;
const cudaDir = join(root, 'native/cuda');
const srcDir = join(root, 'native/src');
const outDir = join(root, 'native/build/cuda');
const checkOnly = process.argv.includes('--check');
const planOnly = process.argv.includes('--plan');

const nvccFound = spawnSync('nvcc', ['--version'], { encoding: 'utf8' }).status === 0;
if (!nvccFound && !planOnly) {
  console.log('cuda: nvcc not found; the CUDA backend is not built (CPU backend only)');
  process.exit(0);
}

// node-addon-api and Node's headers, needed by the module only; resolved here, never at load.
function addonIncludes() {
  let addon;
  try {
    addon = createRequire(import.meta.url)('node-addon-api').include_dir.replace(/"/g, '');
  } catch {
    return { reason: 'node-addon-api cannot be resolved (no node_modules; run npm install)' };
  }
  const node = join(dirname(dirname(process.execPath)), 'include/node');
  if (!existsSync(join(node, 'node_api.h'))) return { reason: `Node's headers are not at ${node}` };
  return { node, addon };
}

const mtime = (f) => (existsSync(f) ? statSync(f).mtimeMs : 0);
const files = (dir, re) => readdirSync(dir).filter((f) => re.test(f)).map((f) => join(dir, f));
const newestHeader = Math.max(...[...files(cudaDir, /\.(cuh|h)$/), ...files(srcDir, /\.h$/), new URL(import.meta.url).pathname].map(mtime));
const stale = (out, src) => mtime(out) <= Math.max(mtime(src), newestHeader);

const nvccPath = nvccFound ? spawnSync('sh', ['-c', 'readlink -f "$(command -v nvcc)"'], { encoding: 'utf8' }).stdout.trim() : '';
const cudaHome = nvccPath ? dirname(dirname(nvccPath)) : '';
const cudaRoots = [process.env.CUDA_HOME, '/usr/local/cuda', cudaHome].filter(Boolean);
const cudaInclude = cudaRoots.map((r) => join(r, 'include')).find((p) => existsSync(join(p, 'cuda_runtime.h'))) ?? '';
const cudaLib = cudaRoots.flatMap((r) => [join(r, 'lib64'), join(r, 'lib')]).find((p) => existsSync(join(p, 'libcudart_static.a'))) ?? '';

const gencode = ['-gencode', 'arch=compute_80,code=sm_80', '-gencode', 'arch=compute_90,code=sm_90', '-gencode', 'arch=compute_90,code=compute_90'];
const nvccFlags = ['-std=c++17', '-O3', '-Xcompiler', '-fPIC,-Wall,-Wextra,-Werror,-Wno-unused-parameter', '-Werror', 'all-warnings', ...gencode, '-I', cudaDir, '-I', srcDir];
const cxx = ['-std=c++17', '-O2', '-fPIC', '-pthread', '-Wall', '-Wno-unused-parameter', '-I', cudaDir, '-I', srcDir, '-I', cudaInclude];
const strict = ['-Wextra', '-Werror'];  // our own C++ files (not the CPU engine's, built with -w)
const link = [`-L${cudaLib}`, '-lcudart_static', '-ldl', '-lrt', '-pthread'];

// The plan: phases of steps ({cmd, args, out, src}); the steps of a phase run in parallel.
const skipped = [];
const cuSources = files(cudaDir, /\.cu$/);
const cuObjects = cuSources.map((f) => join(outDir, f.split('/').pop().replace(/\.cu$/, '.o')));
const phases = [{ name: 'cu', steps: cuSources.map((f, i) => ({ cmd: 'nvcc', args: [...nvccFlags, '-c', f, '-o', cuObjects[i]], out: cuObjects[i], src: f })) }];
const moduleOut = join(root, 'native/build/Release/sparse_cuda.node');
const binaries = { cuda_tests: ['cuda_tests', 'cuda_backend_tests', 'cuda_model_tests', 'cuda_precision_tests'], cuda_bench: ['cuda_bench'] };
const outputs = [];
const haveRuntime = Boolean(cudaInclude && cudaLib);
if (!checkOnly && !haveRuntime) skipped.push('everything but the .cu objects: CUDA runtime headers or libcudart_static.a not found');
if (!checkOnly && haveRuntime) {
  // The test and bench binaries: CUDA ops checked against the CPU engine's ops.
  const cpuSources = files(srcDir, /\.cpp$/);
  const cpuObjects = cpuSources.map((f) => join(outDir, 'cpu_' + f.split('/').pop().replace(/\.cpp$/, '.o')));
  const ownSources = Object.values(binaries).flat();
  phases.push({
    name: 'cpp',
    steps: [
      ...cpuSources.map((f, i) => ({ cmd: 'g++', args: [...cxx, '-O3', '-w', '-c', f, '-o', cpuObjects[i]], out: cpuObjects[i], src: f })),
      ...ownSources.map((f) => ({ cmd: 'g++', args: [...cxx, ...strict, '-I', join(root, 'native/test'), '-c', join(cudaDir, `${f}.cpp`), '-o', join(outDir, `${f}.o`)], out: join(outDir, `${f}.o`), src: join(cudaDir, `${f}.cpp`) })),
    ],
  });
  const linkSteps = Object.entries(binaries).map(([name, sources]) => {
    const out = join(outDir, name);
    outputs.push(out);
    return { cmd: 'g++', args: ['-o', out, ...sources.map((f) => join(outDir, `${f}.o`)), ...cuObjects, ...cpuObjects, ...link], out, link: true };
  });
  // The Node module, where node-addon-api and Node's headers are at hand.
  const inc = addonIncludes();
  if (inc.reason) skipped.push(`the Node module native/build/Release/sparse_cuda.node: ${inc.reason}`);
  else {
    const napiObj = join(outDir, 'napi_cuda.o');
    phases[1].steps.push({ cmd: 'g++', args: [...cxx, ...strict, '-I', inc.node, '-I', inc.addon, '-DNAPI_VERSION=8', '-DNODE_ADDON_API_CPP_EXCEPTIONS', '-c', join(cudaDir, 'napi_cuda.cpp'), '-o', napiObj], out: napiObj, src: join(cudaDir, 'napi_cuda.cpp') });
    linkSteps.push({ cmd: 'g++', args: ['-shared', '-o', moduleOut, napiObj, ...cuObjects, ...link], out: moduleOut, link: true, module: true });
    outputs.push(moduleOut);
  }
  phases.push({ name: 'link', steps: linkSteps });
}

if (planOnly) {
  console.log(JSON.stringify({ nvcc: nvccFound, module: outputs.includes(moduleOut), outputs, skipped, steps: phases.flatMap((p) => p.steps.map((s) => ({ phase: p.name, cmd: s.cmd, out: s.out }))) }, null, 1));
  process.exit(0);
}
for (const s of skipped) console.log(`cuda: skipping ${s}`);
mkdirSync(outDir, { recursive: true });
mkdirSync(dirname(moduleOut), { recursive: true });

// Up to date when every output is newer than every source (npm install already built it;
// `npm test` then only runs the tests).
const newestSource = Math.max(newestHeader, ...[...files(cudaDir, /\.(cu|cpp)$/), ...files(srcDir, /\.cpp$/)].map(mtime));
if (outputs.length && outputs.every((f) => mtime(f) > newestSource)) {
  console.log(`cuda: up to date (${outputs.map((f) => f.slice(root.length)).join(', ')})`);
  process.exit(0);
}

function exec(cmd, args) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: 'inherit' });
    p.on('close', (code) => resolve(code === 0));
  });
}
const width = Math.max(1, Math.min(cpus().length, Number(process.env.SPARSE_CUDA_JOBS) || Infinity));
async function parallel(jobs) {
  let ok = true;
  for (let i = 0; i < jobs.length; i += width) ok = (await Promise.all(jobs.slice(i, i + width).map((j) => j()))).every(Boolean) && ok;
  return ok;
}

for (const phase of phases) {
  // Compiles skip fresh objects; links always run when any output is stale (checked above).
  const todo = phase.steps.filter((s) => s.link || stale(s.out, s.src));
  const ok = await parallel(todo.map((s) => () => exec(s.cmd, s.args)));
  if (!ok) {
    console.error(phase.name === 'cu' ? 'cuda: compiling the .cu files failed (warnings are errors)' : `cuda: the ${phase.name} phase failed (see above)`);
    process.exit(1);
  }
  if (phase.name === 'cu') console.log(`cuda: compiled ${todo.length} of ${cuSources.length} .cu files for sm_80, sm_90 (+PTX) (the rest up to date)`);
}
if (checkOnly) process.exit(0);
if (!haveRuntime) {
  console.log('cuda: CUDA runtime headers or libcudart_static.a not found; nothing linked');
  process.exit(0);
}

// What the engine's loader relies on (skipped, with a note, where nm is missing).
if (outputs.includes(moduleOut)) {
  const nm = (args) => spawnSync('nm', [...args, moduleOut], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const defined = nm(['-D', '--defined-only']);
  if (defined.status === 0) {
    for (const symbol of ['sparse_studio_create_cuda_backend', 'sparse_studio_cuda_backend_interface']) {
      if (!new RegExp(` T ${symbol}$`, 'm').test(defined.stdout)) {
        console.error(`cuda: sparse_cuda.node does not export ${symbol}`);
        process.exit(1);
      }
    }
    const engineNeeds = nm(['-D', '--undefined-only']).stdout.split('\n').filter((l) => /(?<![0-9])6engine/.test(l));
    if (engineNeeds.length) {
      console.error(`cuda: sparse_cuda.node needs engine symbols it cannot get at run time:\n${engineNeeds.join('\n')}`);
      process.exit(1);
    }
  } else console.log('cuda: nm not found; the module\'s exports were not checked');
}
console.log(`cuda: built ${outputs.map((f) => f.slice(root.length)).join(', ')}`);
