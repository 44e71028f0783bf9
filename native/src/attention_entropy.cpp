// Attention entropy and its q/k gradients (see attention_entropy.h).
//
// Design choices:
// - Like attn_kl_loss (attention_metrics.cpp), the scores are recomputed from q and k over the
//   kept blocks (a dense layer: a dense causal mask), so the forward keeps nothing extra.
// - One pass: a task is a contiguous chunk of query blocks of one (batch, KV head) unit, over the
//   query heads of its GQA group. Per query block it makes the score strip, each row's entropy
//   and logit gradient g, then dQ = scale g K (those rows belong to the task alone) and adds
//   scale g^T Q into the task's own dK partial. dK is the sum of a unit's partials in chunk order.
//   The chunks are cut from the shapes and the mask only, so every number is bit-identical for
//   any thread count, with no atomics and no recomputation of P for dK. When the GQA group shares
//   its mask, its heads' rows are stacked into one strip, so each product packs K once per group.
// - Per row, with m the row max and u_j = s_j - m <= 0: e_j = exp(u_j), Z = sum e_j,
//   H = log Z - sum_j e_j u_j / Z. Every term e_j u_j lies in [-1/e, 0], so the sum has no
//   cancellation (unlike lse - sum p s when the logits are large).
// - The logit gradient is g_ij = p_ij (E_i - s_ij), E_i = sum_k p_ik s_ik (times the weight).
// - float32 tiles with the vectorised exp, like the attention kernels; the loss sums in float64.
#include "attention_entropy.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "blocksparse_attention.h"
#include "gemm.h"
#include "op_checks.h"
#include "parallel.h"
#include "simd.h"

namespace engine {

using namespace blocksparse_detail;

namespace {

// Block size of the dense causal mask a dense layer is visited with: query blocks of 64 rows keep
// pass 1's tasks small; keys are coalesced into spans of up to kSpanTokens anyway.
constexpr int kDenseBlock = 64;

// e (n) = exp(s - m); returns Z = sum e and sets *dot = sum e (s - m).
float exp_dot_scalar(float* e, const float* s, int n, float m, float* dot) {
  float z = 0, d = 0;
  for (int i = 0; i < n; i++) {
    const float u = s[i] - m;
    e[i] = std::exp(u);
    z += e[i];
    d += e[i] * u;
  }
  *dot = d;
  return z;
}

#if ENGINE_X86
TARGET_AVX2 float exp_dot_avx2(float* e, const float* s, int n, float m, float* dot) {
  const __m256 vm = _mm256_set1_ps(m);
  __m256 z = _mm256_setzero_ps(), d = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 u = _mm256_sub_ps(_mm256_loadu_ps(s + i), vm);
    const __m256 x = exp_avx2(u);
    _mm256_storeu_ps(e + i, x);
    z = _mm256_add_ps(z, x);
    d = _mm256_fmadd_ps(x, u, d);
  }
  float zs = hsum_avx2(z), ds = hsum_avx2(d);
  for (; i < n; i++) {
    const float u = s[i] - m;
    e[i] = std::exp(u);
    zs += e[i];
    ds += e[i] * u;
  }
  *dot = ds;
  return zs;
}

TARGET_AVX512 float exp_dot_avx512(float* e, const float* s, int n, float m, float* dot) {
  const __m512 vm = _mm512_set1_ps(m);
  __m512 z = _mm512_setzero_ps(), d = _mm512_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 u = _mm512_sub_ps(_mm512_loadu_ps(s + i), vm);
    const __m512 x = exp_avx512(u);
    _mm512_storeu_ps(e + i, x);
    z = _mm512_add_ps(z, x);
    d = _mm512_fmadd_ps(x, u, d);
  }
  if (i < n) {
    const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
    const __m512 u = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + i), vm);
    const __m512 x = exp_avx512(u);
    _mm512_mask_storeu_ps(e + i, k, x);
    z = _mm512_mask_add_ps(z, k, z, x);
    d = _mm512_mask3_fmadd_ps(x, u, d, k);
  }
  *dot = _mm512_reduce_add_ps(d);
  return _mm512_reduce_add_ps(z);
}
#endif

float exp_dot(float* e, const float* s, int n, float m, float* dot) {
#if ENGINE_X86
  switch (simd()) {
    case SimdLevel::avx512: return exp_dot_avx512(e, s, n, m, dot);
    case SimdLevel::avx2: return exp_dot_avx2(e, s, n, m, dot);
    default: break;
  }
#endif
  return exp_dot_scalar(e, s, n, m, dot);
}

// g (cols) = c * w * (E - s) over the n valid columns, 0 after them (keys past the query).
// g may alias s.
void logit_grad_scalar(float* g, const float* w, const float* s, int n, float E, float c) {
  for (int j = 0; j < n; j++) g[j] = c * w[j] * (E - s[j]);
}

#if ENGINE_X86
TARGET_AVX2 void logit_grad_avx2(float* g, const float* w, const float* s, int n, float E, float c) {
  const __m256 ve = _mm256_set1_ps(E), vc = _mm256_set1_ps(c);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 d = _mm256_sub_ps(ve, _mm256_loadu_ps(s + j));
    _mm256_storeu_ps(g + j, _mm256_mul_ps(_mm256_mul_ps(vc, _mm256_loadu_ps(w + j)), d));
  }
  for (; j < n; j++) g[j] = c * w[j] * (E - s[j]);
}

TARGET_AVX512 void logit_grad_avx512(float* g, const float* w, const float* s, int n, float E, float c) {
  const __m512 ve = _mm512_set1_ps(E), vc = _mm512_set1_ps(c);
  for (int j = 0; j < n; j += 16) {
    const __mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
    const __m512 d = _mm512_sub_ps(ve, _mm512_maskz_loadu_ps(k, s + j));
    _mm512_mask_storeu_ps(g + j, k, _mm512_mul_ps(_mm512_mul_ps(vc, _mm512_maskz_loadu_ps(k, w + j)), d));
  }
}
#endif

void logit_grad(float* g, const float* w, const float* s, int n, int cols, float E, float c) {
#if ENGINE_X86
  switch (simd()) {
    case SimdLevel::avx512: logit_grad_avx512(g, w, s, n, E, c); break;
    case SimdLevel::avx2: logit_grad_avx2(g, w, s, n, E, c); break;
    default: logit_grad_scalar(g, w, s, n, E, c);
  }
#else
  logit_grad_scalar(g, w, s, n, E, c);
#endif
  std::fill(g + n, g + cols, 0.0f);
}

// The query blocks of each (batch, KV head) unit cut into `per_unit` contiguous chunks of about
// equal cost (kept key blocks over the GQA group): one task each. The cut depends on the shapes
// and the mask only, never on the thread count, so neither do the results.
struct Chunks {
  int per_unit = 1;
  std::vector<int> bounds;     // (Hkv, per_unit + 1): chunk c is query blocks [bounds[c], bounds[c + 1])
  std::vector<int64_t> cost;   // (B, Hkv, per_unit)
};

Chunks chunk_query_blocks(const BlockMask& mask, int B, int H, int Hkv) {
  const int nb = mask.n_blocks, group = H / Hkv;
  Chunks ch;
  // About kTasks tasks in all, at most kMaxChunks per unit: more chunks mean more dK partials.
  constexpr int kTasks = 64, kMaxChunks = 8;
  ch.per_unit = std::max(1, std::min({nb, kMaxChunks, (kTasks + B * Hkv - 1) / (B * Hkv)}));
  const int C = ch.per_unit;
  ch.bounds.assign((size_t)Hkv * (C + 1), 0);
  std::vector<int64_t> unit_cost((size_t)Hkv * C, 0), prefix(nb + 1, 0);
  for (int kvh = 0; kvh < Hkv; kvh++) {
    for (int i = 0; i < nb; i++) {
      int64_t blocks = 0;
      for (int h = kvh * group; h < (kvh + 1) * group; h++) {
        const int r = mask.mask_head(h, H) * nb + i;
        blocks += mask.kv_ptr[r + 1] - mask.kv_ptr[r];
      }
      prefix[i + 1] = prefix[i] + blocks;
    }
    int* bound = ch.bounds.data() + (size_t)kvh * (C + 1);
    bound[C] = nb;
    for (int c = 1; c < C; c++) {
      int i = bound[c - 1] + 1;  // every chunk keeps at least one block
      while (i < nb - (C - c) && prefix[i] * C < prefix[nb] * c) i++;
      bound[c] = i;
    }
    for (int c = 0; c < C; c++) unit_cost[(size_t)kvh * C + c] = prefix[bound[c + 1]] - prefix[bound[c]];
  }
  ch.cost.resize((size_t)B * Hkv * C);
  for (size_t t = 0; t < ch.cost.size(); t++) ch.cost[t] = unit_cost[t % ((size_t)Hkv * C)];
  return ch;
}

BlockMask dense_causal_mask(int T, int H, int Hkv) {
  MaskSpec spec;
  spec.block_size = kDenseBlock;
  spec.dense_below = T + 1;  // every causal block pair
  return build_block_mask(spec, T, H, Hkv, 0, nullptr);
}

}  // namespace

double attention_entropy(float* dq, float* dk, float grad_scale, const float* q, const float* k, int B, int H, int Hkv,
                         int T, int D, const BlockMask* mask_or_dense, double* rows_out) {
  if (!dq != !dk) throw std::invalid_argument("attention_entropy: pass both dq and dk, or neither");
  check_attention_dims(B, H, Hkv, T, D, "attention_entropy");
  const BlockMask dense = mask_or_dense ? BlockMask{} : dense_causal_mask(T, H, Hkv);
  const BlockMask& mask = mask_or_dense ? *mask_or_dense : dense;
  check_attention_kl_args(B, H, Hkv, T, D, mask, "attention_entropy");
  const int nb = mask.n_blocks, bs = mask.block_size, group = H / Hkv;
  const float scale = 1.0f / std::sqrt((float)D);
  const bool grads = dq != nullptr;
  // Gradient of the mean: every row weighs 1 / (B H T).
  const float coef = (float)(grad_scale / ((double)B * H * T));
  const Chunks ch = chunk_query_blocks(mask, B, H, Hkv);
  const int C = ch.per_unit;
  const int64_t tasks = (int64_t)B * Hkv * C;
  // Task t's dK partial: keys [0, key_end(t)) of its KV head (causal: no later key is read).
  const auto key_end = [&](int64_t t) {
    const int kvh = (int)(t / C % Hkv), c = (int)(t % C);
    return std::min(T, ch.bounds[(size_t)kvh * (C + 1) + c + 1] * bs);
  };
  std::vector<size_t> offset(tasks + 1, 0);
  if (grads)
    for (int64_t t = 0; t < tasks; t++) offset[t + 1] = offset[t] + (size_t)key_end(t) * D;
  // Kept from call to call (a fresh one would be page-faulted each time); each task zeroes its own.
  thread_local std::vector<float> partial_buf;
  if (partial_buf.size() < offset.back()) partial_buf.resize(offset.back());
  float* const partial = partial_buf.data();
  std::vector<double> task_sum(tasks, 0.0);

  // Query heads taken together: the whole GQA group when it shares one mask head.
  const int stacked = mask.n_mask_heads == Hkv ? group : 1;
  run_scheduled(ch.cost, [&](int64_t t) {
    const int c = (int)(t % C), kvh = (int)(t / C % Hkv), b = (int)(t / C / Hkv);
    const int i0 = ch.bounds[(size_t)kvh * (C + 1) + c], i1 = ch.bounds[(size_t)kvh * (C + 1) + c + 1];
    const size_t kv_head = (size_t)b * Hkv + kvh;
    const float* K = k + kv_head * T * D;
    float* dK = partial + offset[t];
    if (grads) std::fill(dK, dK + (size_t)key_end(t) * D, 0.0f);
    thread_local Strip strip;
    thread_local std::vector<float> e, Qs, dQ;
    thread_local std::vector<Span> spans;
    double sum = 0;
    for (int i = i0; i < i1; i++)
      for (int h0 = kvh * group; h0 < (kvh + 1) * group; h0 += stacked) {
        // The `stacked` heads h0.. read the same kept blocks: their rows go through one strip,
        // stacked head after head, so each product packs K and Q once for all of them.
        const int r = mask.mask_head(h0, H) * nb + i;
        const int q0 = i * bs, rows = mask.block_len(i), R = stacked * rows;
        const size_t head0 = (size_t)b * H + h0;
        const float* Q = q + (head0 * T + q0) * D;
        if (stacked > 1) {
          Qs.resize((size_t)R * D);
          for (int g = 0; g < stacked; g++)
            std::copy(Q + (size_t)g * T * D, Q + (size_t)g * T * D + (size_t)rows * D, Qs.data() + (size_t)g * rows * D);
          Q = Qs.data();
        }
        coalesce(&mask.kv_idx[mask.kv_ptr[r]], mask.kv_ptr[r + 1] - mask.kv_ptr[r], bs, spans);
        strip.fill(spans, Q, K, R, T, D, bs, scale);
        if (e.size() < strip.offset.back()) e.resize(strip.offset.back());
        for (int rr = 0; rr < R; rr++) {
          const int row = rr % rows;  // position q0 + row of head h0 + rr / rows
          const auto at_span = [&](size_t sp, int& n, int& cols) {
            cols = span_cols(spans[sp], bs, T);
            n = valid_cols(q0 + row, span_k0(spans[sp], bs), cols);
            return strip.offset[sp] + (size_t)rr * cols;
          };
          int n, cols;
          float m = -INFINITY;
          for (size_t sp = 0; sp < spans.size(); sp++) {
            const size_t o = at_span(sp, n, cols);
            m = std::max(m, row_max(strip.s.data() + o, n));
          }
          double z = 0, dot = 0;
          for (size_t sp = 0; sp < spans.size(); sp++) {
            const size_t o = at_span(sp, n, cols);
            float d;
            z += exp_dot(e.data() + o, strip.s.data() + o, n, m, &d);
            dot += d;
          }
          const double entropy = std::log(z) - dot / z;
          sum += entropy;
          if (rows_out) rows_out[(head0 + rr / rows) * T + q0 + row] = entropy;
          if (!grads) continue;
          // g = p (E - s) * coef with p = e / Z and E = sum_j p_j s_j, written over the scores.
          const float E = (float)(m + dot / z), gc = (float)(coef / z);
          for (size_t sp = 0; sp < spans.size(); sp++) {
            const size_t o = at_span(sp, n, cols);
            logit_grad(strip.s.data() + o, e.data() + o, strip.s.data() + o, n, cols, E, gc);
          }
        }
        if (!grads) continue;
        // A single head's dQ rows go straight to dq; stacked ones are gathered, then put back.
        dQ.resize((size_t)R * D);
        float* dQ_rows = stacked > 1 ? dQ.data() : dq + (head0 * T + q0) * D;
        for (size_t sp = 0; sp < spans.size(); sp++) {
          const int k0 = span_k0(spans[sp], bs), cols = span_cols(spans[sp], bs, T);
          const float* G = strip.s.data() + strip.offset[sp];
          // dQ (R, D) (=, then +=) scale * g (R, cols) K (cols, D);  dK (cols, D) += scale * g^T Q (R, D)
          sgemm_serial(false, false, R, D, cols, scale, G, cols, K + (size_t)k0 * D, D, sp == 0 ? 0.0f : 1.0f, dQ_rows, D);
          sgemm_serial(true, false, cols, D, R, scale, G, cols, Q, D, 1.0f, dK + (size_t)k0 * D, D);
        }
        if (stacked > 1)
          for (int g = 0; g < stacked; g++)
            std::copy(dQ.data() + (size_t)g * rows * D, dQ.data() + (size_t)(g + 1) * rows * D,
                      dq + ((head0 + g) * T + q0) * D);
      }
    task_sum[t] = sum;
  });
  double total = 0;
  for (int64_t t = 0; t < tasks; t++) total += task_sum[t];  // fixed order: deterministic
  if (!grads) return total / ((double)B * H * T);

  // dK of each key block: its chunks' partials, added in chunk order.
  parallel_for((int64_t)B * Hkv * nb, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; u++) {
      const int j = (int)(u % nb);
      const int64_t unit = u / nb;  // b * Hkv + kvh
      const int first = j * bs, len = mask.block_len(j);
      float* out = dk + ((size_t)unit * T + first) * D;
      std::fill(out, out + (size_t)len * D, 0.0f);
      for (int c = 0; c < C; c++) {
        const int64_t t = unit * C + c;
        const int n = std::min(len, key_end(t) - first);
        const float* src = partial + offset[t] + (size_t)first * D;
        for (size_t x = 0; x < (size_t)std::max(n, 0) * D; x++) out[x] += src[x];
      }
    }
  });
  return total / ((double)B * H * T);
}

}  // namespace engine
