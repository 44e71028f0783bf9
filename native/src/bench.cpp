#include "bench.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "ops.h"

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
