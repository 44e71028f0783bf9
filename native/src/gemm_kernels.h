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

struct GemmKernels {
  int mr, nr;  // register tile
  int kc, nc;  // K slice (B panel kc x nr stays in L1) and N block per pack (kc x nc B block stays in L2)
  // [k_contiguous][rows]: k_contiguous = 1 when A's rows are contiguous in k (op(A) = A), 0 when
  // A is stored transposed (op(A) = A^T, contiguous in m). Index 0 of rows is unused.
  GemmMicroKernel kernel[2][kGemmMaxMr + 1];
};

// The kernels and blocking for a SIMD level (levels above what this build can emit fall back).
const GemmKernels& gemm_kernels(SimdLevel level);

}  // namespace engine
