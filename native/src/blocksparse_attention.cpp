// Block-sparse causal flash attention, CPU (see blocksparse_attention.h for the contract).
//
// Design choices:
// - Work is cut at block granularity, and runs of consecutive kept blocks are coalesced into
//   one "span" (up to kSpanTokens tokens): their keys (or queries) are contiguous in memory, so
//   a dense mask runs as a few large tile GEMMs instead of many 64-wide ones.
// - Tile products use sgemm_serial (gemm.h: packed, register-tiled AVX-512/AVX2/scalar micro-
//   kernels) on the calling thread; the softmax parts use vectorised max/exp helpers below.
// - Forward: each output row is owned by one task: no atomics, so results are bit-identical
//   run to run whatever the thread count.
// - Backward: one pass over key blocks (transposed lists), shared with the dense kernel
//   (attention_backward.h): P is recomputed once per kept block pair; bit-identical run to run
//   for a fixed thread count.
// - Forward tasks have very different costs (row i of a causal mask has up to i+1 blocks); they
//   are dealt to threads by a longest-first greedy schedule computed from the mask, then each
//   thread runs its list. The schedule only changes which thread computes a row, not the
//   arithmetic, so it never affects results.
#include "blocksparse_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention_backward.h"
#include "gemm.h"
#include "op_checks.h"
#include "parallel.h"
#include "simd.h"

namespace engine {

namespace blocksparse_detail {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

namespace {

// ---------------------------------------------------------------------------- row helpers
// max of x[0..n)
float row_max_scalar(const float* x, int n) {
  float m = kNegInf;
  for (int i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
  return m;
}
// x = exp(x - m) over [0, n); returns the sum
float exp_sub_sum_scalar(float* x, int n, float m) {
  float s = 0;
  for (int i = 0; i < n; i++) { x[i] = std::exp(x[i] - m); s += x[i]; }
  return s;
}

#if ENGINE_X86
TARGET_AVX2 float row_max_avx2(const float* x, int n) {
  __m256 m = _mm256_set1_ps(kNegInf);
  int i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  float r = hmax_avx2(m);
  for (; i < n; i++) r = x[i] > r ? x[i] : r;
  return r;
}
TARGET_AVX2 float exp_sub_sum_avx2(float* x, int n, float m) {
  const __m256 vm = _mm256_set1_ps(m);
  __m256 s = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(x + i, e);
    s = _mm256_add_ps(s, e);
  }
  float r = hsum_avx2(s);
  for (; i < n; i++) { x[i] = std::exp(x[i] - m); r += x[i]; }
  return r;
}
TARGET_AVX512 float row_max_avx512(const float* x, int n) {
  __m512 m = _mm512_set1_ps(kNegInf);
  int i = 0;
  for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
  if (i < n) {
    __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
    m = _mm512_mask_max_ps(m, k, m, _mm512_maskz_loadu_ps(k, x + i));
  }
  return _mm512_reduce_max_ps(m);
}
TARGET_AVX512 float exp_sub_sum_avx512(float* x, int n, float m) {
  const __m512 vm = _mm512_set1_ps(m);
  __m512 s = _mm512_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
    _mm512_storeu_ps(x + i, e);
    s = _mm512_add_ps(s, e);
  }
  if (i < n) {
    __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
    __m512 e = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm));
    _mm512_mask_storeu_ps(x + i, k, e);
    s = _mm512_mask_add_ps(s, k, s, e);
  }
  return _mm512_reduce_add_ps(s);
}
#endif
}  // namespace

float row_max(const float* x, int n) {
#if ENGINE_X86
  switch (simd()) {
    case SimdLevel::avx512: return row_max_avx512(x, n);
    case SimdLevel::avx2: return row_max_avx2(x, n);
    default: break;
  }
#endif
  return row_max_scalar(x, n);
}

float exp_sub_sum(float* x, int n, float m) {
#if ENGINE_X86
  switch (simd()) {
    case SimdLevel::avx512: return exp_sub_sum_avx512(x, n, m);
    case SimdLevel::avx2: return exp_sub_sum_avx2(x, n, m);
    default: break;
  }
#endif
  return exp_sub_sum_scalar(x, n, m);
}

// ---------------------------------------------------------------------------- spans and schedule
void coalesce(const int32_t* blocks, int n, int block_size, std::vector<Span>& spans) {
  spans.clear();
  const int max_blocks = std::max(1, kSpanTokens / block_size);
  for (int p = 0; p < n; p++) {
    if (!spans.empty() && spans.back().last_block + 1 == blocks[p] &&
        spans.back().last_block - spans.back().first_block + 1 < max_blocks)
      spans.back().last_block = blocks[p];
    else
      spans.push_back({blocks[p], blocks[p]});
  }
}

void Strip::fill(const std::vector<Span>& spans, const float* Q, const float* K, int rows, int T, int D, int bs,
                 float scale) {
  offset.resize(spans.size() + 1);
  offset[0] = 0;
  for (size_t c = 0; c < spans.size(); c++) offset[c + 1] = offset[c] + (size_t)rows * span_cols(spans[c], bs, T);
  if (s.size() < offset.back()) s.resize(offset.back());
  for (size_t c = 0; c < spans.size(); c++) {
    const int k0 = span_k0(spans[c], bs), cols = span_cols(spans[c], bs, T);
    sgemm_serial(false, true, rows, cols, D, scale, Q, D, K + (size_t)k0 * D, D, 0.0f, s.data() + offset[c], cols);
  }
}

namespace {
// Longest-first greedy assignment of tasks to threads; returns one task list per thread.
std::vector<std::vector<int64_t>> schedule(const std::vector<int64_t>& cost, int threads) {
  std::vector<int64_t> order(cost.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cost[a] > cost[b]; });
  std::vector<std::vector<int64_t>> lists(threads);
  std::vector<int64_t> load(threads, 0);
  for (int64_t t : order) {
    int best = (int)(std::min_element(load.begin(), load.end()) - load.begin());
    lists[best].push_back(t);
    load[best] += cost[t] + 1;
  }
  return lists;
}
}  // namespace

void run_scheduled(const std::vector<int64_t>& cost, const std::function<void(int64_t)>& task) {
  const int threads = std::max(1, (int)std::min<int64_t>(ThreadPool::get().threads(), (int64_t)cost.size()));
  auto lists = schedule(cost, threads);
  parallel_for(threads, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; t++)
      for (int64_t item : lists[t]) task(item);
  });
}

}  // namespace blocksparse_detail

namespace {
using namespace blocksparse_detail;

struct Scratch {
  std::vector<float> s, o, m, l;
  void reserve(int D) {
    s.resize((size_t)kSpanTokens * kSpanTokens);  // rows, cols <= 256 (block_size <= 256)
    o.resize((size_t)256 * D);
    m.resize(256);
    l.resize(256);
  }
};
Scratch& scratch(int D) {
  thread_local Scratch s;
  s.reserve(D);
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------- forward
void blocksparse_attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B,
                                   int H, int Hkv, int T, int D, const BlockMask& mask) {
  check_blocksparse_args(B, H, Hkv, T, D, mask);
  const int nb = mask.n_blocks, bs = mask.block_size, group = H / Hkv;
  const float scale = 1.0f / std::sqrt((float)D);
  // task = (b, h, i)
  run_scheduled(mask.query_block_costs(B, H), [&](int64_t t) {
    const int i = (int)(t % nb), h = (int)(t / nb % H), b = (int)(t / nb / H);
    const int kvh = h / group, r = mask.mask_head(h, H) * nb + i;
    const int q0 = i * bs, rows = mask.block_len(i);
    const float* Q = q + (((size_t)b * H + h) * T + q0) * D;
    const float* K = k + ((size_t)b * Hkv + kvh) * T * D;
    const float* V = v + ((size_t)b * Hkv + kvh) * T * D;
    Scratch& sc = scratch(D);
    thread_local std::vector<Span> spans;
    coalesce(&mask.kv_idx[mask.kv_ptr[r]], mask.kv_ptr[r + 1] - mask.kv_ptr[r], bs, spans);
    float *O = sc.o.data(), *m = sc.m.data(), *l = sc.l.data(), *S = sc.s.data();
    std::fill(O, O + (size_t)rows * D, 0.0f);
    std::fill(m, m + rows, kNegInf);
    std::fill(l, l + rows, 0.0f);
    for (const Span& sp : spans) {
      const int k0 = sp.first_block * bs, cols = std::min(T, (sp.last_block + 1) * bs) - k0;
      // S (rows, cols) = scale * Q K^T
      sgemm_serial(false, true, rows, cols, D, scale, Q, D, K + (size_t)k0 * D, D, 0.0f, S, cols);
      for (int row = 0; row < rows; row++) {
        float* srow = S + (size_t)row * cols;
        const int n = valid_cols(q0 + row, k0, cols);
        const float mx = std::max(m[row], row_max(srow, n));
        const float corr = std::exp(m[row] - mx);  // 0 on the first span (m = -inf)
        l[row] = l[row] * corr + exp_sub_sum(srow, n, mx);
        if (n < cols) std::memset(srow + n, 0, sizeof(float) * (cols - n));
        m[row] = mx;
        if (corr != 1.0f) {
          float* orow = O + (size_t)row * D;
          for (int d = 0; d < D; d++) orow[d] *= corr;
        }
      }
      // O (rows, D) += P (rows, cols) V (cols, D)
      sgemm_serial(false, false, rows, D, cols, 1.0f, S, cols, V + (size_t)k0 * D, D, 1.0f, O, D);
    }
    float* out_rows = out + (((size_t)b * H + h) * T + q0) * D;
    float* lse_rows = lse + ((size_t)b * H + h) * T + q0;
    for (int row = 0; row < rows; row++) {
      const float inv = 1.0f / l[row];
      for (int d = 0; d < D; d++) out_rows[(size_t)row * D + d] = O[(size_t)row * D + d] * inv;
      lse_rows[row] = m[row] + std::log(l[row]);
    }
  });
}

// ---------------------------------------------------------------------------- backward
void blocksparse_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                    const float* k, const float* v, const float* out, const float* lse, int B, int H,
                                    int Hkv, int T, int D, const BlockMask& mask) {
  check_blocksparse_args(B, H, Hkv, T, D, mask);
  const int nb = mask.n_blocks, bs = mask.block_size, group = H / Hkv;
  // Key block j of a kv head is read by the query blocks of its transposed list, per query head
  // of the group (the lists differ when masks are per query head); runs of them are coalesced.
  flash_backward::run(dq, dk, dv, {dout, q, k, v, out, lse, B, H, Hkv, T, D}, bs, mask.key_block_costs(B, H, Hkv),
                      [&](int64_t task, int g, std::vector<flash_backward::RowSpan>& out_spans) {
                        const int j = (int)(task % nb), kvh = (int)(task / nb % Hkv);
                        const int col = mask.mask_head(kvh * group + g, H) * nb + j;
                        thread_local std::vector<Span> spans;
                        coalesce(&mask.q_idx[mask.q_ptr[col]], mask.q_ptr[col + 1] - mask.q_ptr[col], bs, spans);
                        for (const Span& sp : spans) {
                          const int q0 = sp.first_block * bs;
                          out_spans.push_back({q0, std::min(T, (sp.last_block + 1) * bs) - q0});
                        }
                      });
}

}  // namespace engine
