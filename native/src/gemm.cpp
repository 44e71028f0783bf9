// SGEMM, BLIS-style: K is cut into KC slices and N into NC blocks; each B block is packed once
// into NR-wide column panels (shared by all threads), each thread packs its own MC x KC block of A
// into MR-tall row panels, and a register-tiled MR x NR micro-kernel runs over the panels.
// Threads split the M panels (or, for short M, the N panels) of C with a static partition, and
// every C element sums K in the same order on whichever thread owns it, so results are
// bit-identical run to run and for any thread count.
// Micro-kernels: AVX-512 6x32, AVX2+FMA 6x16, portable scalar 6x16; chosen at run time (simd.h).
// Linear layers (matmul_forward/backward, HF weight layout (OC, C)) are thin wrappers over sgemm.
#include "gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "ops.h"
#include "parallel.h"
#include "simd.h"

namespace engine {

namespace {

constexpr int MR = 6;  // rows of the micro-tile (all levels)

// c (MR, nr) with row stride ldc = alpha * a_panel (kc, MR)^T-packed @ b_panel (kc, nr) + beta * c
using KernelFn = void (*)(int kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta);

struct KernelSpec {
  int nr, mc, kc, nc;
  KernelFn fn;
};

// ---------------------------------------------------------------------------- micro-kernels

template <int NR>
void kernel_scalar(int kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
  float acc[MR][NR] = {};
  for (int p = 0; p < kc; p++, a += MR, b += NR)
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < NR; j++) acc[i][j] += a[i] * b[j];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++)
      c[i * ldc + j] = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c[i * ldc + j];
}

#if ENGINE_X86
// row[0..16) = alpha * (x0, x1) + beta * row (beta == 0: row is not read)
TARGET_AVX2 inline void store_row_avx2(float* row, __m256 x0, __m256 x1, float alpha, float beta) {
  const __m256 va = _mm256_set1_ps(alpha);
  x0 = _mm256_mul_ps(x0, va);
  x1 = _mm256_mul_ps(x1, va);
  if (beta != 0.0f) {
    const __m256 vb = _mm256_set1_ps(beta);
    x0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), x0);
    x1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), x1);
  }
  _mm256_storeu_ps(row, x0);
  _mm256_storeu_ps(row + 8, x1);
}

// row[0..32) = alpha * (x0, x1) + beta * row (beta == 0: row is not read)
TARGET_AVX512 inline void store_row_avx512(float* row, __m512 x0, __m512 x1, float alpha, float beta) {
  const __m512 va = _mm512_set1_ps(alpha);
  x0 = _mm512_mul_ps(x0, va);
  x1 = _mm512_mul_ps(x1, va);
  if (beta != 0.0f) {
    const __m512 vb = _mm512_set1_ps(beta);
    x0 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(row), x0);
    x1 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(row + 16), x1);
  }
  _mm512_storeu_ps(row, x0);
  _mm512_storeu_ps(row + 16, x1);
}

TARGET_AVX2 void kernel_avx2(int kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
  for (int i = 0; i < MR; i++) _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);  // C tile is written last
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma GCC unroll 4
  for (int p = 0; p < kc; p++, a += MR, b += 16) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), av;
    av = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a + 4); c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a + 5); c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);
  }
  store_row_avx2(c + 0 * ldc, c00, c01, alpha, beta);
  store_row_avx2(c + 1 * ldc, c10, c11, alpha, beta);
  store_row_avx2(c + 2 * ldc, c20, c21, alpha, beta);
  store_row_avx2(c + 3 * ldc, c30, c31, alpha, beta);
  store_row_avx2(c + 4 * ldc, c40, c41, alpha, beta);
  store_row_avx2(c + 5 * ldc, c50, c51, alpha, beta);
}

TARGET_AVX512 void kernel_avx512(int kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                                 float beta) {
  for (int i = 0; i < MR; i++) _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma GCC unroll 4
  for (int p = 0; p < kc; p++, a += MR, b += 32) {
    __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), av;
    av = _mm512_set1_ps(a[0]); c00 = _mm512_fmadd_ps(av, b0, c00); c01 = _mm512_fmadd_ps(av, b1, c01);
    av = _mm512_set1_ps(a[1]); c10 = _mm512_fmadd_ps(av, b0, c10); c11 = _mm512_fmadd_ps(av, b1, c11);
    av = _mm512_set1_ps(a[2]); c20 = _mm512_fmadd_ps(av, b0, c20); c21 = _mm512_fmadd_ps(av, b1, c21);
    av = _mm512_set1_ps(a[3]); c30 = _mm512_fmadd_ps(av, b0, c30); c31 = _mm512_fmadd_ps(av, b1, c31);
    av = _mm512_set1_ps(a[4]); c40 = _mm512_fmadd_ps(av, b0, c40); c41 = _mm512_fmadd_ps(av, b1, c41);
    av = _mm512_set1_ps(a[5]); c50 = _mm512_fmadd_ps(av, b0, c50); c51 = _mm512_fmadd_ps(av, b1, c51);
  }
  store_row_avx512(c + 0 * ldc, c00, c01, alpha, beta);
  store_row_avx512(c + 1 * ldc, c10, c11, alpha, beta);
  store_row_avx512(c + 2 * ldc, c20, c21, alpha, beta);
  store_row_avx512(c + 3 * ldc, c30, c31, alpha, beta);
  store_row_avx512(c + 4 * ldc, c40, c41, alpha, beta);
  store_row_avx512(c + 5 * ldc, c50, c51, alpha, beta);
}
#endif

KernelSpec spec_for(SimdLevel level) {
#if ENGINE_X86
  // mc * kc floats of A stay in L2, one kc x nr panel of B in L1, the kc x nc block of B in L3.
  if (level == SimdLevel::avx512) return {32, 144, 256, 4096, kernel_avx512};  // untuned: no AVX-512 host here
  if (level == SimdLevel::avx2) return {16, 144, 256, 4096, kernel_avx2};
#endif
  return {16, 96, 256, 2048, kernel_scalar<16>};
}

// ---------------------------------------------------------------------------- packing

// op(A) rows [i0, i0 + rows) x k range [p0, p0 + kc) -> consecutive kc x MR panels (zero rows past
// `rows`). A transposed A is read row by row of storage, so each read is a contiguous run of rows.
void pack_a_block(float* dst, const float* A, int lda, bool trans_a, int i0, int rows, int p0, int kc) {
  const int panels = (rows + MR - 1) / MR;
  const int64_t panel_size = (int64_t)kc * MR;
  if (!trans_a) {
    for (int q = 0; q < panels; q++) {
      float* d = dst + q * panel_size;
      for (int r = 0; r < MR; r++) {
        const int row = q * MR + r;
        if (row < rows) {
          const float* src = A + (int64_t)(i0 + row) * lda + p0;
          for (int p = 0; p < kc; p++) d[p * MR + r] = src[p];
        } else {
          for (int p = 0; p < kc; p++) d[p * MR + r] = 0.0f;
        }
      }
    }
  } else {  // A stored (K, M): op(A)(i, p) = A[p * lda + i]
    for (int p = 0; p < kc; p++) {
      const float* src = A + (int64_t)(p0 + p) * lda + i0;
      for (int q = 0; q < panels; q++) {
        float* d = dst + q * panel_size + p * MR;
        const int n = std::min(MR, rows - q * MR);
        int r = 0;
        for (; r < n; r++) d[r] = src[q * MR + r];
        for (; r < MR; r++) d[r] = 0.0f;
      }
    }
  }
}

// op(B) k range [p0, p0 + kc) x cols [j0, j0 + cols) -> kc x nr panel (zero columns past N).
void pack_b_panel(float* dst, const float* B, int ldb, bool trans_b, int nr, int p0, int kc, int j0, int cols) {
  if (!trans_b) {
    for (int p = 0; p < kc; p++) {
      const float* src = B + (int64_t)(p0 + p) * ldb + j0;
      float* d = dst + (int64_t)p * nr;
      int c = 0;
      for (; c < cols; c++) d[c] = src[c];
      for (; c < nr; c++) d[c] = 0.0f;
    }
  } else {  // B stored (N, K): op(B)(p, j) = B[j * ldb + p]
    for (int c = 0; c < nr; c++) {
      if (c < cols) {
        const float* src = B + (int64_t)(j0 + c) * ldb + p0;
        for (int p = 0; p < kc; p++) dst[(int64_t)p * nr + c] = src[p];
      } else {
        for (int p = 0; p < kc; p++) dst[(int64_t)p * nr + c] = 0.0f;
      }
    }
  }
}

// 64-byte aligned scratch that lives as long as its thread (grows, never shrinks).
struct Scratch {
  float* data = nullptr;
  size_t size = 0;
  float* get(size_t n) {
    if (n > size) {
      std::free(data);
      data = static_cast<float*>(std::aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64));
      size = n;
    }
    return data;
  }
  ~Scratch() { std::free(data); }
};
thread_local Scratch a_scratch, b_scratch;

// One micro-tile: full tiles go straight to C, edge tiles through a small buffer.
inline void run_tile(const KernelSpec& s, int kc, const float* ap, const float* bp, float* c, int ldc, int rows,
                     int cols, float alpha, float beta) {
  if (rows == MR && cols == s.nr) {
    s.fn(kc, ap, bp, c, ldc, alpha, beta);
    return;
  }
  alignas(64) float tmp[MR * 32];
  s.fn(kc, ap, bp, tmp, s.nr, 1.0f, 0.0f);
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < cols; j++) {
      float v = alpha * tmp[i * s.nr + j];
      c[(int64_t)i * ldc + j] = beta == 0.0f ? v : v + beta * c[(int64_t)i * ldc + j];
    }
}

void scale_c(int M, int N, float beta, float* C, int ldc) {
  for (int i = 0; i < M; i++) {
    float* row = C + (int64_t)i * ldc;
    if (beta == 0.0f) std::fill(row, row + N, 0.0f);
    else if (beta != 1.0f) for (int j = 0; j < N; j++) row[j] *= beta;
  }
}

void gemm_driver(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                 int ldb, float beta, float* C, int ldc, bool threaded) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) return scale_c(M, N, beta, C, ldc);
  const KernelSpec s = spec_for(simd());
  const int threads = threaded ? ThreadPool::get().threads() : 1;
  auto for_range = [&](int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    if (threaded) parallel_for(n, fn);
    else fn(0, n);
  };
  const int m_panels = (M + MR - 1) / MR;
  const int panels_per_mc = s.mc / MR;
  const bool split_m = !threaded || m_panels >= 2 * threads || m_panels >= (N + s.nr - 1) / s.nr;

  for (int pc = 0; pc < K; pc += s.kc) {
    const int kc = std::min(s.kc, K - pc);
    const float beta_now = pc == 0 ? beta : 1.0f;
    for (int jc = 0; jc < N; jc += s.nc) {
      const int nc = std::min(s.nc, N - jc);
      const int n_panels = (nc + s.nr - 1) / s.nr;
      const int64_t b_panel = (int64_t)kc * s.nr;
      float* bpack = b_scratch.get((size_t)n_panels * b_panel);
      for_range(n_panels, [&](int64_t j0, int64_t j1) {
        for (int64_t jp = j0; jp < j1; jp++) {
          const int col = (int)jp * s.nr;
          pack_b_panel(bpack + jp * b_panel, B, ldb, trans_b, s.nr, pc, kc, jc + col, std::min(s.nr, nc - col));
        }
      });
      const int64_t a_panel = (int64_t)kc * MR;
      if (split_m) {
        // Each thread owns a contiguous range of C's row panels and packs its own A.
        for_range(m_panels, [&](int64_t p0, int64_t p1) {
          float* apack = a_scratch.get((size_t)panels_per_mc * a_panel);
          for (int64_t ip = p0; ip < p1; ip += panels_per_mc) {
            const int64_t ip_end = std::min<int64_t>(ip + panels_per_mc, p1);
            const int row0 = (int)ip * MR;
            pack_a_block(apack, A, lda, trans_a, row0, std::min((int)(ip_end - ip) * MR, M - row0), pc, kc);
            for (int jp = 0; jp < n_panels; jp++) {
              const int col = jp * s.nr;
              const int cols = std::min(s.nr, nc - col);
              for (int64_t q = ip; q < ip_end; q++) {
                const int row = (int)q * MR;
                run_tile(s, kc, apack + (q - ip) * a_panel, bpack + jp * b_panel, C + (int64_t)row * ldc + jc + col,
                         ldc, std::min(MR, M - row), cols, alpha, beta_now);
              }
            }
          }
        });
      } else {
        // Few rows: pack all of A once on this thread, then split C's column panels.
        float* apack = a_scratch.get((size_t)m_panels * a_panel);
        pack_a_block(apack, A, lda, trans_a, 0, M, pc, kc);
        parallel_for(n_panels, [&](int64_t j0, int64_t j1) {
          for (int64_t jp = j0; jp < j1; jp++) {
            const int col = (int)jp * s.nr;
            const int cols = std::min(s.nr, nc - col);
            for (int q = 0; q < m_panels; q++) {
              const int row = q * MR;
              run_tile(s, kc, apack + q * a_panel, bpack + jp * b_panel, C + (int64_t)row * ldc + jc + col, ldc,
                       std::min(MR, M - row), cols, alpha, beta_now);
            }
          }
        });
      }
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------- entry points

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
           int ldb, float beta, float* C, int ldc) {
  gemm_driver(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, true);
}

void sgemm_serial(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                  const float* B, int ldb, float beta, float* C, int ldc) {
  gemm_driver(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, false);
}

// out (N, OC) = inp (N, C) @ weight (OC, C)^T [+ bias (OC)]
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC) {
  if (bias) {
    parallel_for(N, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; n++) std::memcpy(out + n * OC, bias, sizeof(float) * OC);
    });
  }
  sgemm(false, true, N, OC, C, 1.0f, inp, C, weight, C, bias ? 1.0f : 0.0f, out, OC);
}

// dinp (N, C) += dout (N, OC) @ weight (OC, C); dweight (OC, C) += dout^T (OC, N) @ inp (N, C)
void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, int N,
                     int C, int OC) {
  if (dinp) sgemm(false, false, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
  if (dweight) sgemm(true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
}

}  // namespace engine
