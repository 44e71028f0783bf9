import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism, tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { CUDA_ADDON, findNvml, formatInfo, simdFromCpuinfo, type InfoReport } from './info';

// Runs the real `sparse-studio` entry point in a child process, as a user would.
const BIN = fileURLToPath(new URL('../../bin/sparse-studio.mjs', import.meta.url));
const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));
function runCli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: PROJECT_ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '');

describe('sparse-studio info', () => {
  it('--json prints one object with every field, true to this machine', () => {
    const r = runCli(['info', '--json']);
    expect(r.code).toBe(0);
    expect(lines(r.stdout)).toHaveLength(1);
    const info = JSON.parse(r.stdout);
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.backends.cpu.threads).toBe(availableParallelism());
    expect(typeof info.backends.cpu.simd).toBe('string');
    expect(['engine', 'cpuinfo', 'none']).toContain(info.backends.cpu.simdSource);
    expect(info.backends.cuda.compiled).toBe(existsSync(CUDA_ADDON));
    expect(typeof info.backends.cuda.devicePresent).toBe('boolean');
    expect(info.backends.cuda.available).toBe(info.backends.cuda.compiled && info.backends.cuda.devicePresent);
    expect(info.backends.cuda.devicePresent).toBe(info.backends.cuda.devices.length > 0);
    if (info.backends.cuda.devicePresent) expect(info.backends.cuda.device).toBe(info.backends.cuda.devices[0]);
    else expect(info.backends.cuda).not.toHaveProperty('device');
    expect(typeof info.nvml).toBe('boolean');
    expect(info.nvml).toBe(findNvml() !== undefined);
    expect(typeof info.engine.built).toBe('boolean');
    if (!info.engine.built) expect(info.engine.note).toMatch(/^engine addon not built/);
  });

  it('prints readable text by default', () => {
    const r = runCli(['info']);
    expect(r.code).toBe(0);
    const out = lines(r.stdout);
    expect(out[0]).toMatch(/^sparse-studio \d+\.\d+\.\d+/);
    expect(out.some((l) => /^cpu: +\d+ threads, SIMD /.test(l))).toBe(true);
    expect(out.some((l) => /^cuda: +(compiled|not compiled); device: /.test(l))).toBe(true);
    expect(out.some((l) => /^nvml: +(available|not found)/.test(l))).toBe(true);
  });

  it('says which GEMM and attention variants the CUDA backend uses, when it is usable', () => {
    const report: InfoReport = {
      version: '0.1.0',
      backends: {
        cpu: { threads: 8, simd: 'avx2', simdSource: 'engine' },
        cuda: { compiled: true, available: true, devicePresent: true, device: 'NVIDIA L4', devices: ['NVIDIA L4'],
                gemm: 'fallback: naive fp32 SGEMM, bf16/fp16 requests computed in fp32 (cuBLAS not found; searched /usr/local/cuda/lib64)',
                attention: 'head_dim 64 and 128 (128 with key tiles of 32)' },
      },
      engine: { built: true },
      nvml: false,
    } as InfoReport;
    const out = lines(formatInfo(report));
    expect(out).toContain('        GEMM: fallback: naive fp32 SGEMM, bf16/fp16 requests computed in fp32 (cuBLAS not found; searched /usr/local/cuda/lib64)');
    expect(out).toContain('        attention: head_dim 64 and 128 (128 with key tiles of 32)');
    delete report.backends.cuda.gemm;
    delete report.backends.cuda.attention;
    expect(lines(formatInfo(report)).some((l) => /GEMM|attention/.test(l))).toBe(false);
  });

  it('rejects unknown arguments with exit 2', () => {
    const r = runCli(['info', '--yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sparse-studio info: unknown argument '--yaml'/);
  });
});

describe('simdFromCpuinfo', () => {
  it('lists the SIMD extensions among the x86 flags', () => {
    expect(simdFromCpuinfo('processor\t: 0\nflags\t\t: fpu sse sse2 sse4_2 avx avx2 fma\n')).toBe('avx2,fma,avx,sse4.2');
    expect(simdFromCpuinfo('flags : fpu avx512f avx2\n')).toBe('avx512f,avx2');
  });
  it('reads ARM features and says nothing when there is nothing', () => {
    expect(simdFromCpuinfo('Features\t: fp asimd evtstrm sve\n')).toBe('neon,sve');
    expect(simdFromCpuinfo('flags : fpu sse2\n')).toBe('');
    expect(simdFromCpuinfo('')).toBe('');
  });
});

describe('findNvml', () => {
  it('looks in LD_LIBRARY_PATH first, and only finds files that exist', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nvml-'));
    try {
      expect(findNvml({ LD_LIBRARY_PATH: `/nonexistent-dir:${dir}` })).toBe(findNvml({}));
      writeFileSync(join(dir, 'libnvidia-ml.so.1'), '');
      expect(findNvml({ LD_LIBRARY_PATH: `/nonexistent-dir:${dir}` })).toBe(join(dir, 'libnvidia-ml.so.1'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
