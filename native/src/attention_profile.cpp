// Attention profile of the dense teacher (see attention_profile.h).
//
// Design choices:
// - Scores come from the float32 GEMM like the attention kernels; the softmax, the masses and
//   every sum are float64 with libm exp, so the floor of a mask equals attention_metrics' KL of
//   the teacher restricted to it (renormalised) to rounding.
// - The oracle adds pairs greedily on the pooled (batch- and row-averaged) masses, which makes
//   the masks nested: one join level per pair describes every level's mask.
#include "attention_profile.h"

#include <algorithm>
#include <cmath>
#include <queue>
#include <stdexcept>
#include <string>

#include "blocksparse_attention.h"
#include "gemm.h"

namespace engine {

namespace {
void check_dims(int B, int H, int Hkv, int T, int D, int block, const char* who) {
  if (B < 1 || H < 1 || Hkv < 1 || T < 1 || D < 1 || block < 1 || H % Hkv != 0)
    throw std::invalid_argument(std::string(who) + ": bad shape (B, H, Hkv, T, D, block must be >= 1, H % Hkv == 0)");
}
}  // namespace

void attention_row_block_mass(const float* q, const float* k, int B, int H, int Hkv, int T, int D, int block,
                              double* rows) {
  check_dims(B, H, Hkv, T, D, block, "attention_row_block_mass");
  const int nb = profile_blocks(T, block), group = H / Hkv;
  const float scale = 1.0f / std::sqrt((float)D);
  const int64_t tasks = (int64_t)B * H * nb;
  std::vector<int64_t> cost(tasks);
  for (int64_t t = 0; t < tasks; t++) cost[t] = t % nb + 1;
  blocksparse_detail::run_scheduled(cost, [&](int64_t task) {
    const int i = (int)(task % nb), h = (int)(task / nb % H), b = (int)(task / nb / H);
    const int q0 = i * block, n_rows = std::min(T, q0 + block) - q0, cols = q0 + n_rows;
    const size_t head = (size_t)b * H + h, kv_head = (size_t)b * Hkv + h / group;
    thread_local std::vector<float> s;
    s.resize((size_t)n_rows * cols);
    sgemm_serial(false, true, n_rows, cols, D, scale, q + (head * T + q0) * D, D, k + kv_head * T * D, D, 0.0f,
                 s.data(), cols);
    for (int r = 0; r < n_rows; r++) {
      const int t = q0 + r, n = t + 1;  // causal keys 0..t
      const float* sr = s.data() + (size_t)r * cols;
      double mx = -INFINITY, sum = 0;
      for (int c = 0; c < n; c++) mx = std::max(mx, (double)sr[c]);
      for (int c = 0; c < n; c++) sum += std::exp(sr[c] - mx);
      const double lse = mx + std::log(sum);
      double* out = rows + (head * T + t) * nb;
      for (int j = 0; j < nb; j++) out[j] = 0;
      for (int c = 0; c < n; c++) out[c / block] += std::exp(sr[c] - lse);
    }
  });
}

void pool_block_mass(const double* rows, int B, int H, int T, int block, double weight, double* pooled) {
  const int nb = profile_blocks(T, block);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int i = 0; i < nb; i++) {
        const int q0 = i * block, n_rows = std::min(T, q0 + block) - q0;
        double* out = pooled + ((size_t)h * nb + i) * nb;
        for (int r = 0; r < n_rows; r++) {
          const double* in = rows + (((size_t)b * H + h) * T + q0 + r) * nb;
          for (int j = 0; j <= i; j++) out[j] += weight * in[j] / n_rows;
        }
      }
}

void nested_mask_floor(const double* rows, int B, int H, int T, int block, const int32_t* join, int M, int levels,
                       double* floor_sum, double* recall_sum) {
  if (M < 1 || H % M != 0) throw std::invalid_argument("nested_mask_floor: mask heads must divide the query heads");
  const int nb = profile_blocks(T, block);
  std::vector<double> kept(levels);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const int m = h / (H / M);
      for (int t = 0; t < T; t++) {
        const int i = t / block;
        const double* in = rows + (((size_t)b * H + h) * T + t) * nb;
        const int32_t* jl = join + ((size_t)m * nb + i) * nb;
        std::fill(kept.begin(), kept.end(), 0.0);
        for (int j = 0; j <= i; j++)
          if (jl[j] >= 0 && jl[j] < levels) kept[jl[j]] += in[j];
        double acc = 0;
        for (int l = 0; l < levels; l++) {  // nested: level l keeps every pair joined at <= l
          acc += kept[l];
          floor_sum[l] += std::max(-std::log(acc), 0.0);
          recall_sum[l] += acc;
        }
      }
    }
}

std::vector<int32_t> oracle_join_levels(const double* pooled, int H, int M, int T, int block,
                                        const std::vector<double>& densities, std::vector<double>* achieved) {
  if (M < 1 || H % M != 0) throw std::invalid_argument("oracle_join_levels: mask heads must divide the query heads");
  for (size_t l = 0; l < densities.size(); l++)
    if (!(densities[l] > 0 && densities[l] <= 1) || (l > 0 && densities[l] < densities[l - 1]))
      throw std::invalid_argument("oracle_join_levels: densities must be ascending in (0, 1]");
  const int nb = profile_blocks(T, block), group = H / M, levels = (int)densities.size();
  std::vector<int32_t> join((size_t)M * nb * nb, -1);
  // Per (mask head, query block): candidate key blocks by decreasing summed mass (ties: lower block),
  // the next candidate, and each query head's pooled kept mass.
  struct Cell { std::vector<int> order; size_t next = 0; };
  std::vector<Cell> cells((size_t)M * nb);
  std::vector<double> cur((size_t)H * nb, 0.0);
  auto mass = [&](int h, int i, int j) { return pooled[((size_t)h * nb + i) * nb + j]; };
  auto gain = [&](int m, int i, int j) {
    const double w = std::min(T, (i + 1) * block) - i * block;
    double g = 0;
    for (int h = m * group; h < (m + 1) * group; h++) {
      const double c = std::max(cur[(size_t)h * nb + i], 1e-300);
      g += std::log(c + mass(h, i, j)) - std::log(c);
    }
    return w * g;
  };
  using Item = std::pair<double, int64_t>;  // (gain, cell), the largest gain first; ties: lower cell
  auto cmp = [](const Item& a, const Item& b) { return a.first != b.first ? a.first < b.first : a.second > b.second; };
  std::priority_queue<Item, std::vector<Item>, decltype(cmp)> heap(cmp);
  const int64_t total = (int64_t)M * nb * (nb + 1) / 2;
  int64_t kept = 0;
  for (int m = 0; m < M; m++)
    for (int i = 0; i < nb; i++) {
      Cell& cell = cells[(size_t)m * nb + i];
      for (int j = 0; j < i; j++) cell.order.push_back(j);
      std::stable_sort(cell.order.begin(), cell.order.end(), [&](int a, int b) {
        double sa = 0, sb = 0;
        for (int h = m * group; h < (m + 1) * group; h++) sa += mass(h, i, a), sb += mass(h, i, b);
        return sa > sb;
      });
      join[((size_t)m * nb + i) * nb + i] = 0;  // the diagonal, always kept
      for (int h = m * group; h < (m + 1) * group; h++) cur[(size_t)h * nb + i] += mass(h, i, i);
      kept++;
      if (!cell.order.empty()) heap.push({gain(m, i, cell.order[0]), (int64_t)m * nb + i});
    }
  if (achieved) achieved->assign(levels, 0.0);
  for (int l = 0; l < levels; l++) {
    while ((double)kept < densities[l] * (double)total - 1e-9 && !heap.empty()) {
      const int64_t c = heap.top().second;
      heap.pop();
      const int m = (int)(c / nb), i = (int)(c % nb);
      Cell& cell = cells[c];
      const int j = cell.order[cell.next++];
      join[((size_t)m * nb + i) * nb + j] = l;
      for (int h = m * group; h < (m + 1) * group; h++) cur[(size_t)h * nb + i] += mass(h, i, j);
      kept++;
      if (cell.next < cell.order.size()) heap.push({gain(m, i, cell.order[cell.next]), c});
    }
    if (achieved) (*achieved)[l] = total ? (double)kept / (double)total : 1.0;
  }
  return join;
}

}  // namespace engine
