#!/usr/bin/env node
// Builds the CUDA backend when nvcc is found: every native/cuda/*.cu compiled for sm_80 and
// sm_90 (+ compute_90 PTX) with warnings as errors, linked with the static CUDA runtime into
// native/build/Release/sparse_cuda.node (loaded separately from the engine addon, so CPU-only
// machines are unaffected) and into the test and bench binaries native/build/cuda/cuda_tests,
// cuda_bench (which also link the CPU engine, their reference). The module must export the
// backend factory and need no engine symbol (the engine dlopens it with RTLD_LOCAL): both are
// checked after linking. The C++ files of native/cuda compile with warnings as errors too.
// Without nvcc it says so in one line and exits 0. `--check` only compiles (CI's -Werror gate).
// Compiles run one per core. scripts/gpu/device-check.sh builds cuda_tests and cuda_bench with the
// same flags where Node is missing (build_without_node): keep the two in step.
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

const nvcc = spawnSync('nvcc', ['--version'], { encoding: 'utf8' });
if (nvcc.status !== 0) {
  console.log('cuda: nvcc not found; the CUDA backend is not built (CPU backend only)');
  process.exit(0);
}
mkdirSync(outDir, { recursive: true });

// Up to date when every output is newer than every CUDA and CPU source (npm install already
// built it; `npm test` then only runs the tests).
const mtime = (f) => (existsSync(f) ? statSync(f).mtimeMs : 0);
const sourcesOf = (dir) => readdirSync(dir).filter((f) => /\.(cu|cuh|h|cpp)$/.test(f)).map((f) => join(dir, f));
const newestSource = Math.max(...[...sourcesOf(cudaDir), ...sourcesOf(srcDir), new URL(import.meta.url).pathname].map(mtime));
const outputs = checkOnly ? [] : [join(root, 'native/build/Release/sparse_cuda.node'), join(outDir, 'cuda_tests'), join(outDir, 'cuda_bench')];
if (outputs.length && outputs.every((f) => mtime(f) > newestSource)) {
  console.log('cuda: up to date (native/build/Release/sparse_cuda.node)');
  process.exit(0);
}
const cudaHome = dirname(dirname(spawnSync('sh', ['-c', 'readlink -f "$(command -v nvcc)"'], { encoding: 'utf8' }).stdout.trim()));
const cudaRoots = [process.env.CUDA_HOME, '/usr/local/cuda', cudaHome].filter(Boolean);
const cudaInclude = cudaRoots.map((r) => join(r, 'include')).find((p) => existsSync(join(p, 'cuda_runtime.h')));
const cudaLib = cudaRoots.flatMap((r) => [join(r, 'lib64'), join(r, 'lib')]).find((p) => existsSync(join(p, 'libcudart_static.a')));
const nodeInclude = join(dirname(dirname(process.execPath)), 'include/node');
const addonInclude = createRequire(import.meta.url)('node-addon-api').include_dir.replace(/"/g, '');

const gencode = ['-gencode', 'arch=compute_80,code=sm_80', '-gencode', 'arch=compute_90,code=sm_90', '-gencode', 'arch=compute_90,code=compute_90'];
const nvccFlags = ['-std=c++17', '-O3', '-Xcompiler', '-fPIC,-Wall,-Wextra,-Werror,-Wno-unused-parameter', '-Werror', 'all-warnings', ...gencode, '-I', cudaDir, '-I', srcDir];

function exec(cmd, args) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: 'inherit' });
    p.on('close', (code) => resolve(code === 0));
  });
}
async function parallel(jobs, width = Math.max(1, cpus().length)) {
  let ok = true;
  for (let i = 0; i < jobs.length; i += width) ok = (await Promise.all(jobs.slice(i, i + width).map((j) => j()))).every(Boolean) && ok;
  return ok;
}

const cuSources = readdirSync(cudaDir).filter((f) => f.endsWith('.cu'));
const cuObjects = cuSources.map((f) => join(outDir, f.replace(/\.cu$/, '.o')));
const compiled = await parallel(cuSources.map((f, i) => () => exec('nvcc', [...nvccFlags, '-c', join(cudaDir, f), '-o', cuObjects[i]])));
if (!compiled) { console.error('cuda: compiling the .cu files failed (warnings are errors)'); process.exit(1); }
console.log(`cuda: compiled ${cuSources.length} .cu files for sm_80, sm_90 (+PTX)`);
if (checkOnly) process.exit(0);
if (!cudaInclude || !cudaLib) { console.log('cuda: CUDA runtime headers or libcudart_static.a not found; module not linked'); process.exit(0); }

const cxx = ['-std=c++17', '-O2', '-fPIC', '-pthread', '-Wall', '-Wno-unused-parameter', '-I', cudaDir, '-I', srcDir, '-I', cudaInclude];
const strict = ['-Wextra', '-Werror'];  // our own C++ files (not the CPU engine's, built with -w)
const link = [`-L${cudaLib}`, '-lcudart_static', '-ldl', '-lrt', '-pthread'];
// The module.
const napiObj = join(outDir, 'napi_cuda.o');
let ok = await exec('g++', [...cxx, ...strict, '-I', nodeInclude, '-I', addonInclude, '-DNAPI_VERSION=8', '-DNODE_ADDON_API_CPP_EXCEPTIONS', '-c', join(cudaDir, 'napi_cuda.cpp'), '-o', napiObj]);
const moduleOut = join(root, 'native/build/Release/sparse_cuda.node');
mkdirSync(dirname(moduleOut), { recursive: true });
ok = ok && (await exec('g++', ['-shared', '-o', moduleOut, napiObj, ...cuObjects, ...link]));
if (!ok) { console.error('cuda: linking sparse_cuda.node failed'); process.exit(1); }
// What the engine's loader relies on (skipped, with a note, where nm is missing).
const nm = (args) => spawnSync('nm', [...args, moduleOut], { encoding: 'utf8', maxBuffer: 64 << 20 });
const defined = nm(['-D', '--defined-only']);
if (defined.status === 0) {
  if (!/ T sparse_studio_create_cuda_backend$/m.test(defined.stdout)) {
    console.error('cuda: sparse_cuda.node does not export sparse_studio_create_cuda_backend');
    process.exit(1);
  }
  const engineNeeds = nm(['-D', '--undefined-only']).stdout.split('\n').filter((l) => /(?<![0-9])6engine/.test(l));
  if (engineNeeds.length) {
    console.error(`cuda: sparse_cuda.node needs engine symbols it cannot get at run time:\n${engineNeeds.join('\n')}`);
    process.exit(1);
  }
} else console.log('cuda: nm not found; the module\'s exports were not checked');
// The test and bench binaries: CUDA ops checked against the CPU engine's ops.
const cpuSources = readdirSync(srcDir).filter((f) => f.endsWith('.cpp')).map((f) => join(srcDir, f));
const cpuObjects = cpuSources.map((f) => join(outDir, 'cpu_' + f.split('/').pop().replace(/\.cpp$/, '.o')));
ok = await parallel(cpuSources.map((f, i) => () => exec('g++', [...cxx, '-O3', '-w', '-c', f, '-o', cpuObjects[i]])));
const binaries = { cuda_tests: ['cuda_tests', 'cuda_backend_tests', 'cuda_model_tests'], cuda_bench: ['cuda_bench'] };
for (const [name, sources] of Object.entries(binaries)) {
  const objs = sources.map((f) => join(outDir, `${f}.o`));
  ok = ok && (await parallel(sources.map((f, i) => () => exec('g++', [...cxx, ...strict, '-I', join(root, 'native/test'), '-c', join(cudaDir, `${f}.cpp`), '-o', objs[i]]))));
  ok = ok && (await exec('g++', ['-o', join(outDir, name), ...objs, ...cuObjects, ...cpuObjects, ...link]));
}
if (!ok) { console.error('cuda: building the CUDA test/bench binaries failed'); process.exit(1); }
console.log('cuda: built native/build/Release/sparse_cuda.node and native/build/cuda/{cuda_tests,cuda_bench}');
