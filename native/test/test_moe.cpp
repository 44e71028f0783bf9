// Mixture-of-experts routing and row ops (moe.h, ops.h): top-k with ties to the lower index,
// renormalisation, grouping, the routing backward against central differences in double, and the
// row ops against naive loops, bit-identical across thread counts.
#include <cmath>
#include <cstring>
#include <vector>

#include "check.h"
#include "moe.h"
#include "ops.h"
#include "parallel.h"

using namespace engine;

namespace {

std::vector<float> values(size_t n, uint64_t seed, float scale = 1.f) {
  std::vector<float> v(n);
  for (auto& x : v) x = scale * (float)((double)(splitmix64(seed) >> 11) / 9007199254740992.0 * 2 - 1);
  return v;
}

}  // namespace

TEST(moe_route_picks_top_k_with_ties_to_the_lower_index_and_groups_by_expert) {
  // Token 0: experts 1 and 3 tie at the top; token 1: all equal.
  const std::vector<float> z = {0.f, 2.f, 1.f, 2.f, 5.f, 5.f, 5.f, 5.f};
  MoeRouting r = moe_route(z.data(), 2, 4, 2, true);
  EXPECT(r.expert == (std::vector<int32_t>{1, 3, 0, 1}));
  EXPECT(std::fabs(r.weight[0] - 0.5f) < 1e-7f && std::fabs(r.weight[2] - 0.5f) < 1e-7f);
  EXPECT(r.offset == (std::vector<int64_t>{0, 1, 3, 3, 4}));
  EXPECT(r.rows == (std::vector<int32_t>{1, 0, 1, 0}));  // expert 0: token 1; expert 1: tokens 0, 1; expert 3: token 0
  for (int n = 0; n < 2; n++)
    for (int j = 0; j < 2; j++) EXPECT(r.rows[r.pos[n * 2 + j]] == n);
  MoeRouting raw = moe_route(z.data(), 2, 4, 2, false);
  EXPECT(raw.weight[0] == raw.probs[1] && raw.weight[1] == raw.probs[3]);
}

TEST(moe_route_backward_matches_central_differences) {
  const int N = 5, E = 6, K = 3;
  const std::vector<float> z = values((size_t)N * E, 1, 2.f), dw = values((size_t)N * K, 2), dp = values((size_t)N * E, 3);
  for (bool norm : {false, true}) {
    const MoeRouting r = moe_route(z.data(), N, E, K, norm);
    std::vector<float> dz((size_t)N * E);
    moe_route_backward(dz.data(), r, dw.data(), dp.data(), norm);
    // f(z) = sum dw * weight + sum dp * probs, with the top-k choice held fixed (as the gradient does).
    auto f = [&](const std::vector<double>& zz) {
      double total = 0;
      for (int n = 0; n < N; n++) {
        double m = -1e300, s = 0, chosen = 0;
        for (int e = 0; e < E; e++) m = std::max(m, zz[n * E + e]);
        std::vector<double> p(E);
        for (int e = 0; e < E; e++) s += (p[e] = std::exp(zz[n * E + e] - m));
        for (int e = 0; e < E; e++) p[e] /= s;
        for (int j = 0; j < K; j++) chosen += p[r.expert[n * K + j]];
        for (int j = 0; j < K; j++) total += dw[n * K + j] * p[r.expert[n * K + j]] / (norm ? chosen : 1.0);
        for (int e = 0; e < E; e++) total += dp[n * E + e] * p[e];
      }
      return total;
    };
    std::vector<double> zz(z.begin(), z.end());
    for (size_t i = 0; i < zz.size(); i++) {
      const double h = 1e-6, saved = zz[i];
      zz[i] = saved + h;
      const double up = f(zz);
      zz[i] = saved - h;
      const double down = f(zz);
      zz[i] = saved;
      const double fd = (up - down) / (2 * h);
      EXPECT_MSG(std::fabs(dz[i] - fd) <= 1e-5 + 1e-4 * std::fabs(fd), "dlogits[" + std::to_string(i) + "]");
    }
  }
}

TEST(moe_row_ops_match_naive_loops_for_any_thread_count) {
  const int N = 23, K = 2, E = 4, C = 37;
  const std::vector<float> z = values((size_t)N * E, 4);
  const MoeRouting r = moe_route(z.data(), N, E, K, true);
  const int64_t M = (int64_t)N * K;
  const std::vector<float> x = values((size_t)N * C, 5), y = values((size_t)M * C, 6), dout = values((size_t)N * C, 7);
  auto run = [&](std::vector<float>& xg, std::vector<float>& out, std::vector<float>& dy, std::vector<float>& dw) {
    xg.assign(M * C, 9.f);
    out.assign((size_t)N * C, 1.f);
    dy.assign(M * C, 9.f);
    dw.assign(M, 9.f);
    moe_gather_rows(xg.data(), x.data(), r.rows.data(), M, C);
    moe_combine(out.data(), y.data(), r.pos.data(), r.weight.data(), N, K, C);
    moe_combine_backward(dy.data(), dw.data(), dout.data(), y.data(), r.pos.data(), r.weight.data(), N, K, C);
  };
  std::vector<float> xg, out, dy, dw;
  run(xg, out, dy, dw);
  for (int64_t i = 0; i < M; i++)
    for (int c = 0; c < C; c++) EXPECT(xg[i * C + c] == x[(size_t)r.rows[i] * C + c]);
  for (int n = 0; n < N; n++)
    for (int j = 0; j < K; j++) {
      const int64_t row = r.pos[n * K + j];
      double dot = 0;
      for (int c = 0; c < C; c++) {
        EXPECT(dy[row * C + c] == r.weight[n * K + j] * dout[(size_t)n * C + c]);
        dot += (double)dout[(size_t)n * C + c] * y[row * C + c];
      }
      EXPECT(std::fabs(dw[n * K + j] - dot) <= 1e-5 * (1 + std::fabs(dot)));
    }
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) {
      double want = 1;
      for (int j = 0; j < K; j++) want += (double)r.weight[n * K + j] * y[(size_t)r.pos[n * K + j] * C + c];
      EXPECT(std::fabs(out[(size_t)n * C + c] - want) <= 1e-5);
    }
  const int threads = ThreadPool::get().threads();
  ThreadPool::get().set_threads(threads == 1 ? 3 : 1);
  std::vector<float> xg2, out2, dy2, dw2;
  run(xg2, out2, dy2, dw2);
  ThreadPool::get().set_threads(threads);
  EXPECT(xg2 == xg && out2 == out && dy2 == dy && dw2 == dw);
}
