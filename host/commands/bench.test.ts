import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { engineAvailable } from '../../native/index';
import { BUILTIN_TRAIN_CONFIG, gemmShapes, trainStepFlops, trainingGemmShapes } from './bench';

const repo = join(import.meta.dirname, '../..');
const cli = (...args: string[]) => {
  const r = spawnSync(process.execPath, [join(repo, 'bin/sparse-studio.mjs'), 'bench', ...args], { encoding: 'utf8', cwd: repo });
  return { code: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
};

describe('bench shapes and flops', () => {
  it('lists the distinct forward and weight-gradient products of a training step', () => {
    const shapes = trainingGemmShapes('x', { hidden_size: 8, intermediate_size: 16, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 4, vocab_size: 10 }, 32);
    expect(shapes.map((s) => [s.m, s.n, s.k])).toEqual([
      [32, 8, 8], [32, 4, 8], [32, 16, 8], [32, 8, 16], [32, 10, 8], // q (o has the same shape), kv, gate/up, down, lm_head
      [8, 8, 32], [4, 8, 32], [16, 8, 32], [8, 16, 32], [10, 8, 32],
    ]);
    // Measured in the layouts training calls sgemm with: Y = X W^T (nt) and dW = dY^T X (tn).
    expect(shapes.map((s) => `${s.transA ? 't' : 'n'}${s.transB ? 't' : 'n'}`)).toEqual([...Array(5).fill('nt'), ...Array(5).fill('tn')]);
    const all = gemmShapes();
    expect(all.some((s) => s.m === 1024 && s.n === 4096 && s.k === 128)).toBe(true); // demo LM head, 4 x 256 tokens
    expect(all.some((s) => s.m === 4096 && s.n === 1024 && s.k === 1024)).toBe(true); // d=1024 q/o, 4096 tokens
  });

  it('counts 6 flops per weight per token plus causal attention', () => {
    const c = { ...BUILTIN_TRAIN_CONFIG, num_hidden_layers: 1, vocab_size: 1, intermediate_size: 1, hidden_size: 1, num_attention_heads: 1, num_key_value_heads: 1, head_dim: 1 };
    // weights: 2 (q, o) + 2 (k, v) + 3 (mlp) + 1 (head) = 8; attention 2*2*(T/2)*1 = 2T per token, x3
    expect(trainStepFlops(c, 1, 4)).toBe(4 * (6 * 8 + 3 * 8));
  });

  it('counts a mixture-of-experts layer by its router and the k experts a token runs, not all of them', () => {
    const dense = { ...BUILTIN_TRAIN_CONFIG, model_type: 'qwen3' as const, num_hidden_layers: 2 };
    const moe = { ...dense, model_type: 'qwen3_moe' as const, num_experts: 8, num_experts_per_tok: 2, moe_intermediate_size: dense.intermediate_size / 2, decoder_sparse_step: 1, mlp_only_layers: [1] };
    // Layer 0: router C*E more weights than the dense MLP of the same active width; layer 1 stays dense.
    expect(trainStepFlops(moe, 2, 16) - trainStepFlops(dense, 2, 16)).toBe(2 * 16 * 6 * dense.hidden_size * 8);
  });
});

describe.skipIf(!engineAvailable())('sparse-studio bench', () => {
  it('bench train --json prints one measurement', () => {
    const r = cli('train', '--json', '--batch', '1', '--seq', '32', '--steps', '1');
    expect(r.code, r.stderr).toBe(0);
    const row = JSON.parse(r.stdout);
    expect(Object.keys(row)).toEqual(['bench', 'tokens_per_s', 'gflops', 'params', 'gemm_gflops', 'gemm_share']);
    expect(row.bench).toBe('train');
    expect(row.tokens_per_s).toBeGreaterThan(0);
    expect(row.gflops).toBeGreaterThan(0);
    expect(row.gemm_share).toBeCloseTo(row.gflops / row.gemm_gflops, 2);
    expect(row.params).toBe(4096 * 128 + 4 * (2 * 128 + 2 * 128 * 128 + 2 * 128 * 64 + 3 * 128 * 384) + 128);
  });

  it('bench train --attn-entropy-weight W times steps with the attention-entropy term on', () => {
    const r = cli('train', '--json', '--batch', '1', '--seq', '32', '--steps', '1', '--attn-entropy-weight', '0.1');
    expect(r.code, r.stderr).toBe(0);
    const row = JSON.parse(r.stdout);
    expect(Object.keys(row)).toEqual(['bench', 'tokens_per_s', 'gflops', 'params', 'gemm_gflops', 'gemm_share', 'attn_entropy_weight']);
    expect(row.attn_entropy_weight).toBe(0.1);
    const bad = cli('train', '--attn-entropy-weight', '-1');
    expect(bad.code).toBe(2);
    expect(bad.stderr.split('\n')[0]).toBe("sparse-studio bench: --attn-entropy-weight must be a number >= 0, got '-1'");
  });

  it('bench train --config FILE times a random-initialised model of that config, and names a bad file in one line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-config-'));
    try {
      const config = { model_type: 'llama', vocab_size: 512, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 2,
        num_key_value_heads: 1, head_dim: 32, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 128, tie_word_embeddings: false };
      writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
      const r = cli('train', '--json', '--config', join(dir, 'config.json'), '--batch', '1', '--seq', '16', '--steps', '1');
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).params).toBe(2 * 512 * 64 + 2 * (2 * 64 + 64 * 64 * 2 + 2 * 64 * 32 + 3 * 64 * 128) + 64);
      writeFileSync(join(dir, 'bad.json'), JSON.stringify({ ...config, hidden_size: -1 }));
      const bad = cli('train', '--config', join(dir, 'bad.json'));
      expect(bad.code).toBe(2);
      expect(bad.stderr.split('\n')[0]).toContain('hidden_size');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects bad usage with exit 2', () => {
    for (const args of [['nope'], [], ['train', '--batch', '0'], ['gemm', '--x']]) {
      const r = cli(...args);
      expect(r.code).toBe(2);
      expect(r.stderr.split('\n')[0]).toMatch(/^sparse-studio bench: /);
    }
  });
});
