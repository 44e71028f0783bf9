// attn_kl / attn_recall metrics and the attention-KL distillation loss (attention_metrics.h)
// against a naive float64 reference; loss gradients against central finite differences.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "attention_metrics.h"
#include "block_mask.h"
#include "check.h"
#include "test_random.h"
#include "parallel.h"

using namespace engine;

namespace {

struct Dims { int B, H, Hkv, T, D; };

// Per row (B, H, T): KL(P_s || P_t) and the teacher mass inside the mask, in float64.
// Also returns the teacher's dense lse (float) for the calls that take it.
struct RefRows { std::vector<double> kl, recall; std::vector<float> lse_t; };

RefRows reference(const std::vector<double>& qs, const std::vector<double>& ks, const std::vector<double>& qt,
                  const std::vector<double>& kt, const Dims& d, const BlockMask& m) {
  RefRows out;
  const size_t rows = (size_t)d.B * d.H * d.T;
  out.kl.assign(rows, 0);
  out.recall.assign(rows, 0);
  out.lse_t.assign(rows, 0);
  const double scale = 1.0 / std::sqrt((double)d.D);
  std::vector<double> ss(d.T), st(d.T);
  for (int b = 0; b < d.B; b++)
    for (int h = 0; h < d.H; h++) {
      const int kvh = h / (d.H / d.Hkv), mh = m.mask_head(h, d.H);
      for (int t = 0; t < d.T; t++) {
        const size_t qo = (((size_t)b * d.H + h) * d.T + t) * d.D;
        double mt = -INFINITY, ms = -INFINITY;
        for (int u = 0; u <= t; u++) {
          const size_t ko = (((size_t)b * d.Hkv + kvh) * d.T + u) * d.D;
          double a = 0, c = 0;
          for (int x = 0; x < d.D; x++) { a += qs[qo + x] * ks[ko + x]; c += qt[qo + x] * kt[ko + x]; }
          ss[u] = m.test(mh, t / m.block_size, u / m.block_size) ? a * scale : -INFINITY;
          st[u] = c * scale;
          ms = std::max(ms, ss[u]);
          mt = std::max(mt, st[u]);
        }
        double zs = 0, zt = 0;
        for (int u = 0; u <= t; u++) { zs += std::exp(ss[u] - ms); zt += std::exp(st[u] - mt); }
        const double ls = ms + std::log(zs), lt = mt + std::log(zt);
        double kl = 0, rec = 0;
        for (int u = 0; u <= t; u++) {
          if (ss[u] == -INFINITY) continue;
          const double lps = ss[u] - ls, lpt = st[u] - lt;
          kl += std::exp(lps) * (lps - lpt);
          rec += std::exp(lpt);
        }
        const size_t row = ((size_t)b * d.H + h) * d.T + t;
        out.kl[row] = kl;
        out.recall[row] = rec;
        out.lse_t[row] = (float)lt;
      }
    }
  return out;
}

std::vector<double> to_double(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

double mean(const std::vector<double>& x) {
  double s = 0;
  for (double v : x) s += v;
  return s / x.size();
}

BlockMask sparse_mask(const Dims& d, int block_size, bool shared, uint64_t seed) {
  MaskSpec s;
  s.block_size = block_size;
  s.global_blocks = 1;
  s.window_blocks = 1;
  s.random_blocks = 1;
  s.random_seed = seed;
  s.share_gqa_group = shared;
  return build_block_mask(s, d.T, d.H, d.Hkv, 0, nullptr);
}

}  // namespace

TEST(attention_metrics_match_float64_reference) {
  Rng r{31};
  const Dims dims[] = {{1, 4, 2, 16 * 7 + 3, 32}, {2, 2, 2, 64, 16}, {1, 8, 1, 16 * 5, 64}};
  for (const Dims& d : dims) {
    for (bool shared : {true, false}) {
      BlockMask m = sparse_mask(d, 16, shared, 9);
      auto qs = randn((size_t)d.B * d.H * d.T * d.D, r, 1.0f), ks = randn((size_t)d.B * d.Hkv * d.T * d.D, r, 1.0f);
      auto qt = randn(qs.size(), r, 1.0f), kt = randn(ks.size(), r, 1.0f);
      RefRows ref = reference(to_double(qs), to_double(ks), to_double(qt), to_double(kt), d, m);
      std::vector<double> kl_rows(ref.kl.size()), recall_rows(ref.kl.size());
      for (const float* lse : {(const float*)nullptr, (const float*)ref.lse_t.data()}) {
        AttentionMetrics got = attention_metrics(qs.data(), ks.data(), qt.data(), kt.data(), lse, d.B, d.H, d.Hkv, d.T,
                                                 d.D, m, kl_rows.data(), recall_rows.data());
        EXPECT_MSG(std::fabs(got.attn_kl - mean(ref.kl)) < 1e-5 * std::max(1.0, mean(ref.kl)),
                   "attn_kl " << got.attn_kl << " want " << mean(ref.kl));
        EXPECT_MSG(std::fabs(got.attn_recall - mean(ref.recall)) < 1e-5, "attn_recall " << got.attn_recall);
        EXPECT_CLOSE(kl_rows.data(), ref.kl.data(), ref.kl.size(), 1e-5, 1e-5);
        EXPECT_CLOSE(recall_rows.data(), ref.recall.data(), ref.recall.size(), 1e-5, 1e-5);
        EXPECT(got.density == m.density() && got.attn_flops_saved == m.flops_saved());
        EXPECT(got.attn_recall > 0 && got.attn_kl > 0 && (m.density() == 1.0 ? std::fabs(got.attn_recall - 1) < 1e-5 : got.attn_recall < 1));
      }
    }
  }
}

TEST(attention_metrics_pure_masking_kl_is_minus_log_recall) {
  // Student = teacher restricted to the mask: per row, KL(P_s || P_t) = -log(kept teacher mass).
  // attn_kl is the mean over rows of that, so it is >= -log(attn_recall) (Jensen), equal when
  // every row keeps the same mass (the dense mask: both 0).
  Rng r{5};
  const Dims d{2, 4, 2, 16 * 9 + 11, 32};
  BlockMask m = sparse_mask(d, 16, true, 3);
  auto q = randn((size_t)d.B * d.H * d.T * d.D, r, 2.0f), k = randn((size_t)d.B * d.Hkv * d.T * d.D, r, 2.0f);
  std::vector<double> kl_rows((size_t)d.B * d.H * d.T), recall_rows(kl_rows.size());
  AttentionMetrics got = attention_metrics(q.data(), k.data(), q.data(), k.data(), nullptr, d.B, d.H, d.Hkv, d.T, d.D,
                                           m, kl_rows.data(), recall_rows.data());
  double worst = 0;
  for (size_t i = 0; i < kl_rows.size(); i++) worst = std::max(worst, std::fabs(kl_rows[i] + std::log(recall_rows[i])));
  EXPECT_MSG(worst < 1e-6, "max |kl_row + log(recall_row)| = " << worst);
  EXPECT(got.attn_kl >= -std::log(got.attn_recall) - 1e-9);
  EXPECT(got.attn_kl > 0.01);  // the mask really drops mass
  MaskSpec dense;
  dense.dense_below = 1 << 20;
  BlockMask full = build_block_mask(dense, d.T, d.H, d.Hkv, 0, nullptr);
  std::vector<double> none_rows(kl_rows.size());
  AttentionMetrics none = attention_metrics(q.data(), k.data(), q.data(), k.data(), nullptr, d.B, d.H, d.Hkv, d.T, d.D, full,
                                            none_rows.data());
  EXPECT(none.attn_kl >= 0 && none.attn_kl < 1e-9 && std::fabs(none.attn_recall - 1) < 1e-9);
  // Never negative, not even by rounding (a KL is >= 0): it used to print as -4e-9.
  EXPECT(*std::min_element(none_rows.begin(), none_rows.end()) >= 0);
}

TEST(attn_kl_loss_value_and_gradients_match_finite_differences) {
  Rng r{17};
  const Dims d{1, 4, 2, 16 * 3 + 5, 16};
  for (bool shared : {true, false}) {
    BlockMask m = sparse_mask(d, 16, shared, 21);
    auto qs = randn((size_t)d.B * d.H * d.T * d.D, r, 1.0f), ks = randn((size_t)d.B * d.Hkv * d.T * d.D, r, 1.0f);
    auto qt = randn(qs.size(), r, 1.0f), kt = randn(ks.size(), r, 1.0f);
    auto dqs = to_double(qs), dks = to_double(ks), dqt = to_double(qt), dkt = to_double(kt);
    RefRows ref = reference(dqs, dks, dqt, dkt, d, m);
    std::vector<float> dq(qs.size(), NAN), dk(ks.size(), NAN);
    const double loss = attn_kl_loss(dq.data(), dk.data(), qs.data(), ks.data(), qt.data(), kt.data(), ref.lse_t.data(),
                                     d.B, d.H, d.Hkv, d.T, d.D, m);
    EXPECT_MSG(std::fabs(loss - mean(ref.kl)) < 1e-5 * mean(ref.kl), "loss " << loss << " want " << mean(ref.kl));
    EXPECT(attn_kl_loss(nullptr, nullptr, qs.data(), ks.data(), qt.data(), kt.data(), ref.lse_t.data(), d.B, d.H,
                        d.Hkv, d.T, d.D, m) == loss);
    // central differences of the float64 loss, on every 7th coordinate of q and k
    const double eps = 1e-4;
    double err = 0, mag = 0;
    for (int which = 0; which < 2; which++) {
      std::vector<double>& x = which == 0 ? dqs : dks;
      const std::vector<float>& g = which == 0 ? dq : dk;
      for (size_t i = 0; i < x.size(); i += 7) {
        const double keep = x[i];
        x[i] = keep + eps;
        const double up = mean(reference(dqs, dks, dqt, dkt, d, m).kl);
        x[i] = keep - eps;
        const double down = mean(reference(dqs, dks, dqt, dkt, d, m).kl);
        x[i] = keep;
        const double fd = (up - down) / (2 * eps);
        err = std::max(err, std::fabs(fd - g[i]));
        mag = std::max(mag, std::fabs(fd));
      }
    }
    EXPECT_MSG(err / mag < 1e-4, "max |grad - fd| / max |fd| = " << err / mag);
  }
}

TEST(attn_kl_loss_bit_identical_across_thread_counts) {
  Rng r{23};
  const Dims d{2, 4, 2, 16 * 6 + 3, 32};
  BlockMask m = sparse_mask(d, 16, true, 4);
  auto qs = randn((size_t)d.B * d.H * d.T * d.D, r, 1.0f), ks = randn((size_t)d.B * d.Hkv * d.T * d.D, r, 1.0f);
  auto qt = randn(qs.size(), r, 1.0f), kt = randn(ks.size(), r, 1.0f);
  std::vector<float> lse_t = reference(to_double(qs), to_double(ks), to_double(qt), to_double(kt), d, m).lse_t;
  const int threads = ThreadPool::get().threads();
  std::vector<float> dq[2], dk[2];
  double loss[2], kl[2];
  for (int n = 0; n < 2; n++) {
    ThreadPool::get().set_threads(n + 1);
    dq[n].assign(qs.size(), 0.0f);
    dk[n].assign(ks.size(), 0.0f);
    loss[n] = attn_kl_loss(dq[n].data(), dk[n].data(), qs.data(), ks.data(), qt.data(), kt.data(), lse_t.data(), d.B, d.H,
                           d.Hkv, d.T, d.D, m);
    kl[n] = attention_metrics(qs.data(), ks.data(), qt.data(), kt.data(), nullptr, d.B, d.H, d.Hkv, d.T, d.D, m).attn_kl;
  }
  ThreadPool::get().set_threads(threads);
  EXPECT(loss[0] == loss[1] && kl[0] == kl[1] && dq[0] == dq[1] && dk[0] == dk[1]);
}
