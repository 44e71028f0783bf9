// Causal grouped-query attention, flash style: scores are made tile by tile (64 queries x 64 keys)
// with an online softmax, so memory stays O(T * D) and the log-sum-exp per query row is saved for
// the backward pass, which recomputes the probabilities instead of storing them.
// Shapes: B batch, H query heads, Hkv key/value heads (H = Hkv * group), T tokens, D head dim.
// q, out, dout, dq (B, H, T, D); k, v, dk, dv (B, Hkv, T, D); lse (B, H, T).
// Tile products run on the packed SGEMM (gemm.h), row softmax on the vector exp (simd.h).
// Threads take whole (head, tile) units: forward and dq own their query rows, dk/dv own their key
// rows (summing over the query heads of the group in a fixed order), so nothing is shared and the
// results are bit-identical for any thread count. Units pair tile i with tile n-1-i so every unit
// has the same causal work.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "gemm.h"
#include "op_checks.h"
#include "ops.h"
#include "parallel.h"
#include "simd.h"

namespace engine {

namespace {

constexpr int TILE = 64;  // query and key tile size (equal, so causal tiles line up)

// Calls fn(bh, tile) for every (head, tile) unit, pairing tiles i and n-1-i for balance.
template <typename Fn>
void for_each_tile_pair(int heads, int tiles, Fn&& fn) {
  const int pairs = (tiles + 1) / 2;
  parallel_for((int64_t)heads * pairs, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; u++) {
      const int bh = (int)(u / pairs), p = (int)(u % pairs);
      fn(bh, p);
      if (tiles - 1 - p != p) fn(bh, tiles - 1 - p);
    }
  });
}

// Scratch per thread, reused across calls.
struct TileScratch {
  std::vector<float> s, p, dp, acc, row_max, row_sum;
  void ensure(int D) {
    s.resize(TILE * TILE);
    p.resize(TILE * TILE);
    dp.resize(TILE * TILE);
    acc.resize((size_t)TILE * D);
    row_max.resize(TILE);
    row_sum.resize(TILE);
  }
};
thread_local TileScratch scratch;

// Sets s[r][c] = -inf where key k0 + c is after query q0 + r (only diagonal tiles have any).
void mask_future(float* s, int rows, int cols, int q0, int k0) {
  for (int r = 0; r < rows; r++)
    for (int c = std::max(0, q0 + r - k0 + 1); c < cols; c++) s[r * TILE + c] = -INFINITY;
}

// p[r][c] = exp(s[r][c] - shift[r]) for a rows x cols tile (row stride TILE).
void exp_shifted(float* p, const float* s, int rows, int cols, const float* shift) {
  for (int r = 0; r < rows; r++) exp_shift_sum(p + r * TILE, s + r * TILE, cols, shift[r]);
}

// ---------------------------------------------------------------------------- forward

void forward_tile(float* out, float* lse, const float* q, const float* k, const float* v, int T, int D, int q0) {
  TileScratch& w = scratch;
  w.ensure(D);
  const int rows = std::min(TILE, T - q0);
  const float scale = 1.0f / std::sqrt((float)D);
  const float* qt = q + (size_t)q0 * D;
  std::fill(w.acc.begin(), w.acc.begin() + (size_t)rows * D, 0.0f);
  std::fill(w.row_max.begin(), w.row_max.end(), -INFINITY);
  std::fill(w.row_sum.begin(), w.row_sum.end(), 0.0f);
  for (int k0 = 0; k0 < q0 + rows; k0 += TILE) {
    const int cols = std::min(TILE, q0 + rows - k0);
    // s (rows, cols) = scale * q_tile @ k_tile^T
    sgemm_serial(false, true, rows, cols, D, scale, qt, D, k + (size_t)k0 * D, D, 0.0f, w.s.data(), TILE);
    if (k0 + cols - 1 > q0) mask_future(w.s.data(), rows, cols, q0, k0);
    // Online softmax: raise each row's running max, rescale what was accumulated under the old one.
    for (int r = 0; r < rows; r++) {
      const float* sr = w.s.data() + r * TILE;
      const float m = std::max(w.row_max[r], max_of(sr, cols));
      const float correction = std::exp(w.row_max[r] - m);  // exp(-inf) = 0 on the first tile
      w.row_max[r] = m;
      if (correction != 1.0f) {
        float* ar = w.acc.data() + (size_t)r * D;
        for (int d = 0; d < D; d++) ar[d] *= correction;
      }
      w.row_sum[r] = w.row_sum[r] * correction + exp_shift_sum(w.p.data() + r * TILE, sr, cols, m);
    }
    // acc (rows, D) += p (rows, cols) @ v_tile (cols, D)
    sgemm_serial(false, false, rows, D, cols, 1.0f, w.p.data(), TILE, v + (size_t)k0 * D, D, 1.0f, w.acc.data(), D);
  }
  for (int r = 0; r < rows; r++) {
    const float inv = 1.0f / w.row_sum[r];
    float* o = out + (size_t)(q0 + r) * D;
    const float* ar = w.acc.data() + (size_t)r * D;
    for (int d = 0; d < D; d++) o[d] = ar[d] * inv;
    lse[q0 + r] = w.row_max[r] + std::log(w.row_sum[r]);
  }
}

// ---------------------------------------------------------------------------- backward

// Probabilities of one (query tile, key tile) pair from the saved lse: p = exp(scale q k^T - lse).
void recompute_probs(TileScratch& w, const float* qt, const float* kt, const float* lse_t, int rows, int cols, int D,
                     int q0, int k0, float scale) {
  sgemm_serial(false, true, rows, cols, D, scale, qt, D, kt, D, 0.0f, w.s.data(), TILE);
  if (k0 + cols - 1 > q0) mask_future(w.s.data(), rows, cols, q0, k0);
  exp_shifted(w.p.data(), w.s.data(), rows, cols, lse_t);
}

// ds = p * (dp - delta[r]), written over dp; dp = dout_tile @ v_tile^T first.
void softmax_grad(TileScratch& w, const float* dot, const float* vt, const float* delta_t, int rows, int cols, int D) {
  sgemm_serial(false, true, rows, cols, D, 1.0f, dot, D, vt, D, 0.0f, w.dp.data(), TILE);
  for (int r = 0; r < rows; r++) {
    float* dpr = w.dp.data() + r * TILE;
    const float* pr = w.p.data() + r * TILE;
    for (int c = 0; c < cols; c++) dpr[c] = pr[c] * (dpr[c] - delta_t[r]);
  }
}

// dq rows of one query tile: dq = scale * sum over key tiles of ds @ k_tile.
void dq_tile(float* dq, const float* dout, const float* q, const float* k, const float* v, const float* lse,
             const float* delta, int T, int D, int q0) {
  TileScratch& w = scratch;
  w.ensure(D);
  const int rows = std::min(TILE, T - q0);
  const float scale = 1.0f / std::sqrt((float)D);
  float* dqt = dq + (size_t)q0 * D;
  std::fill(dqt, dqt + (size_t)rows * D, 0.0f);
  for (int k0 = 0; k0 < q0 + rows; k0 += TILE) {
    const int cols = std::min(TILE, q0 + rows - k0);
    recompute_probs(w, q + (size_t)q0 * D, k + (size_t)k0 * D, lse + q0, rows, cols, D, q0, k0, scale);
    softmax_grad(w, dout + (size_t)q0 * D, v + (size_t)k0 * D, delta + q0, rows, cols, D);
    sgemm_serial(false, false, rows, D, cols, scale, w.dp.data(), TILE, k + (size_t)k0 * D, D, 1.0f, dqt, D);
  }
}

// dk, dv rows of one key tile, summed over the group's query heads (h0 .. h0 + group) in order.
// qh, douth, lseh, deltah point at head h0; consecutive heads are T * D (or T) apart.
void dkdv_tile(float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v,
               const float* lse, const float* delta, int group, int T, int D, int k0) {
  TileScratch& w = scratch;
  w.ensure(D);
  const int cols = std::min(TILE, T - k0);
  const float scale = 1.0f / std::sqrt((float)D);
  float* dkt = dk + (size_t)k0 * D;
  float* dvt = dv + (size_t)k0 * D;
  std::fill(dkt, dkt + (size_t)cols * D, 0.0f);
  std::fill(dvt, dvt + (size_t)cols * D, 0.0f);
  for (int g = 0; g < group; g++) {
    const float* qh = q + (size_t)g * T * D;
    const float* doh = dout + (size_t)g * T * D;
    for (int q0 = k0; q0 < T; q0 += TILE) {
      const int rows = std::min(TILE, T - q0);
      recompute_probs(w, qh + (size_t)q0 * D, k + (size_t)k0 * D, lse + (size_t)g * T + q0, rows, cols, D, q0, k0,
                      scale);
      // dv_tile (cols, D) += p^T (cols, rows) @ dout_tile (rows, D)
      sgemm_serial(true, false, cols, D, rows, 1.0f, w.p.data(), TILE, doh + (size_t)q0 * D, D, 1.0f, dvt, D);
      softmax_grad(w, doh + (size_t)q0 * D, v + (size_t)k0 * D, delta + (size_t)g * T + q0, rows, cols, D);
      // dk_tile (cols, D) += scale * ds^T (cols, rows) @ q_tile (rows, D)
      sgemm_serial(true, false, cols, D, rows, scale, w.dp.data(), TILE, qh + (size_t)q0 * D, D, 1.0f, dkt, D);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------- entry points

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B, int H, int Hkv,
                       int T, int D) {
  check_attention_heads(H, Hkv, "attention_forward");
  if (B <= 0 || T <= 0 || D <= 0) return;
  const int group = H / Hkv, tiles = (T + TILE - 1) / TILE;
  for_each_tile_pair(B * H, tiles, [&](int bh, int tile) {
    const int b = bh / H, h = bh % H;
    const size_t qo = (size_t)bh * T * D, kvo = ((size_t)b * Hkv + h / group) * T * D;
    forward_tile(out + qo, lse + (size_t)bh * T, q + qo, k + kvo, v + kvo, T, D, tile * TILE);
  });
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, int B, int H, int Hkv, int T, int D) {
  check_attention_heads(H, Hkv, "attention_backward");
  if (B <= 0 || T <= 0 || D <= 0) return;
  const int group = H / Hkv, tiles = (T + TILE - 1) / TILE;
  // delta (B, H, T) = rowsum(dout * out): the softmax Jacobian's correction term per query row.
  std::vector<float> delta((size_t)B * H * T);
  parallel_for((int64_t)B * H * T, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* a = dout + r * D;
      const float* o = out + r * D;
      float s = 0;
      for (int d = 0; d < D; d++) s += a[d] * o[d];
      delta[r] = s;
    }
  });
  for_each_tile_pair(B * H, tiles, [&](int bh, int tile) {
    const int b = bh / H, h = bh % H;
    const size_t qo = (size_t)bh * T * D, kvo = ((size_t)b * Hkv + h / group) * T * D;
    dq_tile(dq + qo, dout + qo, q + qo, k + kvo, v + kvo, lse + (size_t)bh * T, delta.data() + (size_t)bh * T, T, D,
            tile * TILE);
  });
  for_each_tile_pair(B * Hkv, tiles, [&](int bkv, int tile) {
    const int b = bkv / Hkv, hkv = bkv % Hkv;
    const int h0 = hkv * group;  // first query head reading this kv head
    const size_t qo = ((size_t)b * H + h0) * T * D, kvo = (size_t)bkv * T * D, ro = ((size_t)b * H + h0) * T;
    dkdv_tile(dk + kvo, dv + kvo, dout + qo, q + qo, k + kvo, v + kvo, lse + ro, delta.data() + ro, group, T, D,
              tile * TILE);
  });
}

}  // namespace engine
