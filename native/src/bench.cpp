#include "bench.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "ops.h"
#include "parallel.h"
#include "reference_blas.h"

namespace engine {

namespace {

std::vector<float> filled(size_t n, uint32_t seed) {
  std::vector<float> x(n);
  uint32_t s = seed;
  for (auto& v : x) {
    s = s * 1664525u + 1013904223u;  // LCG: reproducible, no <random> distribution differences
    v = (float)((s >> 8) * (1.0 / 16777216.0)) - 0.5f;
  }
  return x;
}

template <typename Fn>
double best_seconds(int reps, Fn&& fn) {
  fn();  // warm-up: page faults, pool start, packing buffers
  double best = 1e30;
  for (int r = 0; r < std::max(1, reps); r++) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

GemmBench bench_gemm(int m, int n, int k, int reps) {
  auto a = filled((size_t)m * k, 1), b = filled((size_t)n * k, 2);
  std::vector<float> c((size_t)m * n);
  double s = best_seconds(reps, [&] { sgemm(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n); });
  return {m, n, k, 2.0 * m * n * k / s * 1e-9};
}

double bench_gemm_gflops(int m, int n, int k, int reps) { return bench_gemm(m, n, k, reps).gflops; }

GemmCompare bench_gemm_compare(int m, int n, int k, bool trans_a, bool trans_b, int reps) {
  const ReferenceBlas& blas = ReferenceBlas::get();
  const int lda = trans_a ? m : k, ldb = trans_b ? k : n;
  auto a = filled((size_t)m * k, 1), b = filled((size_t)n * k, 2);
  std::vector<float> c((size_t)m * n), c_ref((size_t)m * n);
  auto ours = [&] { sgemm(trans_a, trans_b, m, n, k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(), n); };
  auto theirs = [&] {
    blas.sgemm(trans_a, trans_b, m, n, k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c_ref.data(), n);
  };
  if (blas.available()) blas.set_threads(ThreadPool::get().threads());
  ours();  // warm-up: page faults, pool start, packing buffers
  if (blas.available()) theirs();
  // Short products get more reps (up to ~0.25 s of ours, at most 500), so the best of them is a
  // steady figure and not one lucky or unlucky scheduler slice.
  using clock = std::chrono::steady_clock;
  double best = 1e30, best_ref = 1e30, spent = 0;
  int r = 0;
  for (; r < std::max(1, reps) || (spent < 0.25 && r < 500); r++) {
    auto t0 = clock::now();
    ours();
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    best = std::min(best, s);
    spent += s;
    if (blas.available()) {
      t0 = clock::now();
      theirs();
      best_ref = std::min(best_ref, std::chrono::duration<double>(clock::now() - t0).count());
    }
  }
  const double flop = 2.0 * m * n * k * 1e-9;
  return {m, n, k, trans_a, trans_b, flop / best, blas.available() ? flop / best_ref : 0.0, r};
}

AttentionBench bench_attention(int b, int h, int hkv, int t, int d, int reps) {
  const size_t nq = (size_t)b * h * t * d, nkv = (size_t)b * hkv * t * d;
  auto q = filled(nq, 3), k = filled(nkv, 4), v = filled(nkv, 5), dout = filled(nq, 6);
  std::vector<float> out(nq), lse((size_t)b * h * t), dq(nq), dk(nkv), dv(nkv);
  double f = best_seconds(reps, [&] { attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), b, h, hkv, t, d); });
  double bw = best_seconds(reps, [&] {
    attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), out.data(),
                       lse.data(), b, h, hkv, t, d);
  });
  return {b, h, hkv, t, d, f * 1e3, bw * 1e3};
}

}  // namespace engine
