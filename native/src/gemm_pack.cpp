// Packing of op(B) into the micro-kernels' panels (gemm_kernels.h), one routine per SIMD level.
// A block of op(B): rows (k) [p0, p0 + kc) x columns [j0, j0 + cols) becomes ceil(cols / nr)
// panels of kc x nr floats, panel q at dst + q * kc * nr, k-step p of it at + p * nr, columns
// past `cols` zero. Pure copies: every level writes the same bits.
// - op(B) = B (B stored (K, N)): each k-row of the block is one contiguous read.
// - op(B) = B^T (B stored (N, K), a linear layer's weight): square tiles of B are transposed in
//   registers (16 x 16 floats for AVX-512, 8 x 8 for AVX2), reading each of the tile's B rows
//   contiguously, instead of one float at a time with a strided store per float.
#include <algorithm>

#include "gemm_kernels.h"

namespace engine {

namespace {

template <int NR>
void pack_b_scalar(float* dst, const float* B, int64_t ldb, bool trans_b, int p0, int kc, int j0, int cols) {
  const int64_t panel = (int64_t)kc * NR;
  for (int q = 0; q * NR < cols; q++) {
    const int n = std::min(NR, cols - q * NR), j = j0 + q * NR;
    for (int p = 0; p < kc; p++) {
      float* d = dst + q * panel + (int64_t)p * NR;
      for (int c = 0; c < NR; c++) d[c] = c >= n ? 0.0f : trans_b ? B[(j + c) * ldb + p0 + p] : B[(p0 + p) * ldb + j + c];
    }
  }
}

#if ENGINE_X86
TARGET_AVX512 inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; i++) {  // per 128-bit lane: pairs of rows interleaved
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; g++) {  // r[4g + m], lane L: rows 4g..4g+3 of column 4L + m
    r[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int m = 0; m < 4; m++) {  // a 4 x 4 transpose of 128-bit lanes per m
    const __m512 x0 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x88), x1 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xdd);
    const __m512 x2 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x88);
    const __m512 x3 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xdd);
    t[m] = _mm512_shuffle_f32x4(x0, x2, 0x88);
    t[8 + m] = _mm512_shuffle_f32x4(x0, x2, 0xdd);
    t[4 + m] = _mm512_shuffle_f32x4(x1, x3, 0x88);
    t[12 + m] = _mm512_shuffle_f32x4(x1, x3, 0xdd);
  }
  for (int i = 0; i < 16; i++) r[i] = t[i];
}

TARGET_AVX512 inline __mmask16 mask16(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << std::max(n, 0)) - 1); }

TARGET_AVX512 void pack_b_avx512(float* dst, const float* B, int64_t ldb, bool trans_b, int p0, int kc, int j0,
                                 int cols) {
  constexpr int NR = 32;
  const int64_t panel = (int64_t)kc * NR;
  if (!trans_b) {
    for (int p = 0; p < kc; p++) {
      const float* src = B + (p0 + p) * ldb + j0;
      float* d = dst + (int64_t)p * NR;
      for (int q = 0; q * NR < cols; q++) {
        const int n = cols - q * NR;
        _mm512_storeu_ps(d + q * panel, _mm512_maskz_loadu_ps(mask16(n), src + q * NR));
        _mm512_storeu_ps(d + q * panel + 16, _mm512_maskz_loadu_ps(mask16(n - 16), src + q * NR + 16));
      }
    }
    return;
  }
  for (int q = 0; q * NR < cols; q++)
    for (int h = 0; h < NR; h += 16) {  // 16 columns of the panel: 16 rows of B
      const int rows = std::min(16, cols - q * NR - h);  // <= 0: a zero half (padding)
      const float* src = B + (rows > 0 ? (j0 + q * NR + h) * ldb + p0 : 0);
      float* d = dst + q * panel + h;
      for (int p = 0; p < kc; p += 16) {
        const __mmask16 km = mask16(kc - p);
        __m512 r[16];
        for (int c = 0; c < 16; c++) r[c] = c < rows ? _mm512_maskz_loadu_ps(km, src + c * ldb + p) : _mm512_setzero_ps();
        transpose16(r);
        for (int i = 0; i < std::min(16, kc - p); i++) _mm512_storeu_ps(d + (int64_t)(p + i) * NR, r[i]);
      }
    }
}

TARGET_AVX2 inline void transpose8(__m256 r[8]) {
  __m256 t[8], s[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 2; g++) {  // s[4g + m], lane L: rows 4g..4g+3 of column 4L + m
    s[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
    s[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
    s[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
    s[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int m = 0; m < 4; m++) {
    r[m] = _mm256_permute2f128_ps(s[m], s[4 + m], 0x20);
    r[4 + m] = _mm256_permute2f128_ps(s[m], s[4 + m], 0x31);
  }
}

TARGET_AVX2 inline __m256i mask8(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

TARGET_AVX2 void pack_b_avx2(float* dst, const float* B, int64_t ldb, bool trans_b, int p0, int kc, int j0,
                             int cols) {
  constexpr int NR = 16;
  const int64_t panel = (int64_t)kc * NR;
  if (!trans_b) {
    for (int p = 0; p < kc; p++) {
      const float* src = B + (p0 + p) * ldb + j0;
      float* d = dst + (int64_t)p * NR;
      for (int q = 0; q * NR < cols; q++) {
        const int n = cols - q * NR;
        _mm256_storeu_ps(d + q * panel, _mm256_maskload_ps(src + q * NR, mask8(n)));
        _mm256_storeu_ps(d + q * panel + 8, _mm256_maskload_ps(src + q * NR + 8, mask8(n - 8)));
      }
    }
    return;
  }
  for (int q = 0; q * NR < cols; q++)
    for (int h = 0; h < NR; h += 8) {
      const int rows = std::min(8, cols - q * NR - h);  // <= 0: a zero half (padding)
      const float* src = B + (rows > 0 ? (j0 + q * NR + h) * ldb + p0 : 0);
      float* d = dst + q * panel + h;
      for (int p = 0; p < kc; p += 8) {
        const __m256i km = mask8(kc - p);
        __m256 r[8];
        for (int c = 0; c < 8; c++) r[c] = c < rows ? _mm256_maskload_ps(src + c * ldb + p, km) : _mm256_setzero_ps();
        transpose8(r);
        for (int i = 0; i < std::min(8, kc - p); i++) _mm256_storeu_ps(d + (int64_t)(p + i) * NR, r[i]);
      }
    }
}
#endif

}  // namespace

GemmPackB gemm_pack_b(SimdLevel level, int nr) {
#if ENGINE_X86
  if (level == SimdLevel::avx512 && nr == 32) return pack_b_avx512;
  if (level == SimdLevel::avx2 && nr == 16) return pack_b_avx2;
#endif
  if (nr == 32) return pack_b_scalar<32>;
  return pack_b_scalar<16>;
}

}  // namespace engine
