// Micro-benchmarks of the engine's kernels, for `sparse-studio bench` (the binding exposes them).
// Inputs are filled from a fixed seed; timings are wall-clock on the current thread pool.
#pragma once

namespace engine {

struct GemmBench {
  int m, n, k;
  double gflops;  // 2*m*n*k / best time of reps
};

// Best-of-reps GFLOP/s of sgemm C (m, n) = A (m, k) @ B (k, n)^T (the Linear layout), after one warm-up.
double bench_gemm_gflops(int m, int n, int k, int reps);
GemmBench bench_gemm(int m, int n, int k, int reps);

struct AttentionBench {
  int b, h, hkv, t, d;
  double forward_ms, backward_ms;  // best of reps
};

// Causal GQA flash attention forward and backward at q (b, h, t, d), k/v (b, hkv, t, d).
AttentionBench bench_attention(int b, int h, int hkv, int t, int d, int reps);

}  // namespace engine
