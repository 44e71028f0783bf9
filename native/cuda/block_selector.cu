// Block selection on the GPU, both selectors of native/src/block_selector.cpp:
// (a) parameter-free pooled keys (InfLLM-V2 / MoBA style): key blocks scored by queries against
//     mean-pooled keys, summed over the GQA group when the group shares its blocks (else one map
//     per query head); top-k itself runs on the host mask builder, which takes these scores;
// (b) the trainable block indexer (DeepSeek DSA style, block granularity), fp32: its block scores,
//     the teacher's block-attention target and its KL losses (warm-up, and the selected set of
//     phase 2) with their gradients (the CPU definitions: indexer_acts, indexer_block_scores,
//     teacher_block_attention, indexer_kl_loss).
// See ops_cuda.h for each launcher's contract.
// Shapes: B sequences, H query heads, Hkv KV heads, T tokens, D head dim, C channels; Hi indexer
// heads of Di dims, HD = Hi * Di; nb = ceil(T / block_size) blocks, rows = B * nb.
//
// Design choices of the indexer:
// - Rows of the pooled input and of the projections are (sequence, block) pairs, B * nb of them
//   (the tail block is short), so one cuBLAS product (fp32 compute) projects a whole batch and
//   one gives each weight gradient summed over the batch.
// - The pre-ReLU logits a(i, j, h) = qi_{i,h} . kj_j / sqrt(Di) are cheap (Di multiply-adds), so
//   every kernel that needs them recomputes them rather than storing (B, nb, nb, Hi).
// - Teacher target: a CTA per causal block pair (i, j) of a sequence sums exp(s - lse) over the
//   heads and the causal (query, key) token pairs of the pair, s = q.k / sqrt(D) with the
//   teacher's dense lse: per thread in double in a fixed order, then a fixed-tree CTA reduction,
//   so no atomics and the same bits every run. A thread per (sequence, query block) then
//   L1-normalises the row over its causal key blocks, summing in order.
// - The loss: a CTA per (sequence, query block) row (log-softmax over the causal key blocks in
//   double, fixed-tree reductions), which also leaves dscore = d loss / d score in place of the
//   logits. Gradients w.r.t. qi per row and w.r.t. kj per key block (each output element owned
//   by one thread, summed in block order), and per-row partial sums of the w_h gradient added
//   in row order by one thread per head.
// - Pooling sums in double: a block mean of up to 256 tokens would lose about 1e-5 absolute in
//   fp32, more than the 1e-4 relative tolerance leaves for the products after it.
#include <cmath>
#include <string>

#include "ops_cuda.h"

namespace cuda_backend {

namespace {
constexpr int kPoolThreads = 128;
constexpr int kRowThreads = 128;    // loss and gradient kernels: a CTA per (sequence, block) row
constexpr int kChunk = 32;          // block pairs staged per step of the gradient kernels
constexpr int kMaxHi = 64;          // indexer heads: sizes the gradient kernels' shared stages
constexpr int kPairThreads = 256;   // teacher target: a CTA per block pair, 8 warps
constexpr int kTile = 32;           // token tile (queries and keys) and head-dim slice of that kernel
constexpr int kRowsPerWarp = kTile / (kPairThreads / 32);

// ================================================================== kernels
// ------------------------------------------------------------------ pooled keys
// pooled (Hkv, nb, D) = mean of k over each key block (tail block: its own length).
__global__ void pool_keys_kernel(float* pooled, const float* k, int T, int D, int block_size, int nb) {
  const int blk = blockIdx.x, hk = blockIdx.y;
  const int start = blk * block_size, len = min(block_size, T - start);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0.f;
    for (int t = 0; t < len; t++) acc += k[((int64_t)hk * T + start + t) * D + d];
    pooled[((int64_t)hk * nb + blk) * D + d] = acc / len;
  }
}
// mean query of each query block: qmean (H, nb, D).
__global__ void mean_queries_kernel(float* qmean, const float* q, int T, int D, int block_size, int nb) {
  const int blk = blockIdx.x, h = blockIdx.y;
  const int start = blk * block_size, len = min(block_size, T - start);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0.f;
    for (int t = 0; t < len; t++) acc += q[((int64_t)h * T + start + t) * D + d];
    qmean[((int64_t)h * nb + blk) * D + d] = acc / len;
  }
}
// scores (n_mask_heads, nb, nb): one thread per (mask head, i, j); the mask head's query heads
// summed in order (the whole GQA group when shared, else the one head).
__global__ void pooled_scores_kernel(float* scores, const float* qmean, const float* pooled, int H, int Hkv, int D, int nb, bool share) {
  const int n_heads = share ? Hkv : H;
  const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (int64_t)n_heads * nb * nb) return;
  const int j = idx % nb, i = (idx / nb) % nb, mh = (int)(idx / ((int64_t)nb * nb));
  if (j > i) { scores[idx] = -INFINITY; return; }
  const int group = H / Hkv;
  const int h_first = share ? mh * group : mh, h_count = share ? group : 1, kvh = share ? mh : mh / group;
  const float* kp = pooled + ((int64_t)kvh * nb + j) * D;
  float total = 0.f;
  for (int g = 0; g < h_count; g++) {
    const float* qm = qmean + ((int64_t)(h_first + g) * nb + i) * D;
    float dot = 0.f;
    for (int d = 0; d < D; d++) dot += qm[d] * kp[d];
    total += dot;
  }
  scores[idx] = total;
}

// ------------------------------------------------------------------ trainable indexer
// Sum (or max) over the CTA in a fixed tree: the same bits every run, and the same value in every
// thread. Every thread calls it; `shared` holds 32 doubles and may be reused right away.
__device__ double warp_sum_d(double x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ double warp_max_d(double x) {
  for (int o = 16; o > 0; o >>= 1) x = fmax(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
template <bool kMax>
__device__ double cta_reduce(double x, double* shared) {
  x = kMax ? warp_max_d(x) : warp_sum_d(x);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  __syncthreads();  // the previous call's readers are done with `shared`
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  const double identity = kMax ? -INFINITY : 0.0;
  x = lane < warps ? shared[lane] : identity;
  return kMax ? warp_max_d(x) : warp_sum_d(x);
}

// a = q . k / sqrt(Di) for one indexer head (q: Di values of qi, k: Di values of kj).
__device__ float head_logit(const float* q, const float* k, int Di, float inv_sqrt) {
  float dot = 0.f;
  for (int d = 0; d < Di; d++) dot = fmaf(q[d], k[d], dot);
  return dot * inv_sqrt;
}
// score(i, j) = sum_h w_h[h] relu(a_h), heads in order.
__device__ float block_score(const float* qrow, const float* krow, const float* w_h, int Hi, int Di, float inv_sqrt) {
  float s = 0.f;
  for (int h = 0; h < Hi; h++) s = fmaf(w_h[h], fmaxf(0.f, head_logit(qrow + h * Di, krow, Di, inv_sqrt)), s);
  return s;
}

// xbar (B * nb, C): the mean of x (B, T, C) over each block of tokens; grid (ceil(C / 128), nb, B).
__global__ void __launch_bounds__(kPoolThreads) pool_blocks_kernel(float* xbar, const float* x, int T, int C, int bs, int nb) {
  const int c = blockIdx.x * kPoolThreads + threadIdx.x, blk = blockIdx.y, b = blockIdx.z;
  if (c >= C) return;
  const int t0 = blk * bs, t1 = min(T, t0 + bs);
  const float* src = x + ((int64_t)b * T + t0) * C + c;
  double sum = 0;
  for (int t = 0; t < t1 - t0; t++) sum += src[(int64_t)t * C];
  xbar[((int64_t)b * nb + blk) * C + c] = (float)(sum / (t1 - t0));
}

// scores (B, nb, nb), a thread per entry; above the diagonal -inf, as on the CPU.
__global__ void scores_kernel(float* scores, const float* qi, const float* kj, const float* w_h, int B, int nb, int Hi, int Di, float inv_sqrt) {
  const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (int64_t)B * nb * nb) return;
  const int j = (int)(e % nb), i = (int)(e / nb % nb);
  const int64_t b = e / ((int64_t)nb * nb);
  if (j > i) {
    scores[e] = -INFINITY;
    return;
  }
  scores[e] = block_score(qi + (b * nb + i) * Hi * Di, kj + (b * nb + j) * Di, w_h, Hi, Di, inv_sqrt);
}

// acc (B, nb, nb) double: for the causal block pair p of grid.x (row-major over j <= i) of
// sequence blockIdx.y, the sum over the heads and the causal token pairs (query in block i, key
// in block j, key <= query) of exp(q.k / sqrt(D) - lse[query]). Entries above the diagonal are
// not written. Warp w owns query rows 4w..4w+3 of a 32-token tile, lane l key l of a 32-token
// tile; the tiles arrive in slices of 32 of D in padded shared rows (no bank conflicts).
__global__ void __launch_bounds__(kPairThreads) teacher_pairs_kernel(double* acc, const float* q, const float* k, const float* lse, int H,
                                                                   int Hkv, int T, int D, int bs, int nb, float scale) {
  __shared__ float qs[kTile][kTile + 1];
  __shared__ float ks[kTile][kTile + 1];
  __shared__ double red[32];
  const int64_t p = blockIdx.x;
  int i = (int)((sqrt(8.0 * (double)p + 1.0) - 1.0) / 2.0);  // i (i + 1) / 2 <= p < (i + 1) (i + 2) / 2
  while ((int64_t)i * (i + 1) / 2 > p) i--;
  while ((int64_t)(i + 1) * (i + 2) / 2 <= p) i++;
  const int j = (int)(p - (int64_t)i * (i + 1) / 2);
  const int b = blockIdx.y;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, group = H / Hkv;
  const int q0 = i * bs, q1 = min(T, q0 + bs), k0 = j * bs, k1 = min(T, k0 + bs);
  double part = 0;
  for (int h = 0; h < H; h++) {
    const float* Q = q + ((int64_t)b * H + h) * T * D;
    const float* K = k + ((int64_t)b * Hkv + h / group) * T * D;
    const float* L = lse + ((int64_t)b * H + h) * T;
    for (int qc = q0; qc < q1; qc += kTile) {
      const int q_last = min(q1, qc + kTile) - 1;
      int row[kRowsPerWarp];
      float row_lse[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++) {
        row[r] = qc + warp * kRowsPerWarp + r;
        row_lse[r] = row[r] < q1 ? L[row[r]] : 0.f;
      }
      // Key tiles past the query tile's last row hold no causal pair (uniform across the CTA).
      for (int kc = k0; kc < k1 && kc <= q_last; kc += kTile) {
        float s[kRowsPerWarp];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; r++) s[r] = 0.f;
        for (int d0 = 0; d0 < D; d0 += kTile) {
          __syncthreads();  // every warp is done with the previous slice
          for (int e = threadIdx.x; e < kTile * kTile; e += kPairThreads) {
            const int r = e / kTile, d = e % kTile;
            const bool in_d = d0 + d < D;
            qs[r][d] = (in_d && qc + r < q1) ? Q[(int64_t)(qc + r) * D + d0 + d] : 0.f;
            ks[r][d] = (in_d && kc + r < k1) ? K[(int64_t)(kc + r) * D + d0 + d] : 0.f;
          }
          __syncthreads();
#pragma unroll 8
          for (int d = 0; d < kTile; d++) {
            const float kv = ks[lane][d];
#pragma unroll
            for (int r = 0; r < kRowsPerWarp; r++) s[r] = fmaf(qs[warp * kRowsPerWarp + r][d], kv, s[r]);
          }
        }
        const int col = kc + lane;
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; r++)
          if (row[r] < q1 && col < k1 && col <= row[r]) part += (double)expf(s[r] * scale - row_lse[r]);
      }
    }
  }
  part = cta_reduce<false>(part, red);
  if (threadIdx.x == 0) acc[((int64_t)b * nb + i) * nb + j] = part;
}

// target (B, nb, nb): row (b, i) of acc L1-normalised over j <= i (summed in order), zeros
// above the diagonal and in a row without mass. A thread per row.
__global__ void normalise_rows_kernel(float* target, const double* acc, int B, int nb) {
  const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= (int64_t)B * nb) return;
  const int i = (int)(r % nb);
  const double* a = acc + r * nb;
  double total = 0;
  for (int j = 0; j <= i; j++) total += a[j];
  float* out = target + r * nb;
  for (int j = 0; j < nb; j++) out[j] = j <= i && total > 0 ? (float)(a[j] / total) : 0.f;
}

// A CTA per row (i = blockIdx.x, b = blockIdx.y): the row's KL(target || softmax(score)) over
// j <= i divided by nb into row_loss (B * nb); `dscore` (B, nb, nb) holds the row's scores
// meanwhile and, with grads, ends as dscore = (softmax * sum(target) - target) / nb (the CPU's
// form). Entry j belongs to thread j % 128 in every pass.
__global__ void __launch_bounds__(kRowThreads) kl_rows_kernel(double* row_loss, float* dscore, const float* qi, const float* kj, const float* w_h,
                                                            const float* target, int nb, int Hi, int Di, float inv_sqrt, bool grads) {
  __shared__ double red[32];
  const int i = blockIdx.x;
  const int64_t r = (int64_t)blockIdx.y * nb + i, seq0 = (int64_t)blockIdx.y * nb;
  const float* t = target + r * nb;
  float* s = dscore + r * nb;
  const float* qrow = qi + r * Hi * Di;
  double mx = -INFINITY;
  for (int j = threadIdx.x; j <= i; j += kRowThreads) {
    s[j] = block_score(qrow, kj + (seq0 + j) * Di, w_h, Hi, Di, inv_sqrt);
    mx = fmax(mx, (double)s[j]);
  }
  mx = cta_reduce<true>(mx, red);
  double sum = 0;
  for (int j = threadIdx.x; j <= i; j += kRowThreads) sum += exp((double)s[j] - mx);
  const double lse = mx + log(cta_reduce<false>(sum, red));
  double loss = 0, mass = 0;
  for (int j = threadIdx.x; j <= i; j += kRowThreads) {
    const double tj = t[j];
    if (tj > 0) loss += tj * (log(tj) - ((double)s[j] - lse));
    mass += tj;
  }
  loss = cta_reduce<false>(loss, red);
  mass = cta_reduce<false>(mass, red);
  const double inv_rows = 1.0 / nb;
  if (threadIdx.x == 0) row_loss[r] = loss * inv_rows;
  if (!grads) return;
  for (int j = threadIdx.x; j <= i; j += kRowThreads) s[j] = (float)((exp((double)s[j] - lse) * mass - (double)t[j]) * inv_rows);
}

// Phase 2, a CTA per row like kl_rows_kernel: for each mask head m in order, the KL over the kept
// key blocks S (bits of keep) with the target renormalised over S; a head whose S holds no
// target mass adds nothing. The scores stay in `dscore` while the gradient sums over the heads in
// `gacc` (double, entry j owned by thread j % 128), then dscore = gacc (0 off S).
__global__ void __launch_bounds__(kRowThreads) kl_selected_rows_kernel(double* row_loss, float* dscore, double* gacc, const float* qi,
                                                                     const float* kj, const float* w_h, const float* target,
                                                                     const uint64_t* keep, int M, int words, int64_t keep_stride, int nb,
                                                                     int Hi, int Di, float inv_sqrt, bool grads) {
  __shared__ double red[32];
  const int i = blockIdx.x;
  const int64_t r = (int64_t)blockIdx.y * nb + i, seq0 = (int64_t)blockIdx.y * nb;
  const float* t = target + r * nb;
  float* s = dscore + r * nb;
  double* g = gacc + r * nb;
  const float* qrow = qi + r * Hi * Di;
  const uint64_t* seq_keep = keep + blockIdx.y * keep_stride;
  for (int j = threadIdx.x; j <= i; j += kRowThreads) {
    s[j] = block_score(qrow, kj + (seq0 + j) * Di, w_h, Hi, Di, inv_sqrt);
    g[j] = 0;
  }
  const double inv_rows = 1.0 / ((double)nb * M);
  double loss = 0;
  for (int m = 0; m < M; m++) {
    const uint64_t* bits = seq_keep + ((int64_t)m * nb + i) * words;
    auto kept = [&](int j) { return (bits[j >> 6] >> (j & 63)) & 1ull; };
    double mass = 0, mx = -INFINITY;
    for (int j = threadIdx.x; j <= i; j += kRowThreads)
      if (kept(j)) {
        mass += t[j];
        mx = fmax(mx, (double)s[j]);
      }
    mass = cta_reduce<false>(mass, red);  // the same value in every thread: the branch is uniform
    if (!(mass > 0)) continue;
    mx = cta_reduce<true>(mx, red);
    double sum = 0;
    for (int j = threadIdx.x; j <= i; j += kRowThreads)
      if (kept(j)) sum += exp((double)s[j] - mx);
    const double lse = mx + log(cta_reduce<false>(sum, red));
    for (int j = threadIdx.x; j <= i; j += kRowThreads) {
      if (!kept(j)) continue;
      const double tj = t[j] / mass, logp = (double)s[j] - lse;
      if (tj > 0) loss += tj * (log(tj) - logp);
      g[j] += (exp(logp) - tj) * inv_rows;
    }
  }
  loss = cta_reduce<false>(loss, red);
  if (threadIdx.x == 0) row_loss[r] = loss * inv_rows;
  if (!grads) return;
  for (int j = threadIdx.x; j <= i; j += kRowThreads) s[j] = (float)g[j];
}

// Row i of sequence b (grid (nb, B)): dqi[i, h, :] = sum_{j <= i, a_h > 0} dscore_ij w_h[h] / sqrt(Di) kj_j
// and dwh_rows[i, h] = sum_{j <= i, a_h > 0} dscore_ij a_h, j ascending. Per chunk of 32 key
// blocks the coefficients are staged in shared memory (a thread per (block, head)), then thread
// o of HD adds its chunk terms in order.
__global__ void __launch_bounds__(kRowThreads) dqi_kernel(float* dqi, double* dwh_rows, const float* dscore, const float* qi, const float* kj,
                                                        const float* w_h, int nb, int Hi, int Di, float inv_sqrt) {
  __shared__ float coef[kChunk][kMaxHi];
  __shared__ float ga[kChunk][kMaxHi];
  const int i = blockIdx.x, HD = Hi * Di;
  const int64_t r = (int64_t)blockIdx.y * nb + i, seq0 = (int64_t)blockIdx.y * nb;
  const float* g = dscore + r * nb;
  const float* qrow = qi + r * HD;
  double dwh = 0;
  for (int o0 = 0; o0 < HD; o0 += kRowThreads) {
    const int o = o0 + threadIdx.x, oh = o / Di, od = o % Di;
    float acc = 0.f;
    for (int j0 = 0; j0 <= i; j0 += kChunk) {
      const int n = min(kChunk, i + 1 - j0);
      __syncthreads();  // the previous chunk's stages are read
      for (int e = threadIdx.x; e < kChunk * Hi; e += kRowThreads) {
        const int jj = e / Hi, h = e % Hi;
        float c = 0.f, x = 0.f;
        if (jj < n) {
          const float gj = g[j0 + jj];
          const float a = head_logit(qrow + h * Di, kj + (seq0 + j0 + jj) * Di, Di, inv_sqrt);
          if (a > 0.f) {
            c = gj * w_h[h] * inv_sqrt;
            x = gj * a;
          }
        }
        coef[jj][h] = c;
        ga[jj][h] = x;
      }
      __syncthreads();
      if (o < HD)
        for (int jj = 0; jj < n; jj++) acc = fmaf(coef[jj][oh], kj[(seq0 + j0 + jj) * Di + od], acc);
      if (o0 == 0 && (int)threadIdx.x < Hi)
        for (int jj = 0; jj < n; jj++) dwh += ga[jj][threadIdx.x];
    }
    if (o < HD) dqi[r * HD + o] = acc;
  }
  if ((int)threadIdx.x < Hi) dwh_rows[r * Hi + threadIdx.x] = dwh;
}

// Key block j of sequence b (grid (nb, B)): dkj[j, :] = sum_{i >= j} sum_{h: a_h > 0} dscore_ij w_h[h] / sqrt(Di) qi_{i,h},
// i ascending, then h. Staged like dqi_kernel, a chunk of 32 query blocks at a time.
__global__ void __launch_bounds__(kRowThreads) dkj_kernel(float* dkj, const float* dscore, const float* qi, const float* kj, const float* w_h,
                                                        int nb, int Hi, int Di, float inv_sqrt) {
  __shared__ float coef[kChunk][kMaxHi];
  const int j = blockIdx.x, HD = Hi * Di;
  const int64_t seq0 = (int64_t)blockIdx.y * nb;
  const float* krow = kj + (seq0 + j) * Di;
  for (int o0 = 0; o0 < Di; o0 += kRowThreads) {
    const int d = o0 + threadIdx.x;
    float acc = 0.f;
    for (int i0 = j; i0 < nb; i0 += kChunk) {
      const int n = min(kChunk, nb - i0);
      __syncthreads();
      for (int e = threadIdx.x; e < kChunk * Hi; e += kRowThreads) {
        const int ii = e / Hi, h = e % Hi;
        float c = 0.f;
        if (ii < n) {
          const int64_t row = seq0 + i0 + ii;
          const float a = head_logit(qi + row * HD + h * Di, krow, Di, inv_sqrt);
          if (a > 0.f) c = dscore[row * nb + j] * w_h[h] * inv_sqrt;
        }
        coef[ii][h] = c;
      }
      __syncthreads();
      if (d < Di)
        for (int ii = 0; ii < n; ii++) {
          const float* qrow = qi + (seq0 + i0 + ii) * HD + d;
          for (int h = 0; h < Hi; h++) acc = fmaf(coef[ii][h], qrow[h * Di], acc);
        }
    }
    if (d < Di) dkj[(seq0 + j) * Di + d] = acc;
  }
}

// dw_h[h] += alpha * sum over the rows, in order, of dwh_rows[row][h]; a thread per head.
__global__ void dwh_kernel(float* dw_h, const double* dwh_rows, int64_t rows, int Hi, float alpha) {
  const int h = threadIdx.x;
  if (h >= Hi) return;
  double sum = 0;
  for (int64_t r = 0; r < rows; r++) sum += dwh_rows[r * Hi + h];
  dw_h[h] = dw_h[h] + alpha * (float)sum;
}

// ================================================================== launchers
Status check_dims(const char* who, int B, int T, int C, int Hi, int Di, int block_size) {
  if (B < 1 || T < 1 || C < 1 || Hi < 1 || Di < 1 || block_size < 1)
    return Status::error(std::string(who) + ": B, T, C, Hi, Di and block_size must be >= 1");
  if (Hi > kMaxHi) return Status::error(std::string(who) + ": " + std::to_string(Hi) + " indexer heads; the CUDA kernels take at most " + std::to_string(kMaxHi));
  const int nb = ceil_div(T, block_size);
  if (nb > 65535 || B > 65535) return Status::error(std::string(who) + ": more than 65535 blocks or sequences");
  return Status::success();
}
}  // namespace

Status pooled_block_scores(float* scores, const float* q, const float* k, int H, int Hkv, int T, int D, int block_size,
                           bool share_gqa_group, cudaStream_t s) {
  if (H <= 0 || Hkv <= 0 || H % Hkv != 0) return Status::error("pooled_block_scores: H must be a multiple of Hkv");
  if (block_size <= 0 || T <= 0 || D <= 0) return Status::error("pooled_block_scores: T, D and block_size must be positive");
  const int nb = ceil_div(T, block_size);
  float *pooled = nullptr, *qmean = nullptr;
  CUDA_TRY(cudaMallocAsync(&pooled, (size_t)Hkv * nb * D * sizeof(float), s));
  cudaError_t err = cudaMallocAsync(&qmean, (size_t)H * nb * D * sizeof(float), s);
  if (err != cudaSuccess) { cudaFreeAsync(pooled, s); return status_from(err, "cudaMallocAsync", __FILE__, __LINE__); }
  pool_keys_kernel<<<dim3(nb, Hkv), 128, 0, s>>>(pooled, k, T, D, block_size, nb);
  mean_queries_kernel<<<dim3(nb, H), 128, 0, s>>>(qmean, q, T, D, block_size, nb);
  const int64_t total = (int64_t)(share_gqa_group ? Hkv : H) * nb * nb;
  pooled_scores_kernel<<<(unsigned)((total + 255) / 256), 256, 0, s>>>(scores, qmean, pooled, H, Hkv, D, nb, share_gqa_group);
  err = cudaGetLastError();
  cudaFreeAsync(pooled, s);
  cudaFreeAsync(qmean, s);
  if (err != cudaSuccess) return status_from(err, "pooled_block_scores launch", __FILE__, __LINE__);
  return Status::success();
}

Status indexer_project(float* xbar, float* qi, float* kj, const float* x, const float* w_q, const float* w_k, int B, int T, int C, int Hi, int Di,
                       int block_size, cudaStream_t s) {
  STATUS_TRY(check_dims("indexer_project", B, T, C, Hi, Di, block_size));
  const int nb = ceil_div(T, block_size), rows = B * nb, HD = Hi * Di;
  pool_blocks_kernel<<<dim3((unsigned)ceil_div(C, kPoolThreads), (unsigned)nb, (unsigned)B), kPoolThreads, 0, s>>>(xbar, x, T, C, block_size, nb);
  CUDA_TRY_LAUNCH();
  // qi (rows, HD) = xbar (rows, C) w_q (HD, C)^T; kj (rows, Di) likewise with w_k.
  STATUS_TRY(gemm_f32(false, true, rows, HD, C, 1.f, xbar, C, w_q, C, 0.f, qi, HD, GemmCompute::f32, s));
  return gemm_f32(false, true, rows, Di, C, 1.f, xbar, C, w_k, C, 0.f, kj, Di, GemmCompute::f32, s);
}

Status indexer_scores(float* scores, const float* qi, const float* kj, const float* w_h, int B, int nb, int Hi, int Di, cudaStream_t s) {
  if (B < 1 || nb < 1 || Hi < 1 || Di < 1) return Status::error("indexer_scores: B, nb, Hi and Di must be >= 1");
  const int64_t n = (int64_t)B * nb * nb;
  if ((n + 255) / 256 > 0x7fffffff) return Status::error("indexer_scores: too many block pairs");
  scores_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(scores, qi, kj, w_h, B, nb, Hi, Di, 1.0f / std::sqrt((float)Di));
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status teacher_block_attention(float* target, double* acc, const float* q, const float* k, const float* lse, int B, int H, int Hkv, int T, int D,
                               int block_size, cudaStream_t s) {
  if (B < 1 || H < 1 || Hkv < 1 || T < 1 || D < 1 || block_size < 1 || H % Hkv != 0)
    return Status::error("teacher_block_attention: need B, H, Hkv, T, D, block_size >= 1 and H a multiple of Hkv");
  if (!lse) return Status::error("teacher_block_attention: the teacher's lse is required");
  const int nb = ceil_div(T, block_size);
  const int64_t pairs = (int64_t)nb * (nb + 1) / 2;
  if (pairs > 0x7fffffff || B > 65535) return Status::error("teacher_block_attention: too many blocks or sequences");
  teacher_pairs_kernel<<<dim3((unsigned)pairs, (unsigned)B), kPairThreads, 0, s>>>(acc, q, k, lse, H, Hkv, T, D, block_size, nb,
                                                                                    1.0f / std::sqrt((float)D));
  CUDA_TRY_LAUNCH();
  const int64_t rows = (int64_t)B * nb;
  normalise_rows_kernel<<<(unsigned)((rows + 127) / 128), 128, 0, s>>>(target, acc, B, nb);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status indexer_kl_loss(double* row_loss, float* dscore, float* dqi, float* dkj, double* dwh_rows, const float* qi, const float* kj, const float* w_h,
                       const float* target, int B, int nb, int Hi, int Di, cudaStream_t s) {
  if (B < 1 || nb < 1 || Hi < 1 || Di < 1) return Status::error("indexer_kl_loss: B, nb, Hi and Di must be >= 1");
  if (Hi > kMaxHi) return Status::error("indexer_kl_loss: " + std::to_string(Hi) + " indexer heads; the CUDA kernels take at most " + std::to_string(kMaxHi));
  if (nb > 65535 || B > 65535) return Status::error("indexer_kl_loss: more than 65535 blocks or sequences");
  const bool grads = dqi && dkj && dwh_rows;
  if (!grads && (dqi || dkj || dwh_rows)) return Status::error("indexer_kl_loss: dqi, dkj and dwh_rows go together");
  const float inv_sqrt = 1.0f / std::sqrt((float)Di);
  const dim3 grid((unsigned)nb, (unsigned)B);
  kl_rows_kernel<<<grid, kRowThreads, 0, s>>>(row_loss, dscore, qi, kj, w_h, target, nb, Hi, Di, inv_sqrt, grads);
  CUDA_TRY_LAUNCH();
  if (!grads) return Status::success();
  dqi_kernel<<<grid, kRowThreads, 0, s>>>(dqi, dwh_rows, dscore, qi, kj, w_h, nb, Hi, Di, inv_sqrt);
  CUDA_TRY_LAUNCH();
  dkj_kernel<<<grid, kRowThreads, 0, s>>>(dkj, dscore, qi, kj, w_h, nb, Hi, Di, inv_sqrt);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status indexer_selected_kl_loss(double* row_loss, float* dscore, double* gacc, float* dqi, float* dkj, double* dwh_rows, const float* qi,
                                const float* kj, const float* w_h, const float* target, const uint64_t* keep, int M, int words,
                                int64_t keep_stride, int B, int nb, int Hi, int Di, cudaStream_t s) {
  if (B < 1 || nb < 1 || Hi < 1 || Di < 1 || M < 1) return Status::error("indexer_selected_kl_loss: B, nb, Hi, Di and M must be >= 1");
  if (Hi > kMaxHi) return Status::error("indexer_selected_kl_loss: " + std::to_string(Hi) + " indexer heads; the CUDA kernels take at most " + std::to_string(kMaxHi));
  if (nb > 65535 || B > 65535) return Status::error("indexer_selected_kl_loss: more than 65535 blocks or sequences");
  if (words != (nb + 63) / 64 || keep_stride < 0) return Status::error("indexer_selected_kl_loss: the bitmap does not match nb");
  const bool grads = dqi && dkj && dwh_rows;
  if (!grads && (dqi || dkj || dwh_rows)) return Status::error("indexer_selected_kl_loss: dqi, dkj and dwh_rows go together");
  const float inv_sqrt = 1.0f / std::sqrt((float)Di);
  const dim3 grid((unsigned)nb, (unsigned)B);
  kl_selected_rows_kernel<<<grid, kRowThreads, 0, s>>>(row_loss, dscore, gacc, qi, kj, w_h, target, keep, M, words, keep_stride, nb, Hi, Di,
                                                       inv_sqrt, grads);
  CUDA_TRY_LAUNCH();
  if (!grads) return Status::success();
  dqi_kernel<<<grid, kRowThreads, 0, s>>>(dqi, dwh_rows, dscore, qi, kj, w_h, nb, Hi, Di, inv_sqrt);
  CUDA_TRY_LAUNCH();
  dkj_kernel<<<grid, kRowThreads, 0, s>>>(dkj, dscore, qi, kj, w_h, nb, Hi, Di, inv_sqrt);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status indexer_weight_grads(float* dw_q, float* dw_k, float* dw_h, float alpha, const float* dqi, const float* dkj, const double* dwh_rows,
                            const float* xbar, int rows, int C, int Hi, int Di, cudaStream_t s) {
  if (rows < 1 || C < 1 || Hi < 1 || Di < 1) return Status::error("indexer_weight_grads: rows, C, Hi and Di must be >= 1");
  if (Hi > 1024) return Status::error("indexer_weight_grads: more than 1024 indexer heads");
  const int HD = Hi * Di;
  // dw (out, C) += alpha * dact^T (out, rows) xbar (rows, C); dact is stored (rows, out): trans_a.
  if (dw_q) STATUS_TRY(gemm_f32(true, false, HD, C, rows, alpha, dqi, HD, xbar, C, 1.f, dw_q, C, GemmCompute::f32, s));
  if (dw_k) STATUS_TRY(gemm_f32(true, false, Di, C, rows, alpha, dkj, Di, xbar, C, 1.f, dw_k, C, GemmCompute::f32, s));
  if (dw_h) {
    dwh_kernel<<<1, ceil_div(Hi, 32) * 32, 0, s>>>(dw_h, dwh_rows, rows, Hi, alpha);
    CUDA_TRY_LAUNCH();
  }
  return Status::success();
}

}  // namespace cuda_backend
