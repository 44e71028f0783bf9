// SwiGLU gate of the feed-forward block: out = silu(gate) * up, silu(x) = x * sigmoid(x).
// Elementwise over n; the vector variants use the polynomial exp from simd.h.
#include <algorithm>
#include <cmath>

#include "ops.h"
#include "parallel.h"
#include "simd.h"

namespace engine {

namespace {

// Chunks keep every thread's range a multiple of 16 so vector and tail handling is the same
// whatever the thread count.
constexpr int64_t CHUNK = 1024;

template <typename Fn>
void for_chunks(int64_t n, Fn&& fn) {
  parallel_for((n + CHUNK - 1) / CHUNK, [&](int64_t c0, int64_t c1) {
    const int64_t begin = c0 * CHUNK, end = std::min(n, c1 * CHUNK);
    fn(begin, end);
  });
}

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void forward_scalar(float* out, const float* gate, const float* up, int64_t i, int64_t end) {
  for (; i < end; i++) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

// d silu(g)/dg = s + g*s*(1-s), s = sigmoid(g)
void backward_scalar(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t i,
                     int64_t end) {
  for (; i < end; i++) {
    const float g = gate[i], s = sigmoid(g), d = dout[i];
    dup[i] = d * g * s;
    dgate[i] = d * up[i] * (s + g * s * (1.0f - s));
  }
}

#if ENGINE_X86
TARGET_AVX2 inline __m256 sigmoid_avx2(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

TARGET_AVX2 void forward_avx2(float* out, const float* gate, const float* up, int64_t i, int64_t end) {
  for (; i + 8 <= end; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(g, sigmoid_avx2(g)), _mm256_loadu_ps(up + i)));
  }
  forward_scalar(out, gate, up, i, end);
}

TARGET_AVX2 void backward_avx2(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                               int64_t i, int64_t end) {
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= end; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i), s = sigmoid_avx2(g), d = _mm256_loadu_ps(dout + i);
    _mm256_storeu_ps(dup + i, _mm256_mul_ps(d, _mm256_mul_ps(g, s)));
    const __m256 dsilu = _mm256_fmadd_ps(_mm256_mul_ps(g, s), _mm256_sub_ps(one, s), s);
    _mm256_storeu_ps(dgate + i, _mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(up + i)), dsilu));
  }
  backward_scalar(dgate, dup, dout, gate, up, i, end);
}

TARGET_AVX512 inline __m512 sigmoid_avx512(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

TARGET_AVX512 void forward_avx512(float* out, const float* gate, const float* up, int64_t i, int64_t end) {
  for (; i + 16 <= end; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i);
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(g, sigmoid_avx512(g)), _mm512_loadu_ps(up + i)));
  }
  forward_scalar(out, gate, up, i, end);
}

TARGET_AVX512 void backward_avx512(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                                   int64_t i, int64_t end) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= end; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i), s = sigmoid_avx512(g), d = _mm512_loadu_ps(dout + i);
    _mm512_storeu_ps(dup + i, _mm512_mul_ps(d, _mm512_mul_ps(g, s)));
    const __m512 dsilu = _mm512_fmadd_ps(_mm512_mul_ps(g, s), _mm512_sub_ps(one, s), s);
    _mm512_storeu_ps(dgate + i, _mm512_mul_ps(_mm512_mul_ps(d, _mm512_loadu_ps(up + i)), dsilu));
  }
  backward_scalar(dgate, dup, dout, gate, up, i, end);
}
#endif

}  // namespace

// out (n) = silu(gate (n)) * up (n)
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) {
  const SimdLevel level = simd();
  for_chunks(n, [&](int64_t begin, int64_t end) {
#if ENGINE_X86
    if (level == SimdLevel::avx512) return forward_avx512(out, gate, up, begin, end);
    if (level == SimdLevel::avx2) return forward_avx2(out, gate, up, begin, end);
#endif
    forward_scalar(out, gate, up, begin, end);
  });
}

// dgate (n), dup (n) overwritten from dout (n)
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  const SimdLevel level = simd();
  for_chunks(n, [&](int64_t begin, int64_t end) {
#if ENGINE_X86
    if (level == SimdLevel::avx512) return backward_avx512(dgate, dup, dout, gate, up, begin, end);
    if (level == SimdLevel::avx2) return backward_avx2(dgate, dup, dout, gate, up, begin, end);
#endif
    backward_scalar(dgate, dup, dout, gate, up, begin, end);
  });
}

}  // namespace engine
