// AdamW exactly as torch.optim.AdamW (decoupled weight decay, bias corrections), and the sum of
// squares behind the global gradient norm. Elementwise over n; chunked so each thread's range
// (and hence every result) is independent of the thread count.
//
// The update is one pass over memory: it reads p, g, m, v and writes p, m, v once each (the
// global-norm clip factor is folded into g as it is read), so at AVX2/AVX-512 width it runs at
// memory speed. The vector levels fuse m's and v's update into one FMA each and round every other
// operation as written (the rounding this update has always had on those CPUs, so trained weights
// keep their bits): AVX2 and AVX-512 agree to the bit. The scalar level (CPUs without FMA) rounds
// the products separately.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops.h"
#include "parallel.h"
#include "simd.h"

// No other contraction: GCC would otherwise fuse p * decay - update into an FMA.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace engine {

namespace {

constexpr int64_t CHUNK = 4096;

// Same operation order as PyTorch's single-tensor AdamW:
//   p *= 1 - lr*wd; m = lerp(m, g, 1-b1); v = b2*v + (1-b2)*g*g;
//   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
struct AdamWStep {
  float decay, one_minus_b1, beta2, one_minus_b2, step_size, bc2_sqrt, eps, grad_scale;
};

void adamw_scalar(float* p, const float* grad, float* m, float* v, int64_t begin, int64_t end, const AdamWStep& s) {
  for (int64_t i = begin; i < end; i++) {
    const float g = grad[i] * s.grad_scale;
    const float mi = m[i] + s.one_minus_b1 * (g - m[i]);
    const float vi = s.beta2 * v[i] + s.one_minus_b2 * g * g;
    const float pi = p[i] * s.decay;
    p[i] = pi - s.step_size * mi / (std::sqrt(vi) / s.bc2_sqrt + s.eps);
    m[i] = mi;
    v[i] = vi;
  }
}

#if ENGINE_X86
TARGET_AVX2 void adamw_avx2(float* p, const float* grad, float* m, float* v, int64_t begin, int64_t end,
                            const AdamWStep& s) {
  const __m256 decay = _mm256_set1_ps(s.decay), omb1 = _mm256_set1_ps(s.one_minus_b1);
  const __m256 b2 = _mm256_set1_ps(s.beta2), omb2 = _mm256_set1_ps(s.one_minus_b2);
  const __m256 step = _mm256_set1_ps(s.step_size), bc2 = _mm256_set1_ps(s.bc2_sqrt);
  const __m256 eps = _mm256_set1_ps(s.eps), scale = _mm256_set1_ps(s.grad_scale);
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t i = begin; i < end; i += 8) {
    // The tail runs the same vector code under a mask (masked-off lanes read 0: sqrt(0) is fine).
    const __m256i k = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)std::min<int64_t>(8, end - i)), iota);
    const __m256 g = _mm256_mul_ps(_mm256_maskload_ps(grad + i, k), scale);
    const __m256 m0 = _mm256_maskload_ps(m + i, k);
    const __m256 mi = _mm256_fmadd_ps(omb1, _mm256_sub_ps(g, m0), m0);
    const __m256 vi = _mm256_fmadd_ps(b2, _mm256_maskload_ps(v + i, k), _mm256_mul_ps(_mm256_mul_ps(omb2, g), g));
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2), eps);
    const __m256 pi = _mm256_mul_ps(_mm256_maskload_ps(p + i, k), decay);
    _mm256_maskstore_ps(p + i, k, _mm256_sub_ps(pi, _mm256_div_ps(_mm256_mul_ps(step, mi), denom)));
    _mm256_maskstore_ps(m + i, k, mi);
    _mm256_maskstore_ps(v + i, k, vi);
  }
}

TARGET_AVX512 void adamw_avx512(float* p, const float* grad, float* m, float* v, int64_t begin, int64_t end,
                                const AdamWStep& s) {
  const __m512 decay = _mm512_set1_ps(s.decay), omb1 = _mm512_set1_ps(s.one_minus_b1);
  const __m512 b2 = _mm512_set1_ps(s.beta2), omb2 = _mm512_set1_ps(s.one_minus_b2);
  const __m512 step = _mm512_set1_ps(s.step_size), bc2 = _mm512_set1_ps(s.bc2_sqrt);
  const __m512 eps = _mm512_set1_ps(s.eps), scale = _mm512_set1_ps(s.grad_scale);
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 k = end - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (end - i)) - 1);
    const __m512 g = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, grad + i), scale);
    const __m512 m0 = _mm512_maskz_loadu_ps(k, m + i);
    const __m512 mi = _mm512_fmadd_ps(omb1, _mm512_sub_ps(g, m0), m0);
    const __m512 vi = _mm512_fmadd_ps(b2, _mm512_maskz_loadu_ps(k, v + i), _mm512_mul_ps(_mm512_mul_ps(omb2, g), g));
    const __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), bc2), eps);
    const __m512 pi = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + i), decay);
    _mm512_mask_storeu_ps(p + i, k, _mm512_sub_ps(pi, _mm512_div_ps(_mm512_mul_ps(step, mi), denom)));
    _mm512_mask_storeu_ps(m + i, k, mi);
    _mm512_mask_storeu_ps(v + i, k, vi);
  }
}
#endif

// Sum of squares of one chunk with four interleaved double accumulators (a fixed pattern).
double chunk_sum_squares(const float* x, int64_t begin, int64_t end) {
  double acc[4] = {0, 0, 0, 0};
  int64_t i = begin;
  for (; i + 4 <= end; i += 4)
    for (int j = 0; j < 4; j++) acc[j] += (double)x[i + j] * x[i + j];
  for (; i < end; i++) acc[0] += (double)x[i] * x[i];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

}  // namespace

// param, grad, m, v (n)
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, int step, float grad_scale) {
  const double bc1 = 1.0 - std::pow((double)beta1, step), bc2 = 1.0 - std::pow((double)beta2, step);
  const AdamWStep s{1.0f - lr * weight_decay, 1.0f - beta1, beta2, 1.0f - beta2, (float)(lr / bc1),
                    (float)std::sqrt(bc2), eps, grad_scale};
  const SimdLevel level = simd();
  parallel_for((n + CHUNK - 1) / CHUNK, [&](int64_t c0, int64_t c1) {
    const int64_t b = c0 * CHUNK, e = std::min(n, c1 * CHUNK);
#if ENGINE_X86
    if (level == SimdLevel::avx512) return adamw_avx512(param, grad, m, v, b, e, s);
    if (level == SimdLevel::avx2) return adamw_avx2(param, grad, m, v, b, e, s);
#endif
    adamw_scalar(param, grad, m, v, b, e, s);
  });
}

// x (n): per-chunk partial sums combined in chunk order.
double sum_squares(const float* x, int64_t n) {
  const int64_t chunks = (n + CHUNK - 1) / CHUNK;
  std::vector<double> partial(chunks, 0.0);
  parallel_for(chunks, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) partial[c] = chunk_sum_squares(x, c * CHUNK, std::min(n, (c + 1) * CHUNK));
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace engine
