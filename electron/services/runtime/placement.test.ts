import { describe, expect, it } from 'vitest';
import { choosePlacement, precisionNote } from './placement';

describe('choosePlacement', () => {
  it('runs on the CPU in fp32 unless CUDA is asked for or auto finds a GPU', () => {
    expect(choosePlacement('cpu', true, ['bf16'])).toEqual({ backend: 'cpu', precision: 'fp32' });
    expect(choosePlacement('auto', false, ['bf16'])).toEqual({ backend: 'cpu', precision: 'fp32' });
  });
  it('takes the first Train node\'s precision on CUDA', () => {
    expect(choosePlacement('auto', true, ['fp16', 'bf16'])).toEqual({ backend: 'cuda', precision: 'fp16' });
    expect(choosePlacement('cuda', true, ['fp32'])).toEqual({ backend: 'cuda', precision: 'fp32' });
    expect(choosePlacement('cuda', true, [])).toEqual({ backend: 'cuda', precision: 'bf16' });
  });
});

describe('precisionNote', () => {
  const cpu = { name: 'cpu' as const, device: '2 threads, avx2', precision: 'fp32' as const, lossScale: 65536 };
  const gpu = { name: 'cuda' as const, device: 'NVIDIA H200', precision: 'bf16' as const, lossScale: 65536 };
  it('says the CPU computes in fp32 whatever was asked', () => {
    expect(precisionNote('t1', 'fp32', cpu)).toBe('t1: precision fp32 on the cpu backend');
    expect(precisionNote('t1', 'bf16', cpu)).toBe('t1: precision bf16 requested; computed in fp32 on the cpu backend');
  });
  it('names the GPU and any precision the run could not honour', () => {
    expect(precisionNote('t1', 'bf16', gpu)).toBe('t1: precision bf16 on cuda (NVIDIA H200)');
    expect(precisionNote('t2', 'fp16', gpu)).toBe('t2: precision fp16 requested; this run computes in bf16 on cuda (NVIDIA H200) (the first Train node sets the run\'s precision)');
  });
});
