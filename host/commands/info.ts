// `sparse-studio info [--json]`: what this build and this machine offer. Honest by
// construction: each fact comes from a probe (the engine addon, /proc/cpuinfo, the CUDA
// addon file, nvidia-smi, the dynamic-linker cache), and a failed probe reports "not found",
// never a guess. collectInfo() is reused by StudioApi.systemInfo.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SystemInfo } from '../../core/api';
import { packageVersion } from '../cli';

const USAGE = 'usage: sparse-studio info [--json]';
const NATIVE_DIR = fileURLToPath(new URL('../../native/', import.meta.url));
export const CUDA_ADDON = join(NATIVE_DIR, 'build', 'Release', 'sparse_cuda.node');
const NVML_LIBRARY = 'libnvidia-ml.so.1';
const NVML_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu',
  '/lib/aarch64-linux-gnu', '/lib64', '/usr/local/nvidia/lib64', '/usr/local/nvidia/lib', '/usr/local/cuda/lib64', '/usr/lib/wsl/lib'];

export interface InfoReport extends SystemInfo {
  backends: {
    cpu: { threads: number; simd: string; simdSource: 'engine' | 'cpuinfo' | 'none' };
    /** available = runs can use it (the engine says so); reason = why not. */
    cuda: { compiled: boolean; available: boolean; devicePresent: boolean; device?: string; devices: string[]; reason?: string; gemm?: string; attention?: string };
  };
  engine: { built: boolean; version?: string; note?: string };
  nvmlPath?: string;
}

/** SIMD extensions the engine can use, from the kernel's CPU flags ('' when none are listed). */
export function simdFromCpuinfo(cpuinfo: string): string {
  const line = cpuinfo.split('\n').find((l) => /^(flags|Features)\s*:/.test(l));
  if (!line) return '';
  const flags = new Set(line.slice(line.indexOf(':') + 1).trim().split(/\s+/));
  const names: [string, string][] = [['avx512f', 'avx512f'], ['avx2', 'avx2'], ['fma', 'fma'], ['avx', 'avx'], ['sse4_2', 'sse4.2'], ['asimd', 'neon'], ['sve', 'sve']];
  return names.filter(([flag]) => flags.has(flag)).map(([, name]) => name).join(',');
}

interface EngineFacts { built: boolean; version?: string; simd?: string; note?: string; cuda?: { available: boolean; reason?: string; gemm?: string; attention?: string } }

/** Loads native/index.ts lazily; any failure means "not built" with the reason kept as a note. */
async function probeEngine(): Promise<EngineFacts> {
  const entry = join(NATIVE_DIR, 'index.ts');
  if (!existsSync(entry)) return { built: false, note: 'engine addon not built' };
  try {
    const native = (await import(entry)) as { engineInfo?: () => unknown };
    if (typeof native.engineInfo !== 'function') return { built: false, note: 'engine addon not built (native/index.ts has no engineInfo)' };
    const info = (await native.engineInfo()) as { version?: unknown; simd?: unknown; cuda?: { available?: unknown; reason?: unknown; gemm?: unknown; attention?: unknown } } | undefined;
    const str = (x: unknown) => (typeof x === 'string' ? x : undefined);
    return {
      built: true,
      cuda: { available: info?.cuda?.available === true, reason: str(info?.cuda?.reason), gemm: str(info?.cuda?.gemm), attention: str(info?.cuda?.attention) },
      version: typeof info?.version === 'string' ? info.version : undefined,
      simd: typeof info?.simd === 'string' ? info.simd : undefined,
    };
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0];
    return { built: false, note: reason.startsWith('engine addon not built') ? reason : `engine addon not built (${reason})` };
  }
}

function probeGpus(): string[] {
  try {
    const result = spawnSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { encoding: 'utf8', timeout: 10_000 });
    if (result.status !== 0 || typeof result.stdout !== 'string') return [];
    return result.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  } catch {
    return [];
  }
}

/** Path of libnvidia-ml.so.1 if the dynamic linker could find it, else undefined. */
export function findNvml(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = [...(env.LD_LIBRARY_PATH ?? '').split(delimiter).filter((d) => d !== ''), ...NVML_DIRS];
  for (const dir of dirs) {
    const file = join(dir, NVML_LIBRARY);
    if (existsSync(file)) return file;
  }
  try {
    const result = spawnSync('ldconfig', ['-p'], { encoding: 'utf8', timeout: 10_000 });
    const line = (result.stdout ?? '').split('\n').find((l) => l.trim().startsWith(NVML_LIBRARY));
    const path = line?.split('=>')[1]?.trim();
    if (path && existsSync(path)) return path;
  } catch {
    // no ldconfig: the directory scan above is all we can do
  }
  return undefined;
}

export async function collectInfo(): Promise<InfoReport> {
  const engine = await probeEngine();
  let simd = engine.simd;
  let simdSource: InfoReport['backends']['cpu']['simdSource'] = 'engine';
  if (simd === undefined) {
    let cpuinfo = '';
    try { cpuinfo = readFileSync('/proc/cpuinfo', 'utf8'); } catch { /* not Linux */ }
    simd = simdFromCpuinfo(cpuinfo);
    simdSource = cpuinfo === '' ? 'none' : 'cpuinfo';
  }
  const devices = probeGpus();
  const compiled = existsSync(CUDA_ADDON);
  const nvmlPath = findNvml();
  const report: InfoReport = {
    version: packageVersion(),
    backends: {
      cpu: { threads: availableParallelism(), simd: simd === '' ? 'none' : simd, simdSource },
      cuda: { compiled, available: compiled && devices.length > 0 && engine.cuda?.available === true, devicePresent: devices.length > 0, devices },
    },
    engine: { built: engine.built },
    nvml: nvmlPath !== undefined,
  };
  if (devices.length > 0) report.backends.cuda.device = devices[0];
  if (engine.cuda?.gemm !== undefined) report.backends.cuda.gemm = engine.cuda.gemm;
  if (engine.cuda?.attention !== undefined) report.backends.cuda.attention = engine.cuda.attention;
  if (!report.backends.cuda.available) report.backends.cuda.reason = engine.cuda?.reason ?? (compiled ? 'no CUDA device found' : 'CUDA module not built');
  if (engine.version !== undefined) report.engine.version = engine.version;
  if (engine.note !== undefined) report.engine.note = engine.note;
  if (nvmlPath !== undefined) report.nvmlPath = nvmlPath;
  return report;
}

export function formatInfo(r: InfoReport): string {
  const { cpu, cuda } = r.backends;
  const simdFrom = cpu.simdSource === 'engine' ? 'from the engine' : cpu.simdSource === 'cpuinfo' ? 'from /proc/cpuinfo' : 'unknown';
  const devices = cuda.devices.length > 1 ? `${cuda.devices.length} devices: ${cuda.devices.join(', ')}` : cuda.device ?? 'none found';
  return [
    `sparse-studio ${r.version}`,
    `engine: ${r.engine.built ? `addon loaded${r.engine.version ? ` (engine ${r.engine.version})` : ''}` : r.engine.note ?? 'engine addon not built'}`,
    `cpu:    ${cpu.threads} threads, SIMD ${cpu.simd} (${simdFrom})`,
    `cuda:   ${cuda.compiled ? 'compiled' : 'not compiled'}; device: ${devices}; ${cuda.available ? 'usable' : `not usable: ${cuda.reason}`}`,
    ...(cuda.gemm !== undefined ? [`        GEMM: ${cuda.gemm}`] : []),
    ...(cuda.attention !== undefined ? [`        attention: ${cuda.attention}`] : []),
    `nvml:   ${r.nvml ? `available (${r.nvmlPath})` : 'not found'}`,
  ].join('\n');
}

export async function run(args: string[]): Promise<number> {
  let json = false;
  for (const arg of args) {
    if (arg === '--json') json = true;
    else if (arg === '-h' || arg === '--help') { console.log(USAGE); return 0; }
    else { console.error(`sparse-studio info: unknown argument '${arg}'\n${USAGE}`); return 2; }
  }
  const report = await collectInfo();
  console.log(json ? JSON.stringify(report) : formatInfo(report));
  return 0;
}
