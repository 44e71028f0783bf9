// Attention-KL distillation loss of one block-sparse layer on the GPU, fp32 on CUDA cores (see
// ops_cuda.h attn_kl_loss; the CPU definition is native/src/attention_metrics.cpp attn_kl_loss).
//
// Design choices:
// - One kernel, two roles. A CTA owns a tile of 16 "rows" of one head and walks block lists in
//   chunks of 32 "columns". Rows are queries (loss and dq: the key list of the tile's query
//   block) or keys (dk: the query lists of the tile's key block, over the query heads of the GQA
//   group, i.e. the transposed lists). 16 divides every block size, so a tile lies in one block
//   (the tail block may be short). Runs of consecutive kept blocks are walked as one range,
//   clipped to the tile's causal part; inside it, causality is applied per token.
// - 4 warps; warp w owns rows 4w..4w+3 and lane l column l of a chunk. The tile's row vectors
//   (student and teacher) stay in shared memory; column vectors arrive in slices of 32 of D in
//   padded rows (no bank conflicts). Scores are recomputed per pass rather than stored.
// - Loss pass per query row: per lane an online max m, l = sum exp(s - m) and
//   a = sum exp(s - m) (s - t), merged across the warp in a fixed tree; then
//   lse_s = m + log l, mu = a / l = sum Ps (s - t), KL = sum Ps (s - lse_s - t + lse_t)
//   = mu - lse_s + lse_t. The gradient of KL w.r.t. s_j is g_j = Ps_j (s_j - lse_s - t_j + lse_t - KL)
//   = Ps_j (s_j - t_j - mu) (the CPU's form, rewritten), so dq_i = coef / sqrt(D) sum_j g_ij k_s[j]
//   and dk_j = coef / sqrt(D) sum_i g_ij q_s[i]; the dk pass reads lse_s and mu per query row.
// - Evaluation metrics (attention_metrics) reuse the loss pass: with `recall` set it also sums
//   Pt = exp(t - lse_t) over the kept keys per lane (merged in the same tree) and clamps the row
//   KL at 0, as the CPU's metric does; the loss's arithmetic is the same either way.
// - Deterministic, no atomics: each output element has one owner thread and a fixed order of
//   additions; dq and dk are overwritten, every element (zero where no kept pair reaches it).
// Shapes: B batch, H query heads, Hkv KV heads, T tokens, D head dim; q_s, q_t (B, H, T, D), k_s, k_t
// (B, Hkv, T, D), lse_t, kl, recall (B, H, T); blocks of bs tokens, nb = ceil(T / bs) of them.
#include <cmath>

#include "ops_cuda.h"
#include "reduce.cuh"

namespace cuda_backend {

namespace {
constexpr int kRows = 16;     // rows per CTA; divides every supported block size
constexpr int kCols = 32;     // columns per chunk: one per lane
constexpr int kSlice = 32;    // D slice of a column chunk
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRowsPerWarp = kRows / kWarps;
constexpr int kCLd = kSlice + 1;  // padded column-slice rows
constexpr int kGLd = kCols + 1;   // padded gradient-coefficient rows
constexpr int kMaxD = 256;

// ================================================================== kernels
struct KlArgs {
  const float *q_s, *k_s, *q_t, *k_t, *lse_t;
  float *kl, *lse_s, *mu, *dq, *dk;  // lse_s, mu, dq, dk: null for the loss only
  float* recall;                     // non-null: metrics (row recall, KL clamped at 0), no gradients
  const int32_t *kv_ptr, *kv_idx, *q_ptr, *q_idx;
  float coef, scale;
  int H, Hkv, T, D, Dp, bs, nb, n_mask_heads;
};

// Shared memory (floats): row_s, row_t, acc (kRows, Dp) | col_s, col_t (kCols, kCLd) |
// g (kRows, kGLd) | stat_lse, stat_mu (kCols).
size_t smem_floats(int Dp) { return (size_t)3 * kRows * Dp + 2 * kCols * kCLd + kRows * kGLd + 2 * kCols; }

struct Smem {
  float *row_s, *row_t, *acc, *col_s, *col_t, *g, *stat_lse, *stat_mu;
};
__device__ Smem carve(float* base, int Dp) {
  Smem m;
  m.row_s = base;
  m.row_t = m.row_s + kRows * Dp;
  m.acc = m.row_t + kRows * Dp;
  m.col_s = m.acc + kRows * Dp;
  m.col_t = m.col_s + kCols * kCLd;
  m.g = m.col_t + kCols * kCLd;
  m.stat_lse = m.g + kRows * kGLd;
  m.stat_mu = m.stat_lse + kCols;
  return m;
}

// Calls fn(c0, n) for the positions [lo, hi) of the listed blocks (ascending block indices),
// consecutive blocks merged into one range, in chunks of at most kCols. Every thread reads the
// same list, so the calls are uniform across the CTA (fn may synchronise).
template <typename Fn>
__device__ void for_each_chunk(const int32_t* idx, int n, int bs, int T, int lo, int hi, Fn&& fn) {
  for (int p = 0; p < n;) {
    const int first = idx[p];
    int last = first;
    while (p + 1 < n && idx[p + 1] == last + 1) {
      p++;
      last++;
    }
    p++;
    const int begin = max(first * bs, lo), end = min(min((last + 1) * bs, T), hi);
    for (int c0 = begin; c0 < end; c0 += kCols) fn(c0, min(kCols, end - c0));
  }
}

// Columns [c0, c0 + 32) of cs / ct (T, D), slice [d0, d0 + 32) of D, into col_s / col_t (zeros
// past n columns and past D).
__device__ void load_slice(float* dst, const float* src, int c0, int n, int d0, int D) {
  for (int e = threadIdx.x; e < kCols * kSlice; e += kThreads) {
    const int c = e / kSlice, d = e % kSlice;
    dst[c * kCLd + d] = (c < n && d0 + d < D) ? src[(int64_t)(c0 + c) * D + d0 + d] : 0.f;
  }
}

// Scaled scores of the warp's rows against column c0 + lane: s (student) and t (teacher).
// stat_lse_src / stat_mu_src (nullable): per-column row statistics to stage for the dk pass.
__device__ void chunk_scores(float (&s)[kRowsPerWarp], float (&t)[kRowsPerWarp], const Smem& sm, const float* cs, const float* ct, int c0,
                             int n, const KlArgs& a, const float* stat_lse_src, const float* stat_mu_src) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) s[r] = t[r] = 0.f;
  for (int d0 = 0; d0 < a.Dp; d0 += kSlice) {
    __syncthreads();  // every warp is done with the previous slice (and the previous chunk)
    load_slice(sm.col_s, cs, c0, n, d0, a.D);
    load_slice(sm.col_t, ct, c0, n, d0, a.D);
    if (d0 == 0 && stat_lse_src && threadIdx.x < kCols) {
      const bool in = (int)threadIdx.x < n;
      sm.stat_lse[threadIdx.x] = in ? stat_lse_src[c0 + threadIdx.x] : 0.f;
      sm.stat_mu[threadIdx.x] = in ? stat_mu_src[c0 + threadIdx.x] : 0.f;
    }
    __syncthreads();
    const float* rs = sm.row_s + warp * kRowsPerWarp * a.Dp + d0;
    const float* rt = sm.row_t + warp * kRowsPerWarp * a.Dp + d0;
    const float* ks = sm.col_s + lane * kCLd;
    const float* kt = sm.col_t + lane * kCLd;
#pragma unroll 8
    for (int d = 0; d < kSlice; d++) {
      const float vs = ks[d], vt = kt[d];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++) {
        s[r] = fmaf(rs[r * a.Dp + d], vs, s[r]);
        t[r] = fmaf(rt[r * a.Dp + d], vt, t[r]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) {
    s[r] *= a.scale;
    t[r] *= a.scale;
  }
}

// acc[row][d] += sum_c g[row][c] * cs[c0 + c][d] for the warp's rows. The last slice of D is
// still in col_s from chunk_scores; the others are loaded again.
__device__ void accumulate(const Smem& sm, const float* cs, int c0, int n, const KlArgs& a) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int last = a.Dp - kSlice;
  for (int d0 = last; d0 >= 0; d0 -= kSlice) {
    __syncthreads();  // g is written; for a reload, every warp is done with the slice in col_s
    if (d0 != last) {
      load_slice(sm.col_s, cs, c0, n, d0, a.D);
      __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; r++) {
      const int row = warp * kRowsPerWarp + r;
      const float* g = sm.g + row * kGLd;
      float sum = 0.f;
#pragma unroll 8
      for (int c = 0; c < kCols; c++) sum = fmaf(g[c], sm.col_s[c * kCLd + lane], sum);
      sm.acc[row * a.Dp + d0 + lane] += sum;
    }
  }
}

// grid (ceil(T / kRows), B * H) with query rows, (ceil(T / kRows), B * Hkv) with key rows.
template <bool kKeyRows>
__global__ void __launch_bounds__(kThreads) attn_kl_kernel(KlArgs a) {
  extern __shared__ float smem[];
  const Smem sm = carve(smem, a.Dp);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int tile = gridDim.x - 1 - blockIdx.x;  // later rows see more columns: start them first
  const int r0 = tile * kRows, rows = min(kRows, a.T - r0);
  const int head = blockIdx.y;  // (b, h) for query rows, (b, kv head) for key rows
  const int blk = r0 / a.bs, group = a.H / a.Hkv, per_mask = a.H / a.n_mask_heads;
  const int64_t row_off = ((int64_t)head * a.T + r0) * a.D;
  {
    const float* src_s = (kKeyRows ? a.k_s : a.q_s) + row_off;
    const float* src_t = (kKeyRows ? a.k_t : a.q_t) + row_off;
    for (int e = threadIdx.x; e < kRows * a.Dp; e += kThreads) {
      const int r = e / a.Dp, d = e % a.Dp;
      const bool in = r < rows && d < a.D;
      sm.row_s[e] = in ? src_s[(int64_t)r * a.D + d] : 0.f;
      sm.row_t[e] = in ? src_t[(int64_t)r * a.D + d] : 0.f;
      sm.acc[e] = 0.f;
    }
  }  // chunk_scores synchronises before the rows are read
  int pos[kRowsPerWarp];
  bool row_ok[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) {
    pos[r] = r0 + warp * kRowsPerWarp + r;
    row_ok[r] = pos[r] < a.T;
  }
  float s[kRowsPerWarp], t[kRowsPerWarp];
  float* out;

  if (!kKeyRows) {
    const int b = head / a.H, h = head % a.H;
    const int64_t kv_off = ((int64_t)b * a.Hkv + h / group) * a.T * a.D;
    const float *cs = a.k_s + kv_off, *ct = a.k_t + kv_off;
    const int list = (h / per_mask) * a.nb + blk;
    const int32_t* idx = a.kv_idx + a.kv_ptr[list];
    const int n = a.kv_ptr[list + 1] - a.kv_ptr[list];
    const int hi = r0 + rows;  // keys past the tile's last row are masked for all of it
    // Loss pass: online softmax statistics per lane (and the teacher's kept mass for metrics).
    float m[kRowsPerWarp], l[kRowsPerWarp], acc_d[kRowsPerWarp], lt[kRowsPerWarp], rec[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; r++) {
      m[r] = -INFINITY;
      l[r] = acc_d[r] = rec[r] = 0.f;
      lt[r] = row_ok[r] ? a.lse_t[(int64_t)head * a.T + pos[r]] : 0.f;
    }
    for_each_chunk(idx, n, a.bs, a.T, 0, hi, [&](int c0, int nc) {
      chunk_scores(s, t, sm, cs, ct, c0, nc, a, nullptr, nullptr);
      const int col = c0 + lane;
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++) {
        if (!(lane < nc && row_ok[r] && col <= pos[r])) continue;
        if (a.recall) rec[r] += expf(t[r] - lt[r]);  // uniform: a kernel argument
        const float diff = s[r] - t[r];
        if (s[r] > m[r]) {
          const float c = expf(m[r] - s[r]);  // 0 while m is -inf
          l[r] = l[r] * c + 1.f;
          acc_d[r] = acc_d[r] * c + diff;
          m[r] = s[r];
        } else {
          const float e = expf(s[r] - m[r]);
          l[r] += e;
          acc_d[r] = fmaf(e, diff, acc_d[r]);
        }
      }
    });
    float lse[kRowsPerWarp], mu[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; r++) {
      const float M = warp_max(m[r]);
      const float f = m[r] == -INFINITY ? 0.f : expf(m[r] - M);
      const float L = warp_sum(l[r] * f), S = warp_sum(acc_d[r] * f);
      lse[r] = M + logf(L);  // rows past T only: -inf (never used)
      mu[r] = S / L;
      const float R = a.recall ? warp_sum(rec[r]) : 0.f;
      if (row_ok[r] && lane == 0) {
        const int64_t at = (int64_t)head * a.T + pos[r];
        const float kl = mu[r] - lse[r] + lt[r];
        a.kl[at] = a.recall && kl < 0.f ? 0.f : kl;  // a KL is never negative; rounding can make a kept-everything row -1e-7
        if (a.recall) a.recall[at] = R;
        if (a.dq) {
          a.lse_s[at] = lse[r];
          a.mu[at] = mu[r];
        }
      }
    }
    if (!a.dq) return;  // uniform: a kernel argument
    // dq pass.
    for_each_chunk(idx, n, a.bs, a.T, 0, hi, [&](int c0, int nc) {
      chunk_scores(s, t, sm, cs, ct, c0, nc, a, nullptr, nullptr);
      const int col = c0 + lane;
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++) {
        const bool valid = lane < nc && row_ok[r] && col <= pos[r];
        sm.g[(warp * kRowsPerWarp + r) * kGLd + lane] = valid ? expf(s[r] - lse[r]) * ((s[r] - t[r]) - mu[r]) * a.coef : 0.f;
      }
      accumulate(sm, cs, c0, nc, a);
    });
    out = a.dq;
  } else {
    const int b = head / a.Hkv, kvh = head % a.Hkv;
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
      const int64_t qh = (int64_t)b * a.H + h;
      const float *cs = a.q_s + qh * a.T * a.D, *ct = a.q_t + qh * a.T * a.D;
      const int list = (h / per_mask) * a.nb + blk;
      const int32_t* idx = a.q_idx + a.q_ptr[list];
      const int n = a.q_ptr[list + 1] - a.q_ptr[list];
      // Queries before the tile's first key see none of it.
      for_each_chunk(idx, n, a.bs, a.T, r0, a.T, [&](int c0, int nc) {
        chunk_scores(s, t, sm, cs, ct, c0, nc, a, a.lse_s + qh * a.T, a.mu + qh * a.T);
        const int col = c0 + lane;
        const float lse = sm.stat_lse[lane], mu = sm.stat_mu[lane];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; r++) {
          const bool valid = lane < nc && row_ok[r] && col >= pos[r];
          sm.g[(warp * kRowsPerWarp + r) * kGLd + lane] = valid ? expf(s[r] - lse) * ((s[r] - t[r]) - mu) * a.coef : 0.f;
        }
        accumulate(sm, cs, c0, nc, a);
      });
    }
    out = a.dk;
  }
  __syncthreads();  // acc rows were summed by their warps; written out by every thread
  out += row_off;
  for (int e = threadIdx.x; e < rows * a.D; e += kThreads) {
    const int r = e / a.D, d = e % a.D;
    out[(int64_t)r * a.D + d] = sm.acc[r * a.Dp + d] * a.scale;
  }
}

// ================================================================== launchers
template <bool kKeyRows>
Status launch(const KlArgs& a, dim3 grid, size_t bytes, cudaStream_t s) {
  if (bytes > 48 * 1024) CUDA_TRY(cudaFuncSetAttribute(attn_kl_kernel<kKeyRows>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
  attn_kl_kernel<kKeyRows><<<grid, kThreads, bytes, s>>>(a);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status check_shapes(const char* who, int B, int H, int Hkv, int T, int D, const DeviceBlockLists& m) {
  const std::string w = who;
  if (B <= 0 || H <= 0 || Hkv <= 0 || T <= 0 || H % Hkv != 0) return Status::error(w + ": need B, H, Hkv, T >= 1 and H a multiple of Hkv");
  if (D <= 0 || D > kMaxD) return Status::error(w + ": head_dim " + std::to_string(D) + " is not supported (1 to 256)");
  if (m.T != T || m.block_size <= 0 || m.block_size % kRows != 0 || m.n_blocks != ceil_div(T, m.block_size))
    return Status::error(w + ": the block lists are for T = " + std::to_string(m.T) + " in blocks of " + std::to_string(m.block_size) +
                         " (need T = " + std::to_string(T) + " and blocks of a multiple of 16)");
  if (m.n_mask_heads <= 0 || H % m.n_mask_heads != 0 || m.n_mask_heads % Hkv != 0)
    return Status::error(w + ": mask has " + std::to_string(m.n_mask_heads) + " heads; need H or Hkv");
  if ((int64_t)B * H > 65535) return Status::error(w + ": B * H above 65535");
  return Status::success();
}
}  // namespace

Status upload_block_lists(DeviceBlockLists* out, int T, int block_size, int n_mask_heads, const std::vector<int32_t>& kv_ptr,
                          const std::vector<int32_t>& kv_idx, const std::vector<int32_t>& q_ptr, const std::vector<int32_t>& q_idx) {
  if (T <= 0 || block_size <= 0 || n_mask_heads <= 0) return Status::error("block lists: T, block_size and mask heads must be positive");
  const int nb = ceil_div(T, block_size);
  const size_t n_ptr = (size_t)n_mask_heads * nb + 1, n_idx = kv_idx.size();
  if (kv_ptr.size() != n_ptr || q_ptr.size() != n_ptr || q_idx.size() != n_idx || kv_ptr.front() != 0 || q_ptr.front() != 0 ||
      (size_t)kv_ptr.back() != n_idx || (size_t)q_ptr.back() != n_idx)
    return Status::error("block lists: the CSR arrays do not match " + std::to_string(n_mask_heads) + " mask heads of " + std::to_string(nb) +
                         " blocks");
  // The kernels index with these: refuse anything out of range rather than read wild memory.
  for (size_t r = 0; r + 1 < n_ptr; r++)
    if (kv_ptr[r] > kv_ptr[r + 1] || q_ptr[r] > q_ptr[r + 1]) return Status::error("block lists: pointers are not ascending");
  for (size_t p = 0; p < n_idx; p++)
    if (kv_idx[p] < 0 || kv_idx[p] >= nb || q_idx[p] < 0 || q_idx[p] >= nb) return Status::error("block lists: a block index is out of range");
  std::vector<int32_t> all;
  all.reserve(2 * (n_ptr + n_idx));
  for (const auto* v : {&kv_ptr, &kv_idx, &q_ptr, &q_idx}) all.insert(all.end(), v->begin(), v->end());
  int32_t* d = nullptr;
  CUDA_TRY(cudaMalloc(&d, all.size() * sizeof(int32_t)));
  const cudaError_t err = cudaMemcpy(d, all.data(), all.size() * sizeof(int32_t), cudaMemcpyHostToDevice);
  if (err != cudaSuccess) {
    cudaFree(d);
    return status_from(err, "cudaMemcpy (block lists)", __FILE__, __LINE__);
  }
  // kv_ptr | kv_idx | q_ptr | q_idx
  *out = DeviceBlockLists{T, block_size, nb, n_mask_heads, d, d, d + n_ptr, d + n_ptr + n_idx, d + 2 * n_ptr + n_idx};
  return Status::success();
}

void free_block_lists(DeviceBlockLists* m) {
  cudaFree(m->data);
  *m = DeviceBlockLists{};
}

Status attn_kl_loss(float* kl, float* dq, float* dk, float coef, const float* q_s, const float* k_s, const float* q_t, const float* k_t,
                    const float* lse_t, float* row_stats, int B, int H, int Hkv, int T, int D, const DeviceBlockLists& m, cudaStream_t s) {
  STATUS_TRY(check_shapes("attn_kl_loss", B, H, Hkv, T, D, m));
  const bool grads = dq && dk;
  if (grads && !row_stats) return Status::error("attn_kl_loss: gradients need the row_stats scratch");
  const int64_t rows = (int64_t)B * H * T;
  const int Dp = ceil_div(D, kSlice) * kSlice;
  const KlArgs a{q_s, k_s, q_t, k_t, lse_t,
                 kl, grads ? row_stats : nullptr, grads ? row_stats + rows : nullptr, grads ? dq : nullptr, grads ? dk : nullptr, nullptr,
                 m.kv_ptr, m.kv_idx, m.q_ptr, m.q_idx,
                 coef, 1.0f / std::sqrt((float)D),
                 H, Hkv, T, D, Dp, m.block_size, m.n_blocks, m.n_mask_heads};
  const size_t bytes = smem_floats(a.Dp) * sizeof(float);
  const int tiles = ceil_div(T, kRows);
  STATUS_TRY(launch<false>(a, dim3((unsigned)tiles, (unsigned)(B * H)), bytes, s));
  if (grads) STATUS_TRY(launch<true>(a, dim3((unsigned)tiles, (unsigned)(B * Hkv)), bytes, s));
  return Status::success();
}

Status attention_metric_rows(float* kl, float* recall, const float* q_s, const float* k_s, const float* q_t, const float* k_t, const float* lse_t,
                             int B, int H, int Hkv, int T, int D, const DeviceBlockLists& m, cudaStream_t s) {
  STATUS_TRY(check_shapes("attention_metrics", B, H, Hkv, T, D, m));
  if (!kl || !recall || !lse_t) return Status::error("attention_metrics: kl, recall and the teacher's lse are required");
  const KlArgs a{q_s, k_s, q_t, k_t, lse_t,
                 kl, nullptr, nullptr, nullptr, nullptr, recall,
                 m.kv_ptr, m.kv_idx, m.q_ptr, m.q_idx,
                 0.f, 1.0f / std::sqrt((float)D),
                 H, Hkv, T, D, ceil_div(D, kSlice) * kSlice, m.block_size, m.n_blocks, m.n_mask_heads};
  return launch<false>(a, dim3((unsigned)ceil_div(T, kRows), (unsigned)(B * H)), smem_floats(a.Dp) * sizeof(float), s);
}

}  // namespace cuda_backend
