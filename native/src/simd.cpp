#include "simd.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>

#include "ops.h"

namespace engine {

namespace {

SimdLevel detect() {
#if ENGINE_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return SimdLevel::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::avx2;
#endif
  return SimdLevel::scalar;
}

// Relaxed is enough: the level only changes between runs (tests), never while kernels run.
std::atomic<int>& current() {
  static std::atomic<int> level{(int)detect()};
  return level;
}

#if ENGINE_X86
TARGET_AVX512 void exp_avx512_span(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, exp_avx512(_mm512_loadu_ps(x + i)));
  if (i < n) {
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(x + i, m, exp_avx512(_mm512_maskz_loadu_ps(m, x + i)));
  }
}
TARGET_AVX2 void exp_avx2_span(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, exp_avx2(_mm256_loadu_ps(x + i)));
  for (; i < n; i++) x[i] = std::exp(x[i]);
}

TARGET_AVX2 float max_avx2(const float* x, int64_t n) {
  __m256 vm = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
  float m = hmax_avx2(vm);
  for (; i < n; i++) m = std::max(m, x[i]);
  return m;
}
TARGET_AVX2 float exp_shift_sum_avx2(float* out, const float* x, int64_t n, float shift) {
  const __m256 vs = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs));
    _mm256_storeu_ps(out + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  float sum = hsum_avx2(acc);
  for (; i < n; i++) sum += (out[i] = std::exp(x[i] - shift));
  return sum;
}
TARGET_AVX512 float max_avx512(const float* x, int64_t n) {
  __m512 vm = _mm512_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(x + i));
  float m = _mm512_reduce_max_ps(vm);
  for (; i < n; i++) m = std::max(m, x[i]);
  return m;
}
TARGET_AVX512 float exp_shift_sum_avx512(float* out, const float* x, int64_t n, float shift) {
  const __m512 vs = _mm512_set1_ps(shift);
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vs));
    _mm512_storeu_ps(out + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  float sum = _mm512_reduce_add_ps(acc);
  for (; i < n; i++) sum += (out[i] = std::exp(x[i] - shift));
  return sum;
}
#endif

}  // namespace

float max_of(const float* x, int64_t n) {
#if ENGINE_X86
  switch (simd()) {
    case SimdLevel::avx512: return max_avx512(x, n);
    case SimdLevel::avx2: return max_avx2(x, n);
    default: break;
  }
#endif
  float m = -INFINITY;
  for (int64_t i = 0; i < n; i++) m = std::max(m, x[i]);
  return m;
}

float exp_shift_sum(float* out, const float* x, int64_t n, float shift) {
#if ENGINE_X86
  switch (simd()) {
    case SimdLevel::avx512: return exp_shift_sum_avx512(out, x, n, shift);
    case SimdLevel::avx2: return exp_shift_sum_avx2(out, x, n, shift);
    default: break;
  }
#endif
  float sum = 0;
  for (int64_t i = 0; i < n; i++) sum += (out[i] = std::exp(x[i] - shift));
  return sum;
}

SimdLevel simd() { return (SimdLevel)current().load(std::memory_order_relaxed); }

SimdLevel simd_detected() {
  static const SimdLevel level = detect();
  return level;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::avx512: return "avx512";
    case SimdLevel::avx2: return "avx2";
    default: return "scalar";
  }
}

const char* simd_level() { return simd_level_name(simd()); }

bool set_simd_level_for_testing(const std::string& level) {
  SimdLevel want;
  if (level == "auto") want = simd_detected();
  else if (level == "scalar") want = SimdLevel::scalar;
  else if (level == "avx2") want = SimdLevel::avx2;
  else if (level == "avx512") want = SimdLevel::avx512;
  else return false;
  if ((int)want > (int)simd_detected()) return false;
  current().store((int)want, std::memory_order_relaxed);
  return true;
}

void exp_inplace(float* x, int64_t n) {
#if ENGINE_X86
  switch (simd()) {
    case SimdLevel::avx512: return exp_avx512_span(x, n);
    case SimdLevel::avx2: return exp_avx2_span(x, n);
    default: break;
  }
#endif
  for (int64_t i = 0; i < n; i++) x[i] = std::exp(x[i]);
}

}  // namespace engine
