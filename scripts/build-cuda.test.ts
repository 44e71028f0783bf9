// scripts/build-cuda.mjs plans the CUDA test and bench binaries whether or not the Node module
// can be built: a copy of the repository without node_modules (what a GPU machine receives) must
// still build cuda_tests and cuda_bench. `--plan` prints the plan without running anything (and
// without nvcc); a stand-in CUDA_HOME with the two files the script looks for makes the test
// independent of the machine's toolkit.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(__dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'build-cuda-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const cudaHome = join(tmp, 'cuda');
mkdirSync(join(cudaHome, 'include'), { recursive: true });
mkdirSync(join(cudaHome, 'lib64'), { recursive: true });
writeFileSync(join(cudaHome, 'include/cuda_runtime.h'), '');
writeFileSync(join(cudaHome, 'lib64/libcudart_static.a'), '');

type Plan = { module: boolean; outputs: string[]; skipped: string[]; steps: { phase: string; cmd: string; out: string }[] };
function plan(script: string): Plan {
  const r = spawnSync(process.execPath, [script, '--plan'], { encoding: 'utf8', env: { ...process.env, CUDA_HOME: cudaHome } });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Plan;
}

describe('build-cuda.mjs --plan', () => {
  it('plans cuda_tests and cuda_bench without node-addon-api, skipping only the module', () => {
    // The script alone in a checkout whose native/ is the real one but with no node_modules anywhere above it.
    const copy = join(tmp, 'repo');
    mkdirSync(join(copy, 'scripts'), { recursive: true });
    copyFileSync(join(root, 'scripts/build-cuda.mjs'), join(copy, 'scripts/build-cuda.mjs'));
    symlinkSync(join(root, 'native'), join(copy, 'native'));
    const p = plan(join(copy, 'scripts/build-cuda.mjs'));
    expect(p.module).toBe(false);
    expect(p.skipped.join('\n')).toMatch(/sparse_cuda\.node: node-addon-api cannot be resolved/);
    const names = p.outputs.map((o) => o.split('/').pop());
    expect(names).toEqual(['cuda_tests', 'cuda_bench']);
    const links = p.steps.filter((s) => s.phase === 'link').map((s) => s.out.split('/').pop());
    expect(links).toEqual(['cuda_tests', 'cuda_bench']);
    expect(p.steps.some((s) => s.out.endsWith('napi_cuda.o'))).toBe(false);
    expect(p.steps.filter((s) => s.phase === 'cu').length).toBeGreaterThan(5);
  });

  it('plans the module too where node-addon-api resolves', () => {
    const p = plan(join(root, 'scripts/build-cuda.mjs'));
    const names = p.outputs.map((o) => o.split('/').pop());
    expect(names.slice(0, 2)).toEqual(['cuda_tests', 'cuda_bench']);
    // Node's headers may be missing on some machines: then the module is skipped saying so.
    if (p.module) expect(names).toContain('sparse_cuda.node');
    else expect(p.skipped.join('\n')).toMatch(/Node's headers/);
  });
});
