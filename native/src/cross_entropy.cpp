// Fused softmax + cross-entropy over the vocabulary. Shapes: logits, dlogits (N, V), targets (N).
// Each row is one task (threads split rows); per-row losses are summed in row order in double,
// so the mean does not depend on the thread count. Targets < 0 are ignored (padding).
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "op_checks.h"
#include "ops.h"
#include "parallel.h"
#include "simd.h"

namespace engine {

namespace {

// ---------------------------------------------------------------------------- row kernels

// log sum_i exp(x_i), taken about the row max.
float row_logsumexp_scalar(const float* x, int V) {
  float m = -INFINITY;
  for (int i = 0; i < V; i++) m = std::max(m, x[i]);
  double s = 0;
  for (int i = 0; i < V; i++) s += std::exp(x[i] - m);
  return m + (float)std::log(s);
}

// dx_i = exp(x_i - lse) * k (dx may alias x)
void row_softmax_scaled_scalar(float* dx, const float* x, int V, float lse, float k) {
  for (int i = 0; i < V; i++) dx[i] = std::exp(x[i] - lse) * k;
}

#if ENGINE_X86
TARGET_AVX2 float row_logsumexp_avx2(const float* x, int V) {
  __m256 vm = _mm256_set1_ps(-INFINITY);
  int i = 0;
  for (; i + 8 <= V; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
  float m = hmax_avx2(vm);
  for (int j = i; j < V; j++) m = std::max(m, x[j]);
  const __m256 mm = _mm256_set1_ps(m);
  __m256 vs = _mm256_setzero_ps();
  for (i = 0; i + 8 <= V; i += 8) vs = _mm256_add_ps(vs, exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), mm)));
  double s = hsum_avx2(vs);
  for (; i < V; i++) s += std::exp(x[i] - m);
  return m + (float)std::log(s);
}

TARGET_AVX2 void row_softmax_scaled_avx2(float* dx, const float* x, int V, float lse, float k) {
  const __m256 vl = _mm256_set1_ps(lse), vk = _mm256_set1_ps(k);
  int i = 0;
  for (; i + 8 <= V; i += 8)
    _mm256_storeu_ps(dx + i, _mm256_mul_ps(exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), vl)), vk));
  for (; i < V; i++) dx[i] = std::exp(x[i] - lse) * k;
}

TARGET_AVX512 float row_logsumexp_avx512(const float* x, int V) {
  __m512 vm = _mm512_set1_ps(-INFINITY);
  int i = 0;
  for (; i + 16 <= V; i += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(x + i));
  float m = _mm512_reduce_max_ps(vm);
  for (int j = i; j < V; j++) m = std::max(m, x[j]);
  const __m512 mm = _mm512_set1_ps(m);
  __m512 vs = _mm512_setzero_ps();
  for (i = 0; i + 16 <= V; i += 16) vs = _mm512_add_ps(vs, exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), mm)));
  double s = _mm512_reduce_add_ps(vs);
  for (; i < V; i++) s += std::exp(x[i] - m);
  return m + (float)std::log(s);
}

TARGET_AVX512 void row_softmax_scaled_avx512(float* dx, const float* x, int V, float lse, float k) {
  const __m512 vl = _mm512_set1_ps(lse), vk = _mm512_set1_ps(k);
  int i = 0;
  for (; i + 16 <= V; i += 16)
    _mm512_storeu_ps(dx + i, _mm512_mul_ps(exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vl)), vk));
  for (; i < V; i++) dx[i] = std::exp(x[i] - lse) * k;
}
#endif

float row_logsumexp(SimdLevel level, const float* x, int V) {
#if ENGINE_X86
  if (level == SimdLevel::avx512) return row_logsumexp_avx512(x, V);
  if (level == SimdLevel::avx2) return row_logsumexp_avx2(x, V);
#endif
  return row_logsumexp_scalar(x, V);
}

void row_softmax_scaled(SimdLevel level, float* dx, const float* x, int V, float lse, float k) {
#if ENGINE_X86
  if (level == SimdLevel::avx512) return row_softmax_scaled_avx512(dx, x, V, lse, k);
  if (level == SimdLevel::avx2) return row_softmax_scaled_avx2(dx, x, V, lse, k);
#endif
  row_softmax_scaled_scalar(dx, x, V, lse, k);
}

// Shared body: losses (N) per row (0 for ignored rows); dlogits written when non-null.
float cross_entropy_impl(float* dlogits, const float* logits, const int* targets, int N, int V, float dscale) {
  check_targets(targets, N, V, "cross_entropy");
  int valid = 0;
  for (int n = 0; n < N; n++) valid += targets[n] >= 0;
  std::vector<double> losses(N, 0.0);
  const float k = valid ? dscale / (float)valid : 0.0f;
  const SimdLevel level = simd();
  parallel_for(N, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const float* x = logits + n * V;
      const int t = targets[n];
      if (t < 0) {
        if (dlogits) std::fill(dlogits + n * V, dlogits + (n + 1) * V, 0.0f);
        continue;
      }
      const float lse = row_logsumexp(level, x, V);
      const float xt = x[t];  // read before dlogits (which may alias logits) is written
      losses[n] = (double)lse - xt;
      if (dlogits) {
        row_softmax_scaled(level, dlogits + n * V, x, V, lse, k);
        dlogits[n * V + t] -= k;
      }
    }
  });
  double total = 0;
  for (double l : losses) total += l;
  return valid ? (float)(total / valid) : 0.0f;
}

}  // namespace

// ---------------------------------------------------------------------------- entry points

float cross_entropy_forward_backward(float* dlogits, const float* logits, const int* targets, int N, int V,
                                     float dscale) {
  return cross_entropy_impl(dlogits, logits, targets, N, V, dscale);
}

float cross_entropy_forward(const float* logits, const int* targets, int N, int V) {
  return cross_entropy_impl(nullptr, logits, targets, N, V, 0.0f);
}

}  // namespace engine
