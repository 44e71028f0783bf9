// Per-token sparse attention (token_sparse_attention.h): forward against a naive masked softmax,
// backward and the attention-KL gradients against central finite differences (double), on an
// InfLLM-V2 selection of random q/k with a tail block and GQA groups of 2.
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "block_mask.h"
#include "block_selector.h"
#include "check.h"
#include "test_random.h"
#include "token_sparse_attention.h"

using namespace engine;

namespace {

MaskSpec spec16() {
  MaskSpec s;
  s.block_size = 16;
  s.global_blocks = 1;
  s.window_blocks = 0;
  s.topk_blocks = 1;
  s.selector = MaskSpec::InfLLMv2;
  s.dense_below = 0;
  return s;
}

bool selected(const TokenBlockSelection& s, int g, int t, int j) {
  if (j > t) return false;
  for (int i = 0; i < s.n(g, t); i++)
    if (s.row(g, t)[i] == j / s.block_size) return true;
  return false;
}

// Naive masked attention in double: out (H, T, D) of one sequence.
std::vector<double> naive(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v, int H,
                          int Hkv, int T, int D, const TokenBlockSelection& s) {
  std::vector<double> out((size_t)H * T * D, 0.0);
  for (int h = 0; h < H; h++) {
    const int g = h / (H / Hkv);
    for (int t = 0; t < T; t++) {
      std::vector<double> p(T, 0.0);
      double mx = -1e300, z = 0;
      for (int j = 0; j < T; j++) {
        if (!selected(s, g, t, j)) continue;
        double d = 0;
        for (int e = 0; e < D; e++) d += (double)q[((size_t)h * T + t) * D + e] * k[((size_t)g * T + j) * D + e];
        p[j] = d / std::sqrt((double)D);
        mx = std::max(mx, p[j]);
      }
      for (int j = 0; j < T; j++) z += selected(s, g, t, j) ? (p[j] = std::exp(p[j] - mx)) : (p[j] = 0);
      for (int j = 0; j < T; j++)
        for (int e = 0; e < D; e++) out[((size_t)h * T + t) * D + e] += p[j] / z * v[((size_t)g * T + j) * D + e];
    }
  }
  return out;
}

}  // namespace

TEST(token_sparse_attention_forward_matches_naive_masked_softmax) {
  Rng r{11};
  const int H = 4, Hkv = 2, T = 16 * 5 + 3, D = 8;
  auto q = randn((size_t)H * T * D, r), k = randn((size_t)Hkv * T * D, r), v = randn((size_t)Hkv * T * D, r);
  const TokenBlockSelection s = infllmv2_select(q.data(), k.data(), H, Hkv, T, D, spec16());
  EXPECT(s.density() < 1);
  std::vector<float> out((size_t)H * T * D), lse((size_t)H * T);
  token_sparse_attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), 1, H, Hkv, T, D, &s);
  const auto want = naive(q, k, v, H, Hkv, T, D, s);
  std::vector<float> w(want.begin(), want.end());
  EXPECT_CLOSE(out.data(), w.data(), out.size(), 1e-5, 1e-4);
}

TEST(token_sparse_attention_backward_and_kl_gradients_match_finite_differences) {
  Rng r{12};
  const int H = 4, Hkv = 2, T = 16 * 4 + 5, D = 4;
  auto q = randn((size_t)H * T * D, r), k = randn((size_t)Hkv * T * D, r), v = randn((size_t)Hkv * T * D, r);
  auto dout = randn((size_t)H * T * D, r);
  const TokenBlockSelection s = infllmv2_select(q.data(), k.data(), H, Hkv, T, D, spec16());
  // Attention: L = sum(dout * out(q, k, v)), selection fixed.
  auto loss = [&]() {
    const auto o = naive(q, k, v, H, Hkv, T, D, s);
    double l = 0;
    for (size_t i = 0; i < o.size(); i++) l += o[i] * dout[i];
    return l;
  };
  std::vector<float> out((size_t)H * T * D), lse((size_t)H * T), dq(q.size()), dk(k.size()), dv(v.size());
  token_sparse_attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), 1, H, Hkv, T, D, &s);
  token_sparse_attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(),
                                  out.data(), lse.data(), 1, H, Hkv, T, D, &s);
  auto fd_check = [&](std::vector<float>& x, const std::vector<float>& grad, const std::function<double()>& f,
                      const char* what) {
    for (size_t i : {(size_t)0, x.size() / 3, x.size() / 2 + 1, x.size() - 1}) {
      const float saved = x[i];
      const float h = 1e-2f;
      x[i] = saved + h;
      const double up = f();
      x[i] = saved - h;
      const double down = f();
      x[i] = saved;
      const double fd = (up - down) / (2.0 * ((double)(saved + h) - (double)saved));
      EXPECT_MSG(std::fabs(grad[i] - fd) <= 2e-3 + 2e-2 * std::fabs(fd), what << "[" << i << "] " << grad[i] << " vs " << fd);
    }
  };
  fd_check(q, dq, loss, "dq");
  fd_check(k, dk, loss, "dk");
  fd_check(v, dv, loss, "dv");

  // Attention KL against a different teacher, gradients w.r.t. the student's q and k.
  auto qt = randn(q.size(), r), kt = randn(k.size(), r), vt = randn(v.size(), r);
  std::vector<float> tout(out.size()), tlse(lse.size());
  TokenBlockSelection all = s;  // the teacher is dense: every causal block
  MaskSpec dense = spec16();
  dense.dense_below = T + 1;
  all = infllmv2_select(qt.data(), kt.data(), H, Hkv, T, D, dense);
  EXPECT(all.dense);
  token_sparse_attention_forward(tout.data(), tlse.data(), qt.data(), kt.data(), vt.data(), 1, H, Hkv, T, D, &all);
  auto kl = [&]() {
    return token_sparse_attn_kl(nullptr, nullptr, 0, nullptr, q.data(), k.data(), qt.data(), kt.data(), tlse.data(), 1,
                                H, Hkv, T, D, &s);
  };
  std::vector<float> gq(q.size()), gk(k.size());
  double recall = 0;
  const double l0 = token_sparse_attn_kl(gq.data(), gk.data(), 1.0f, &recall, q.data(), k.data(), qt.data(), kt.data(),
                                         tlse.data(), 1, H, Hkv, T, D, &s);
  EXPECT(l0 > 0 && recall > 0 && recall < 1);
  fd_check(q, gq, kl, "dq_kl");
  fd_check(k, gk, kl, "dk_kl");
}
