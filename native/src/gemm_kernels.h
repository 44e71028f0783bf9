// SGEMM micro-kernels, one set per SIMD level (simd.h): each computes one register tile
//   C (rows, cols) = alpha * A (rows, kc) * Bp (kc, cols) + beta * C   (beta == 0: C is not read)
// from A read in place (no packing: A is either k-contiguous, row i at a + i * lda, or
// m-contiguous, k-step p at a + p * lda) and a packed B panel (k-step p at b + p * nr, zero-padded
// to nr columns). rows <= mr picks the kernel instantiation; cols <= nr is masked at the store.
// Every C element is one FMA chain over k in order, whatever the tile's size or position, so a
// product's bits do not depend on how the driver splits C among threads.
#pragma once
#include <cstdint>

#include "simd.h"

namespace engine {

using GemmMicroKernel = void (*)(int kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
                                 float alpha, float beta, int cols);

constexpr int kGemmMaxMr = 12;

// Packs op(B) rows (k) [p0, p0 + kc) x columns [j0, j0 + cols) into ceil(cols / nr) panels of
// kc x nr floats (panel q at dst + q * kc * nr, k-step p at + p * nr), zero past `cols`.
// op(B) = B stored (K, N) row-major, or B^T with B stored (N, K) (trans_b). gemm_pack.cpp.
using GemmPackB = void (*)(float* dst, const float* B, int64_t ldb, bool trans_b, int p0, int kc, int j0, int cols);
// The packing routine of a SIMD level for its panel width nr (the scalar one for other widths).
GemmPackB gemm_pack_b(SimdLevel level, int nr);

struct GemmKernels {
  int mr, nr;  // register tile
  int kc, nc;  // K slice (B panel kc x nr stays in L1) and N block per pack (kc x nc B block stays in L2)
  // [k_contiguous][rows]: k_contiguous = 1 when A's rows are contiguous in k (op(A) = A), 0 when
  // A is stored transposed (op(A) = A^T, contiguous in m). Index 0 of rows is unused.
  GemmMicroKernel kernel[2][kGemmMaxMr + 1];
  GemmPackB pack_b;
};

// The kernels and blocking for a SIMD level (levels above what this build can emit fall back).
const GemmKernels& gemm_kernels(SimdLevel level);

}  // namespace engine
