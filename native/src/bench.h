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

struct GemmCompare {
  int m, n, k;
  bool trans_a, trans_b;
  double gflops;            // engine::sgemm, best of reps
  double reference_gflops;  // OpenBLAS cblas_sgemm on the same data and thread count; 0 when unavailable
  int reps;                 // timed reps of each (more than asked for on shapes that run in well under a second)
};

// sgemm C (m, n) = op(A) op(B) timed against OpenBLAS (reference_blas.h) rep by rep, alternating
// the two so load from other processes hits both alike; each keeps its best time. Without
// OpenBLAS only the engine is timed.
GemmCompare bench_gemm_compare(int m, int n, int k, bool trans_a, bool trans_b, int reps);

struct AttentionBench {
  int b, h, hkv, t, d;
  double forward_ms, backward_ms;  // best of reps
};

// Causal GQA flash attention forward and backward at q (b, h, t, d), k/v (b, hkv, t, d).
AttentionBench bench_attention(int b, int h, int hkv, int t, int d, int reps);

}  // namespace engine
