// One-pass flash attention backward (see attention_backward.h for the contract and the design).
#include "attention_backward.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "parallel.h"
#include "simd.h"

namespace engine {
namespace flash_backward {

namespace {

// Per-thread tiles, grown on demand and kept across calls.
struct Scratch {
  std::vector<float> p, ds, dk, dv;
  std::vector<RowSpan> spans;
};
thread_local Scratch scratch;

// Where a task's dQ goes: query head g's row q0 of its kv unit is at base + g * head_stride +
// (q0 - row0) * D (dq itself, or a piece's buffer that starts at row row0).
struct DqTarget {
  float* base;
  size_t head_stride;
  int row0;
};

// delta (B * H * T) = rowsum(dout * out): the softmax Jacobian's correction term per query row.
std::vector<float> row_deltas(const Tensors& x) {
  const int64_t rows = (int64_t)x.B * x.H * x.T;
  std::vector<float> delta(rows);
  parallel_for(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float *a = x.dout + r * x.D, *o = x.out + r * x.D;
      float s = 0;
      for (int d = 0; d < x.D; d++) s += a[d] * o[d];
      delta[r] = s;
    }
  });
  return delta;
}

// P (rows, cols) = exp(scale Q K^T - lse) with keys after each row's query position set to 0.
void probabilities(float* P, const float* Q, const float* K, const float* lse, int rows, int cols, int D, int q0,
                   int k0, float scale) {
  sgemm_serial(false, true, rows, cols, D, scale, Q, D, K, D, 0.0f, P, cols);
  for (int r = 0; r < rows; r++) {
    float* row = P + (size_t)r * cols;
    const int n = std::max(0, std::min(cols, q0 + r - k0 + 1));
    exp_shift_sum(row, row, n, lse[r]);
    if (n < cols) std::memset(row + n, 0, sizeof(float) * (cols - n));
  }
}

// dS (rows, cols) = P * (dO V^T - delta_row).
void softmax_grad(float* dS, const float* P, const float* dO, const float* V, const float* delta, int rows, int cols,
                  int D) {
  sgemm_serial(false, true, rows, cols, D, 1.0f, dO, D, V, D, 0.0f, dS, cols);
  for (int r = 0; r < rows; r++) {
    float* g = dS + (size_t)r * cols;
    const float* p = P + (size_t)r * cols;
    const float c = delta[r];
    for (int col = 0; col < cols; col++) g[col] = p[col] * (g[col] - c);
  }
}

// One key block [k0, k0 + cols) of kv unit u: writes its dK, dV rows, adds into dQ.
void key_task(const Tensors& x, const float* delta, const SpansFn& spans_of, int64_t task, int u, int k0, int cols,
              const DqTarget& dq, float* dk, float* dv) {
  const int D = x.D, T = x.T, group = x.H / x.Hkv;
  const float scale = 1.0f / std::sqrt((float)D);
  const float* K = x.k + ((size_t)u * T + k0) * D;
  const float* V = x.v + ((size_t)u * T + k0) * D;
  Scratch& w = scratch;
  w.dk.assign((size_t)cols * D, 0.0f);
  w.dv.assign((size_t)cols * D, 0.0f);
  for (int g = 0; g < group; g++) {
    const size_t head = (size_t)u * group + g;  // b * H + h, since h = kv head * group + g
    w.spans.clear();
    spans_of(task, g, w.spans);
    for (const RowSpan& s : w.spans) {
      const size_t at = (head * T + s.q0) * D;
      const float *Q = x.q + at, *dO = x.dout + at;
      const size_t tile = (size_t)s.rows * cols;
      if (w.p.size() < tile) w.p.resize(tile), w.ds.resize(tile);
      probabilities(w.p.data(), Q, K, x.lse + head * T + s.q0, s.rows, cols, D, s.q0, k0, scale);
      // dV (cols, D) += P^T (cols, rows) dO (rows, D)
      sgemm_serial(true, false, cols, D, s.rows, 1.0f, w.p.data(), cols, dO, D, 1.0f, w.dv.data(), D);
      softmax_grad(w.ds.data(), w.p.data(), dO, V, delta + head * T + s.q0, s.rows, cols, D);
      // dK (cols, D) += scale dS^T (cols, rows) Q (rows, D)
      sgemm_serial(true, false, cols, D, s.rows, scale, w.ds.data(), cols, Q, D, 1.0f, w.dk.data(), D);
      // dQ (rows, D) += scale dS (rows, cols) K (cols, D)
      float* dq_rows = dq.base + g * dq.head_stride + (size_t)(s.q0 - dq.row0) * D;
      sgemm_serial(false, false, s.rows, D, cols, scale, w.ds.data(), cols, K, D, 1.0f, dq_rows, D);
    }
  }
  std::memcpy(dk + ((size_t)u * T + k0) * D, w.dk.data(), sizeof(float) * cols * D);
  std::memcpy(dv + ((size_t)u * T + k0) * D, w.dv.data(), sizeof(float) * cols * D);
}

// Cuts [0, cost.size()) into `pieces` contiguous ranges of about equal cost (+1 per task, so
// free tasks still spread); returns the pieces + 1 bounds.
std::vector<int64_t> cut(const std::vector<int64_t>& cost, int pieces) {
  const int64_t n = (int64_t)cost.size();
  int64_t total = 0;
  for (int64_t c : cost) total += c + 1;
  std::vector<int64_t> bounds(pieces + 1, n);
  bounds[0] = 0;
  int64_t sum = 0, t = 0;
  for (int p = 1; p < pieces; p++) {
    const int64_t goal = total * p / pieces;
    while (t < n && sum + cost[t] + 1 <= goal) sum += cost[t++] + 1;
    bounds[p] = t;
  }
  return bounds;
}

}  // namespace

void run(float* dq, float* dk, float* dv, const Tensors& x, int block_size, const std::vector<int64_t>& cost,
         const SpansFn& spans_of) {
  const int T = x.T, D = x.D, group = x.H / x.Hkv;
  const int nb = (T + block_size - 1) / block_size;
  const int64_t tasks = (int64_t)x.B * x.Hkv * nb;
  const size_t unit_floats = (size_t)group * T * D;  // dq of one kv unit: its group's query heads
  const std::vector<float> delta = row_deltas(x);
  // Two pieces per thread, taken first come first served: a thread slowed by other work takes
  // fewer. Which thread runs a piece never changes its arithmetic.
  const int threads = ThreadPool::get().threads();
  const int pieces = (int)std::max<int64_t>(1, std::min<int64_t>(2 * threads, tasks));
  const std::vector<int64_t> bounds = cut(cost, pieces);

  // A piece that starts inside a unit (not at its key block 0) adds that unit's dQ into its own
  // buffer, rows from its first key block on (causal: earlier rows get nothing from it).
  std::vector<std::vector<float>> partial(pieces);
  std::vector<int> partial_row0(pieces, 0);
  std::atomic<int> next{0};
  parallel_for(threads, [&](int64_t, int64_t) {
    for (int p; (p = next.fetch_add(1, std::memory_order_relaxed)) < pieces;) {
      const int64_t begin = bounds[p], end = bounds[p + 1];
      for (int64_t t = begin; t < end; t++) {
        const int u = (int)(t / nb), j = (int)(t % nb), k0 = j * block_size;
        DqTarget target{dq + (size_t)u * unit_floats, (size_t)T * D, 0};
        if (t / nb == begin / nb && begin % nb != 0) {  // continues a unit an earlier piece began
          const int row0 = (int)(begin % nb) * block_size;
          if (t == begin) {
            partial[p].assign((size_t)group * (T - row0) * D, 0.0f);
            partial_row0[p] = row0;
          }
          target = {partial[p].data(), (size_t)(T - row0) * D, row0};
        } else if (j == 0) {
          std::fill(target.base, target.base + unit_floats, 0.0f);
        }
        key_task(x, delta.data(), spans_of, t, u, k0, std::min(block_size, T - k0), target, dk, dv);
      }
    }
  });

  // Add the buffers in piece order (a unit may continue over several pieces).
  for (int p = 1; p < pieces; p++) {
    if (partial[p].empty()) continue;
    const int u = (int)(bounds[p] / nb), row0 = partial_row0[p];
    const int64_t len = (int64_t)(T - row0) * D;
    parallel_for((int64_t)group * len, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; i++) {
        const int64_t g = i / len, e = i % len;
        dq[(size_t)u * unit_floats + (size_t)g * T * D + (size_t)row0 * D + e] += partial[p][i];
      }
    });
  }
}

}  // namespace flash_backward
}  // namespace engine
