// Micro-kernels for gemm_kernels.h. Register budget per level:
// - AVX-512 12x32: 24 accumulators + 2 B vectors + 1 broadcast of 32 zmm; 24 FMAs per 14 loads.
// - AVX2+FMA 6x16: 12 accumulators + 2 B vectors + 1 broadcast of 16 ymm (the classic Haswell tile).
// - scalar 6x16: portable, for CPUs without AVX2 (and to hold the vector paths to in tests).
#include "gemm_kernels.h"

#include <utility>

namespace engine {

namespace {

// A(i, p) for the two in-place layouts of A.
template <bool K_CONTIG>
inline const float* a_at(const float* a, int64_t lda, int i, int p) {
  return K_CONTIG ? a + i * lda + p : a + (int64_t)p * lda + i;
}

template <int R, bool K_CONTIG>
void kernel_scalar(int kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, float alpha,
                   float beta, int cols) {
  constexpr int NR = 16;
  float acc[R][NR] = {};
  for (int p = 0; p < kc; p++, b += NR)
    for (int i = 0; i < R; i++) {
      const float av = *a_at<K_CONTIG>(a, lda, i, p);
      for (int j = 0; j < NR; j++) acc[i][j] += av * b[j];
    }
  for (int i = 0; i < R; i++)
    for (int j = 0; j < cols; j++) {
      float* cij = c + i * ldc + j;
      *cij = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * *cij;
    }
}

#if ENGINE_X86
template <int R, bool K_CONTIG>
TARGET_AVX2 void kernel_avx2(int kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, float alpha,
                             float beta, int cols) {
  __m256 acc0[R], acc1[R];
#pragma GCC unroll 12
  for (int i = 0; i < R; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
  const float* rows[R];
#pragma GCC unroll 12
  for (int i = 0; i < R; i++) rows[i] = a + i * lda;
#pragma GCC unroll 2
  for (int p = 0; p < kc; p++, b += 16) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    const float* ap = a + (int64_t)p * lda;
#pragma GCC unroll 12
    for (int i = 0; i < R; i++) {
      const __m256 av = _mm256_broadcast_ss(K_CONTIG ? rows[i] + p : ap + i);
      acc0[i] = _mm256_fmadd_ps(av, b0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(av, b1, acc1[i]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), iota);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), iota);
#pragma GCC unroll 12
  for (int i = 0; i < R; i++) {
    float* row = c + i * ldc;
    __m256 x0 = _mm256_mul_ps(acc0[i], va), x1 = _mm256_mul_ps(acc1[i], va);
    if (cols == 16) {
      if (beta != 0.0f) {
        x0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), x0);
        x1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), x1);
      }
      _mm256_storeu_ps(row, x0);
      _mm256_storeu_ps(row + 8, x1);
    } else {
      if (beta != 0.0f) {
        x0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(row, m0), x0);
        x1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(row + 8, m1), x1);
      }
      _mm256_maskstore_ps(row, m0, x0);
      _mm256_maskstore_ps(row + 8, m1, x1);
    }
  }
}

template <int R, bool K_CONTIG>
TARGET_AVX512 void kernel_avx512(int kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
                                 float alpha, float beta, int cols) {
  __m512 acc0[R], acc1[R];
#pragma GCC unroll 12
  for (int i = 0; i < R; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
  const float* rows[R];
#pragma GCC unroll 12
  for (int i = 0; i < R; i++) rows[i] = a + i * lda;
#pragma GCC unroll 2
  for (int p = 0; p < kc; p++, b += 32) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
    const float* ap = a + (int64_t)p * lda;
#pragma GCC unroll 12
    for (int i = 0; i < R; i++) {
      const __m512 av = _mm512_set1_ps(K_CONTIG ? rows[i][p] : ap[i]);
      acc0[i] = _mm512_fmadd_ps(av, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(av, b1, acc1[i]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
  const __mmask16 m1 = cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
#pragma GCC unroll 12
  for (int i = 0; i < R; i++) {
    float* row = c + i * ldc;
    __m512 x0 = _mm512_mul_ps(acc0[i], va), x1 = _mm512_mul_ps(acc1[i], va);
    if (beta != 0.0f) {
      x0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), x0);
      x1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), x1);
    }
    _mm512_mask_storeu_ps(row, m0, x0);
    _mm512_mask_storeu_ps(row + 16, m1, x1);
  }
}
#endif

template <template <int, bool> class K, int... R>
GemmKernels make_kernels(SimdLevel level, int mr, int nr, int kc, int nc, std::integer_sequence<int, R...>) {
  GemmKernels g{mr, nr, kc, nc, {}, gemm_pack_b(level, nr)};
  ((g.kernel[0][R + 1] = K<R + 1, false>::fn, g.kernel[1][R + 1] = K<R + 1, true>::fn), ...);
  return g;
}

template <int R, bool K_CONTIG>
struct Scalar { static constexpr GemmMicroKernel fn = kernel_scalar<R, K_CONTIG>; };
#if ENGINE_X86
template <int R, bool K_CONTIG>
struct Avx2 { static constexpr GemmMicroKernel fn = kernel_avx2<R, K_CONTIG>; };
template <int R, bool K_CONTIG>
struct Avx512 { static constexpr GemmMicroKernel fn = kernel_avx512<R, K_CONTIG>; };
#endif

}  // namespace

const GemmKernels& gemm_kernels(SimdLevel level) {
  // kc x nr floats of B (one panel) stay in L1 beside an mr x kc strip of A; kc x nc (one packed
  // block) in L2.
  static const GemmKernels scalar = make_kernels<Scalar>(SimdLevel::scalar, 6, 16, 256, 1024, std::make_integer_sequence<int, 6>());
#if ENGINE_X86
  static const GemmKernels avx2 = make_kernels<Avx2>(SimdLevel::avx2, 6, 16, 256, 512, std::make_integer_sequence<int, 6>());
  static const GemmKernels avx512 = make_kernels<Avx512>(SimdLevel::avx512, 12, 32, 256, 512, std::make_integer_sequence<int, 12>());
  if (level == SimdLevel::avx512) return avx512;
  if (level == SimdLevel::avx2) return avx2;
#endif
  return scalar;
}

}  // namespace engine
