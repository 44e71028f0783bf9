import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import type { Pipeline } from '../../core/schema';
import { choosePlacement, cpuPrecisionNote, cudaMaskProblem, cudaPipelineProblem, entropyTrains, pipelineMasks, precisionNote } from './placement';

const template = (name: string) => JSON.parse(readFileSync(new URL(`../../templates/${name}.json`, import.meta.url), 'utf8')) as Pipeline;

describe('choosePlacement', () => {
  const on = (requested: string, cudaAvailable: boolean, precisions: ('fp32' | 'bf16' | 'fp16')[], blockSize = 64) =>
    choosePlacement({ requested, cudaAvailable, precisions, masks: [{ node: 's1-replace', blockSize }] });
  it('runs on the CPU in fp32 unless CUDA is asked for or auto finds a GPU', () => {
    expect(on('cpu', true, ['bf16'])).toEqual({ placement: { backend: 'cpu', precision: 'fp32' } });
    expect(on('auto', false, ['bf16'])).toEqual({ placement: { backend: 'cpu', precision: 'fp32' } });
  });
  it('starts CUDA at the first Train node\'s precision (each stage then sets its own)', () => {
    expect(on('auto', true, ['fp16', 'bf16'])).toEqual({ placement: { backend: 'cuda', precision: 'fp16' } });
    expect(on('cuda', true, ['fp32'], 128)).toEqual({ placement: { backend: 'cuda', precision: 'fp32' } });
    expect(on('cuda', true, [])).toEqual({ placement: { backend: 'cuda', precision: 'bf16' } });
  });
  it('keeps auto on the CPU, with a reason, when a mask block does not suit the CUDA kernels', () => {
    expect(on('auto', true, ['bf16'], 16)).toEqual({
      placement: { backend: 'cpu', precision: 'fp32' },
      note: 'backend: auto stays on the cpu: s1-replace.mask.block_size is 16; the CUDA attention kernels take 64 or 128',
    });
    expect(on('auto', false, ['bf16'], 16)).toEqual({ placement: { backend: 'cpu', precision: 'fp32' } });
  });
  it('refuses cuda for such a pipeline in one line naming the node', () => {
    expect(() => on('cuda', true, ['bf16'], 32)).toThrow(
      'backend: cuda cannot run this pipeline: s1-replace.mask.block_size is 32; the CUDA attention kernels take 64 or 128 (run it with --backend cpu)');
  });
});

describe('cudaMaskProblem', () => {
  it('names the first Replace node whose blocks the CUDA kernels cannot take', () => {
    expect(cudaMaskProblem(pipelineMasks(template('seed-progressive')))).toBe('s1-replace.mask.block_size is 16; the CUDA attention kernels take 64 or 128');
    expect(cudaMaskProblem([{ node: 'r', blockSize: 64, selector: 'pooled' }])).toBeUndefined();
    expect(cudaMaskProblem(pipelineMasks(template('minicpm41-infllmv2')))).toBe('replace.mask.selector is infllm_v2, whose per-token attention runs on the cpu only');
  });
});

describe('the attention-entropy term on CUDA', () => {
  // pretrain-demo: 'pretrain' trains without the term, 'sharpen' with it.
  const withTerm = (weight: number) => {
    const p = template('pretrain-demo');
    (p.nodes.find((n) => n.id === 'pretrain')!.params as { attn_entropy_weight?: number }).attn_entropy_weight = weight;
    return p;
  };
  it('names the Train nodes that weigh it', () => {
    expect(entropyTrains(withTerm(0.1))).toEqual(['pretrain', 'sharpen']);
    expect(entropyTrains(withTerm(0))).toEqual(['sharpen']);
    expect(entropyTrains(template('pretrain-demo'))).toEqual(['sharpen']);
    expect(entropyTrains(template('seed-progressive'))).toEqual([]);
    expect(cudaPipelineProblem({ masks: [], entropyTrains: ['pretrain'] })).toBe('pretrain.attn_entropy_weight is on: the attention-entropy term runs on the cpu backend only');
  });
  it('keeps auto on the CPU with a reason, and refuses cuda in one line', () => {
    const input = (requested: string) => ({ requested, cudaAvailable: true, precisions: ['bf16' as const], masks: [], entropyTrains: ['pretrain'] });
    expect(choosePlacement(input('auto'))).toEqual({
      placement: { backend: 'cpu', precision: 'fp32' },
      note: 'backend: auto stays on the cpu: pretrain.attn_entropy_weight is on: the attention-entropy term runs on the cpu backend only',
    });
    expect(() => choosePlacement(input('cuda'))).toThrow(
      'backend: cuda cannot run this pipeline: pretrain.attn_entropy_weight is on: the attention-entropy term runs on the cpu backend only (run it with --backend cpu)');
  });
});

describe('cpuPrecisionNote', () => {
  it('says once that the cpu computes in fp32, naming the Train nodes that ask otherwise', () => {
    const t = (id: string, precision: 'fp32' | 'bf16' | 'fp16') => ({ id, params: { precision } });
    expect(cpuPrecisionNote([t('s1', 'fp32')])).toBe('precision: the cpu backend computes every stage in fp32');
    expect(cpuPrecisionNote([t('s1', 'bf16'), t('s2', 'fp32'), t('s3', 'fp16')])).toBe('precision: the cpu backend computes every stage in fp32 (asked: s1 bf16, s3 fp16)');
  });
});

describe('precisionNote', () => {
  const cpu = { name: 'cpu' as const, device: '2 threads, avx2', precision: 'fp32' as const, lossScale: 65536 };
  const gpu = { name: 'cuda' as const, device: 'NVIDIA H200', precision: 'bf16' as const, lossScale: 65536 };
  it('says the CPU computes in fp32 whatever was asked', () => {
    expect(precisionNote('t1', 'fp32', cpu)).toBe('t1: precision fp32 on the cpu backend');
    expect(precisionNote('t1', 'bf16', cpu)).toBe('t1: precision bf16 requested; computed in fp32 on the cpu backend');
  });
  it('names the GPU and the precision each stage computes in', () => {
    const at = (precision: 'fp32' | 'bf16' | 'fp16') => ({ ...gpu, precision });
    expect(['bf16', 'fp16', 'fp32'].map((p, i) => precisionNote(`t${i + 1}`, p as 'fp32', at(p as 'fp32')))).toEqual([
      't1: precision bf16 on cuda (NVIDIA H200)', 't2: precision fp16 on cuda (NVIDIA H200)', 't3: precision fp32 on cuda (NVIDIA H200)',
    ]);
  });
  it('says so when the engine reports another precision than the stage asked for', () => {
    expect(precisionNote('t2', 'fp16', gpu)).toBe('t2: precision fp16 requested; the engine computes in bf16 on cuda (NVIDIA H200)');
  });
});
