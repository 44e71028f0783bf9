// SGEMM for small and skinny products as much as for large ones (BLIS "sup"-style):
// - A is never packed: the micro-kernels (gemm_kernels.h) read it in place, row-strided (op(A) = A)
//   or column-strided (op(A) = A^T), so no time goes to copying the operand that is reused least.
// - B is packed (gemm_pack.cpp) per K slice (kc) and N block (nc) into nr-wide panels,
//   zero-padded, one panel per kernel call, kept in L1 while a thread walks its rows of A over it.
// - Threads split C once per call with a static partition and run the whole K loop on their own
//   part: by columns when C has enough nr-wide column panels (each thread packs only the B it
//   uses, so no barrier), else by rows (each thread packs the B it needs). One pool dispatch per
//   call; no allocation once a thread's pack buffer has grown.
// - Every C element sums K in the same order (K slices in order, each one FMA chain) whichever
//   thread or tile computes it: results are bit-identical run to run and for any thread count.
// Linear layers (matmul_forward/backward, HF weight layout (OC, C)) are thin wrappers over sgemm.
#include "gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "gemm_kernels.h"
#include "ops.h"
#include "parallel.h"
#include "simd.h"

namespace engine {

namespace {

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

// Rows [0, rows) of a transposed A's k-slice (k-step p at a + p * lda) -> strips of mr rows,
// k-step p of strip s at dst + s * kc * mr + p * mr. Read along A's contiguous rows, a whole
// block at a time, so the hardware prefetcher streams it; the kernels then find each strip
// contiguous and in L1 across all the panels of B.
template <int MR>
void pack_a_block_transposed(float* dst, const float* a, int64_t lda, int rows, int kc) {
  const int64_t strip_size = (int64_t)kc * MR;
  for (int p = 0; p < kc; p++, a += lda) {
    int r = 0;
    for (float* d = dst + p * MR; r + MR <= rows; r += MR, d += strip_size) std::memcpy(d, a + r, MR * sizeof(float));
    for (float* d = dst + (r / MR) * strip_size + p * MR; r < rows; r++, d++) *d = a[r];
  }
}

void pack_a_block_transposed(float* dst, const float* a, int64_t lda, int mr, int rows, int kc) {
  if (mr == 12) return pack_a_block_transposed<12>(dst, a, lda, rows, kc);
  return pack_a_block_transposed<6>(dst, a, lda, rows, kc);
}

void scale_c(int M, int N, float beta, float* C, int ldc) {
  for (int i = 0; i < M; i++) {
    float* row = C + (int64_t)i * ldc;
    if (beta == 0.0f) std::fill(row, row + N, 0.0f);
    else if (beta != 1.0f) for (int j = 0; j < N; j++) row[j] *= beta;
  }
}

// Row strips of a transposed A packed per block: 16 strips of 12 rows x kc 256 floats is 192 KiB,
// which stays in L2 beside the packed B block.
constexpr int kMcStrips = 16;

struct Problem {
  bool trans_a, trans_b;
  int M, N, K;
  float alpha;
  const float* A;
  int lda;
  const float* B;
  int ldb;
  float beta;
  float* C;
  int ldc;
};

// K slices of near-equal size, at most kc each (a fixed function of K: the summation order).
int slice_size(int K, int kc) {
  const int slices = (K + kc - 1) / kc;
  return (K + slices - 1) / slices;
}

// C rows [i0, i1) x columns [j0, j1) on the calling thread, over all of K.
void gemm_block(const GemmKernels& g, const Problem& P, int i0, int i1, int j0, int j1) {
  if (i0 >= i1 || j0 >= j1) return;
  const int kc_max = slice_size(P.K, g.kc);
  const GemmMicroKernel* kernels = g.kernel[P.trans_a ? 0 : 1];
  float* bpack = b_scratch.get((size_t)kc_max * std::min(g.nc, ((j1 - j0 + g.nr - 1) / g.nr) * g.nr));
  const int mc = (kMcStrips * g.mr);  // rows of a transposed A packed at once
  float* apack = P.trans_a ? a_scratch.get((size_t)kc_max * mc) : nullptr;
  for (int pc = 0; pc < P.K; pc += kc_max) {
    const int kc = std::min(kc_max, P.K - pc);
    const float beta = pc == 0 ? P.beta : 1.0f;
    // A's k-slice origin: row-strided A advances along its rows, transposed A down its rows.
    const float* a_slice = P.trans_a ? P.A + (int64_t)pc * P.lda : P.A + pc;
    for (int jc = j0; jc < j1; jc += g.nc) {
      const int nc = std::min(g.nc, j1 - jc);
      const int panels = (nc + g.nr - 1) / g.nr;
      const int64_t panel_size = (int64_t)kc * g.nr;
      g.pack_b(bpack, P.B, P.ldb, P.trans_b, pc, kc, jc, nc);
      for (int i = i0; i < i1; i += g.mr) {
        const int rows = std::min(g.mr, i1 - i);
        const float* a = a_slice + (int64_t)i * P.lda;
        int64_t lda = P.lda;
        if (P.trans_a) {
          const int in_block = (i - i0) % mc;
          if (in_block == 0) pack_a_block_transposed(apack, a_slice + i, P.lda, g.mr, std::min(mc, i1 - i), kc);
          a = apack + (int64_t)(in_block / g.mr) * kc * g.mr;
          lda = g.mr;
        }
        float* c = P.C + (int64_t)i * P.ldc + jc;
        for (int q = 0; q < panels; q++)
          kernels[rows](kc, a, lda, bpack + q * panel_size, c + q * g.nr, P.ldc, P.alpha, beta,
                        std::min(g.nr, nc - q * g.nr));
      }
    }
  }
}

// A few rows against a big B stored (N, K) (an LM head: 256 tokens x 50257 vocab rows): packing
// B would copy (and transpose) all of it for a handful of rows, as much memory traffic as the
// math. C^T = B op(A)^T instead reads B in place as the unpacked operand, packs only op(A), and
// is transposed into C block by block while the block is in cache. Each element is the same FMA
// chain over the same K slices as in the direct product (beta == 0), so the bits are too.
bool wants_transposed_product(const Problem& P) {
  return P.trans_b && P.beta == 0.0f && P.M >= 16 && P.N >= 16 * P.M && (int64_t)P.N * P.K >= (1 << 22);
}

// A block of C^T: 128K floats (512 KiB) stay in L2 beside one packed K slice of op(A)^T.
constexpr int64_t kCtBlockFloats = 128 * 1024;
thread_local Scratch ct_scratch;

// C^T block (rows, M) at ct -> C columns [j0, j0 + rows), 16 rows of C at a time: each C row is
// written sequentially while the 16 consecutive floats read from each ct row share a cache line.
void copy_transposed(const Problem& P, const float* ct, int j0, int rows) {
  constexpr int kRows = 16;
  for (int i0 = 0; i0 < P.M; i0 += kRows) {
    const int i1 = std::min(P.M, i0 + kRows);
    for (int r = 0; r < rows; r++) {
      const float* src = ct + (int64_t)r * P.M;
      for (int i = i0; i < i1; i++) P.C[(int64_t)i * P.ldc + j0 + r] = src[i];
    }
  }
}

// C columns [j0, j1) (rows of C^T) on the calling thread: op(A)^T is packed once for every K
// slice, then each block of C^T runs slice by slice (beta 0, then 1, as gemm_block) over B's
// rows in place and is copied into C.
void transposed_columns(const GemmKernels& g, const Problem& P, int j0, int j1) {
  if (j0 >= j1) return;
  const int kc_max = slice_size(P.K, g.kc), slices = (P.K + kc_max - 1) / kc_max;
  const int panels = (P.M + g.nr - 1) / g.nr;
  const int64_t slice_floats = (int64_t)kc_max * panels * g.nr;
  float* bpack = b_scratch.get((size_t)(slice_floats * slices));
  for (int s = 0; s < slices; s++) {  // op(A)^T (K, M) is A stored (M, K) when A is not transposed
    const int pc = s * kc_max;
    g.pack_b(bpack + s * slice_floats, P.A, P.lda, !P.trans_a, pc, std::min(kc_max, P.K - pc), 0, P.M);
  }
  const int block = std::max<int>(g.mr, (int)(kCtBlockFloats / P.M) / g.mr * g.mr);
  float* ct = ct_scratch.get((size_t)block * P.M);
  const GemmMicroKernel* kernels = g.kernel[1];  // B's rows are contiguous in k
  for (int r0 = j0; r0 < j1; r0 += block) {
    const int r1 = std::min(j1, r0 + block);
    for (int s = 0; s < slices; s++) {
      const int pc = s * kc_max, kc = std::min(kc_max, P.K - pc);
      const float beta = s == 0 ? 0.0f : 1.0f;
      for (int i = r0; i < r1; i += g.mr) {
        const float* b = P.B + (int64_t)i * P.ldb + pc;
        float* c = ct + (int64_t)(i - r0) * P.M;
        for (int q = 0; q < panels; q++)
          kernels[std::min(g.mr, r1 - i)](kc, b, P.ldb, bpack + s * slice_floats + (int64_t)q * kc * g.nr,
                                          c + q * g.nr, P.M, P.alpha, beta, std::min(g.nr, P.M - q * g.nr));
      }
    }
    copy_transposed(P, ct, r0, r1 - r0);
  }
}

// Threads split C's columns (B's rows) evenly: each reads its share of B once.
void transposed_product(const Problem& P, bool threaded) {
  const GemmKernels& g = gemm_kernels(simd());
  const int threads = threaded ? ThreadPool::get().threads() : 1;
  if (threads == 1) return transposed_columns(g, P, 0, P.N);
  parallel_for(threads, [&g, &P, threads](int64_t t0, int64_t t1) {
    transposed_columns(g, P, (int)(P.N * t0 / threads), (int)(P.N * t1 / threads));
  });
}

void gemm_driver(const Problem& P, bool threaded) {
  if (P.M <= 0 || P.N <= 0) return;
  if (P.K <= 0 || P.alpha == 0.0f) return scale_c(P.M, P.N, P.beta, P.C, P.ldc);
  if (wants_transposed_product(P)) return transposed_product(P, threaded);
  const GemmKernels& g = gemm_kernels(simd());
  const int threads = threaded ? ThreadPool::get().threads() : 1;
  const int64_t flops = 2LL * P.M * P.N * P.K;
  if (threads == 1 || flops < (1 << 18)) return gemm_block(g, P, 0, P.M, 0, P.N);
  // Split by columns, in whole nr-wide panels, when they divide evenly enough among the threads,
  // else by rows, evenly (the kernels take any row count, so no thread pads a partial tile).
  struct Split {
    const GemmKernels& g;
    const Problem& P;
    int threads, col_panels;
    bool by_cols;
  };
  const int col_panels = (P.N + g.nr - 1) / g.nr;
  const Split split{g, P, threads, col_panels, col_panels % threads == 0 || col_panels >= 4 * threads};
  // One reference captured: the std::function holds it inline, so dispatching allocates nothing.
  parallel_for(threads, [&split](int64_t t0, int64_t t1) {
    const GemmKernels& g = split.g;
    const Problem& P = split.P;
    if (t1 - t0 != 1) return gemm_block(g, P, 0, P.M, 0, P.N);  // nested: the pool runs us serially
    const int64_t t = t0, T = split.threads;
    if (split.by_cols) {
      const int q0 = (int)(split.col_panels * t / T), q1 = (int)(split.col_panels * (t + 1) / T);
      gemm_block(g, P, 0, P.M, q0 * g.nr, std::min(P.N, q1 * g.nr));
    } else {
      gemm_block(g, P, (int)(P.M * t / T), (int)(P.M * (t + 1) / T), 0, P.N);
    }
  });
}

}  // namespace

// ---------------------------------------------------------------------------- entry points

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
           int ldb, float beta, float* C, int ldc) {
  gemm_driver({trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc}, true);
}

void sgemm_serial(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                  const float* B, int ldb, float beta, float* C, int ldc) {
  gemm_driver({trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc}, false);
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

// dinp (N, C) += dout (N, OC) @ weight (OC, C); dweight (OC, C) (+)= dout^T (OC, N) @ inp (N, C)
void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, int N,
                     int C, int OC, bool accumulate_dweight) {
  if (dinp) sgemm(false, false, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
  if (dweight) sgemm(true, false, OC, C, N, 1.0f, dout, OC, inp, C, accumulate_dweight ? 1.0f : 0.0f, dweight, C);
}

}  // namespace engine
