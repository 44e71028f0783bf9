// Causal grouped-query attention, flash style: scores are made tile by tile (64 queries x 64 keys)
// with an online softmax, so memory stays O(T * D) and the log-sum-exp per query row is saved for
// the backward pass, which recomputes the probabilities instead of storing them.
// Shapes: B batch, H query heads, Hkv key/value heads (H = Hkv * group), T tokens, D head dim.
// q, out, dout, dq (B, H, T, D); k, v, dk, dv (B, Hkv, T, D); lse (B, H, T).
// Tile products run on the packed SGEMM (gemm.h), row softmax on the vector exp (simd.h).
// Forward: threads take whole (head, query tile) units that own their rows, so results are
// bit-identical for any thread count; units pair tile i with tile n-1-i so every unit has the
// same causal work. Backward: one pass over key tiles (attention_backward.h), bit-identical run
// to run for a fixed thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention_backward.h"
#include "gemm.h"
#include "op_checks.h"
#include "ops.h"
#include "parallel.h"
#include "simd.h"

namespace engine {

namespace {

constexpr int TILE = 64;  // forward query and key tile size (equal, so causal tiles line up)
// Backward tiles: BACKWARD_SPAN query rows x BACKWARD_KEY_TILE keys. Wider than the forward's so
// each packed operand of the tile GEMMs (head dim deep) serves more products; P and dS stay in L2.
constexpr int BACKWARD_SPAN = 256;
constexpr int BACKWARD_KEY_TILE = 128;

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
  std::vector<float> s, p, acc, row_max, row_sum;
  void ensure(int D) {
    s.resize(TILE * TILE);
    p.resize(TILE * TILE);
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
  const int group = H / Hkv, tiles = (T + BACKWARD_KEY_TILE - 1) / BACKWARD_KEY_TILE;
  // Key tile j is read by every query row from its own start on, taken BACKWARD_SPAN rows at a time.
  std::vector<int64_t> cost((size_t)B * Hkv * tiles);
  for (size_t t = 0; t < cost.size(); t++) cost[t] = (int64_t)group * (T - (int)(t % tiles) * BACKWARD_KEY_TILE);
  flash_backward::run(dq, dk, dv, {dout, q, k, v, out, lse, B, H, Hkv, T, D}, BACKWARD_KEY_TILE, cost,
                      [&](int64_t task, int, std::vector<flash_backward::RowSpan>& spans) {
                        for (int q0 = (int)(task % tiles) * BACKWARD_KEY_TILE; q0 < T; q0 += BACKWARD_SPAN)
                          spans.push_back({q0, std::min(BACKWARD_SPAN, T - q0)});
                      });
}

}  // namespace engine
