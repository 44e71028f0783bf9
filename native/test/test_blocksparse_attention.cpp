// Block-sparse attention kernels against a naive float64 reference: dense attention with the
// mask applied as -inf, forward (out, lse) and the three input gradients.
// Error measure per tensor: max |got - ref| / max |ref| (a relative error that ignores tiny
// reference entries, where float32 rounding is not meaningful), required < 1e-5.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "block_mask.h"
#include "blocksparse_attention.h"
#include "check.h"
#include "test_random.h"
#include "ops.h"
#include "parallel.h"

using namespace engine;

namespace {

struct Ref {
  std::vector<double> out, lse, dq, dk, dv;
};

// Naive float64 attention with the mask applied as -inf. q (B,H,T,D), k/v (B,Hkv,T,D).
Ref reference(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
              const std::vector<float>& dout, int B, int H, int Hkv, int T, int D, const BlockMask& m) {
  Ref r;
  r.out.assign((size_t)B * H * T * D, 0);
  r.lse.assign((size_t)B * H * T, 0);
  r.dq.assign(r.out.size(), 0);
  r.dk.assign((size_t)B * Hkv * T * D, 0);
  r.dv.assign(r.dk.size(), 0);
  const double scale = 1.0 / std::sqrt((double)D);
  std::vector<double> p(T), dp(T);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const int kvh = h / (H / Hkv), mh = m.mask_head(h, H);
      const size_t qo = ((size_t)b * H + h) * T * D, ko = ((size_t)b * Hkv + kvh) * T * D;
      for (int t = 0; t < T; t++) {
        double mx = -INFINITY;
        for (int u = 0; u < T; u++) {
          const bool keep = u <= t && m.test(mh, t / m.block_size, u / m.block_size);
          if (!keep) { p[u] = -INFINITY; continue; }
          double s = 0;
          for (int d = 0; d < D; d++) s += (double)q[qo + (size_t)t * D + d] * k[ko + (size_t)u * D + d];
          p[u] = s * scale;
          mx = std::max(mx, p[u]);
        }
        double sum = 0;
        for (int u = 0; u < T; u++) { p[u] = std::exp(p[u] - mx); sum += p[u]; }
        r.lse[((size_t)b * H + h) * T + t] = mx + std::log(sum);
        double pdp = 0;
        for (int u = 0; u < T; u++) {
          p[u] /= sum;
          double g = 0;
          for (int d = 0; d < D; d++) {
            r.out[qo + (size_t)t * D + d] += p[u] * v[ko + (size_t)u * D + d];
            g += (double)dout[qo + (size_t)t * D + d] * v[ko + (size_t)u * D + d];
          }
          dp[u] = g;
          pdp += p[u] * g;
        }
        for (int u = 0; u < T; u++) {
          if (p[u] == 0) continue;
          const double ds = p[u] * (dp[u] - pdp) * scale;
          for (int d = 0; d < D; d++) {
            r.dq[qo + (size_t)t * D + d] += ds * k[ko + (size_t)u * D + d];
            r.dk[ko + (size_t)u * D + d] += ds * q[qo + (size_t)t * D + d];
            r.dv[ko + (size_t)u * D + d] += p[u] * dout[qo + (size_t)t * D + d];
          }
        }
      }
    }
  return r;
}

double rel_err(const std::vector<float>& got, const std::vector<double>& want) {
  double err = 0, mag = 0;
  for (size_t i = 0; i < got.size(); i++) {
    if (!std::isfinite(got[i])) return INFINITY;
    err = std::max(err, std::fabs(got[i] - want[i]));
    mag = std::max(mag, std::fabs(want[i]));
  }
  return mag > 0 ? err / mag : err;
}

struct Case {
  int B, H, Hkv, T, D;
  MaskSpec spec;
  std::string describe() const {
    return "B=" + std::to_string(B) + " H=" + std::to_string(H) + " Hkv=" + std::to_string(Hkv) + " T=" +
           std::to_string(T) + " D=" + std::to_string(D) + " bs=" + std::to_string(spec.block_size) +
           " g=" + std::to_string(spec.global_blocks) + " rows=" + std::to_string(spec.global_rows) +
           " w=" + std::to_string(spec.window_blocks) + " r=" + std::to_string(spec.random_blocks) +
           " topk=" + std::to_string(spec.topk_blocks) + " shared=" + std::to_string(spec.share_gqa_group);
  }
};

Case random_case(Rng& r, int index) {
  static const int ratios[] = {1, 2, 4, 8}, dims[] = {32, 64, 128}, blocks[] = {16, 32, 64, 128};
  Case c;
  const int ratio = ratios[index % 4];  // every GQA ratio and head dim appears often
  c.D = dims[(index / 4) % 3];
  c.Hkv = ratio == 8 ? 1 : 1 + r.below(2);
  c.H = c.Hkv * ratio;
  c.B = 1 + (r.below(4) == 0);
  c.spec.block_size = blocks[r.below(4)];
  // keep the float64 reference cheap: about B * H * T^2 * D <= 3e6
  const int max_t = std::max(c.spec.block_size + 1, (int)std::sqrt(3e6 / (c.H * c.B * c.D)));
  c.T = 1 + r.below(std::min(max_t, c.spec.block_size * 9));
  if (r.below(3) == 0) c.T = c.spec.block_size * (1 + r.below(std::max(1, max_t / c.spec.block_size)));  // exact multiple
  c.spec.global_blocks = r.below(3);
  c.spec.global_rows = r.below(4) == 0 ? r.below(3) : 0;
  c.spec.window_blocks = r.below(3);
  c.spec.random_blocks = r.below(3);
  c.spec.random_seed = splitmix64(r.s);
  c.spec.share_gqa_group = r.below(2) == 0;
  c.spec.topk_blocks = r.below(3) == 0 ? 1 + r.below(2) : 0;
  c.spec.selector = c.spec.topk_blocks ? MaskSpec::Pooled : MaskSpec::None;
  c.spec.dense_below = r.below(8) == 0 ? c.T + 1 : 0;
  return c;
}

BlockMask mask_for(const Case& c, Rng& r) {
  const int nb = (c.T + c.spec.block_size - 1) / c.spec.block_size;
  const int heads = c.spec.share_gqa_group ? c.Hkv : c.H;
  std::vector<float> scores((size_t)heads * nb * nb);
  for (float& s : scores) s = (float)r.below(4);  // coarse values: many ties
  return build_block_mask(c.spec, c.T, c.H, c.Hkv, 2, scores.data());
}

struct Outputs {
  std::vector<float> out, lse, dq, dk, dv;
};

Outputs run_kernels(const Case& c, const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                    const std::vector<float>& dout, const BlockMask& m) {
  Outputs o;
  o.out.assign(q.size(), NAN);
  o.lse.assign((size_t)c.B * c.H * c.T, NAN);
  o.dq.assign(q.size(), NAN);
  o.dk.assign(k.size(), NAN);
  o.dv.assign(v.size(), NAN);
  blocksparse_attention_forward(o.out.data(), o.lse.data(), q.data(), k.data(), v.data(), c.B, c.H, c.Hkv, c.T, c.D, m);
  blocksparse_attention_backward(o.dq.data(), o.dk.data(), o.dv.data(), dout.data(), q.data(), k.data(), v.data(),
                                 o.out.data(), o.lse.data(), c.B, c.H, c.Hkv, c.T, c.D, m);
  return o;
}

}  // namespace

TEST(blocksparse_attention_matches_float64_reference_on_200_random_masks) {
  Rng r{2024};
  double worst = 0;
  int tails = 0, ratio8 = 0, topk = 0, dense = 0;
  for (int n = 0; n < 200; n++) {
    Case c = random_case(r, n);
    BlockMask m = mask_for(c, r);
    tails += c.T % c.spec.block_size != 0;
    ratio8 += c.H / c.Hkv == 8;
    topk += c.spec.topk_blocks > 0;
    dense += m.dense;
    auto q = randn((size_t)c.B * c.H * c.T * c.D, r), k = randn((size_t)c.B * c.Hkv * c.T * c.D, r);
    auto v = randn(k.size(), r), dout = randn(q.size(), r);
    Outputs o = run_kernels(c, q, k, v, dout, m);
    Ref ref = reference(q, k, v, dout, c.B, c.H, c.Hkv, c.T, c.D, m);
    const double errs[] = {rel_err(o.out, ref.out), rel_err(o.lse, ref.lse), rel_err(o.dq, ref.dq),
                           rel_err(o.dk, ref.dk), rel_err(o.dv, ref.dv)};
    const char* names[] = {"out", "lse", "dq", "dk", "dv"};
    for (int e = 0; e < 5; e++) {
      worst = std::max(worst, errs[e]);
      EXPECT_MSG(errs[e] < 1e-5, "case " << n << " (" << c.describe() << "): " << names[e] << " rel err " << errs[e]);
    }
  }
  // the generator must really cover the cases the contract names
  EXPECT_MSG(tails > 50 && ratio8 == 50 && topk > 30 && dense > 5,
             "coverage: tails " << tails << " ratio8 " << ratio8 << " topk " << topk << " dense " << dense);
  std::printf("  worst relative error over 200 cases: %.3g\n", worst);
}

TEST(blocksparse_attention_simd_levels_and_thread_counts_agree) {
  // Every SIMD level the CPU has matches the float64 reference; at a fixed level the forward
  // gives bit-identical results for 1 and 2 threads (each output row is owned by one task) and
  // the backward for two runs at the same thread count.
  Rng r{77};
  Case c{1, 4, 2, 16 * 13 + 5, 64, MaskSpec{}};
  c.spec.block_size = 16;
  c.spec.random_blocks = 2;
  c.spec.random_seed = 5;
  BlockMask m = mask_for(c, r);
  auto q = randn((size_t)c.H * c.T * c.D, r), k = randn((size_t)c.Hkv * c.T * c.D, r);
  auto v = randn(k.size(), r), dout = randn(q.size(), r);
  Ref ref = reference(q, k, v, dout, c.B, c.H, c.Hkv, c.T, c.D, m);
  const int threads = ThreadPool::get().threads();
  for (const char* level : {"scalar", "avx2", "avx512"}) {
    if (!set_simd_level_for_testing(level)) continue;
    ThreadPool::get().set_threads(1);
    Outputs one = run_kernels(c, q, k, v, dout, m);
    ThreadPool::get().set_threads(3);
    Outputs three = run_kernels(c, q, k, v, dout, m), again = run_kernels(c, q, k, v, dout, m);
    EXPECT_MSG(one.out == three.out && one.lse == three.lse, level << ": forward depends on the thread count");
    EXPECT_MSG(three.dq == again.dq && three.dk == again.dk && three.dv == again.dv,
               level << ": backward differs between two runs");
    for (const Outputs* o : {&one, &three})
      EXPECT_MSG(rel_err(o->out, ref.out) < 1e-5 && rel_err(o->dq, ref.dq) < 1e-5 && rel_err(o->dk, ref.dk) < 1e-5 &&
                     rel_err(o->dv, ref.dv) < 1e-5,
                 level << ": differs from the reference");
  }
  set_simd_level_for_testing("auto");
  ThreadPool::get().set_threads(threads);
}

TEST(blocksparse_attention_backward_edge_masks_match_reference_for_any_thread_count) {
  // The one-pass backward on masks that leave key blocks with few or no readers, at thread
  // counts whose pieces cut kv heads apart (dq then sums several pieces' buffers):
  // - diagonal only: every off-diagonal block pair skipped, a key block read by its own query
  //   block alone (causal triangle only), with a short tail block and GQA 4;
  // - a mask per query head: heads of one group keep different blocks, so a key block task has
  //   no query rows at all for some heads of its group;
  // - global rows and a window, two sequences.
  Rng r{31};
  std::vector<Case> cases;
  Case diag{1, 4, 1, 16 * 13 + 5, 32, MaskSpec{}};
  diag.spec.block_size = 16;
  diag.spec.global_blocks = 0;
  diag.spec.window_blocks = 0;
  cases.push_back(diag);
  Case per_head{1, 4, 2, 100, 32, MaskSpec{}};
  per_head.spec.block_size = 32;
  per_head.spec.global_blocks = 0;
  per_head.spec.window_blocks = 0;
  per_head.spec.random_blocks = 1;
  per_head.spec.random_seed = 9;
  per_head.spec.share_gqa_group = false;
  cases.push_back(per_head);
  Case rows{2, 2, 2, 64 * 3 + 33, 16, MaskSpec{}};
  rows.spec.global_blocks = 1;
  rows.spec.global_rows = 1;
  rows.spec.window_blocks = 1;
  cases.push_back(rows);
  const int saved = ThreadPool::get().threads();
  for (const Case& c : cases) {
    BlockMask m = mask_for(c, r);
    auto q = randn((size_t)c.B * c.H * c.T * c.D, r), k = randn((size_t)c.B * c.Hkv * c.T * c.D, r);
    auto v = randn(k.size(), r), dout = randn(q.size(), r);
    Ref ref = reference(q, k, v, dout, c.B, c.H, c.Hkv, c.T, c.D, m);
    for (int threads : {1, 2, 3, 5, 7}) {
      ThreadPool::get().set_threads(threads);
      Outputs a = run_kernels(c, q, k, v, dout, m), b = run_kernels(c, q, k, v, dout, m);
      EXPECT_MSG(a.dq == b.dq && a.dk == b.dk && a.dv == b.dv,
                 c.describe() << " threads " << threads << ": backward differs between two runs");
      const double errs[] = {rel_err(a.dq, ref.dq), rel_err(a.dk, ref.dk), rel_err(a.dv, ref.dv)};
      const char* names[] = {"dq", "dk", "dv"};
      for (int e = 0; e < 3; e++)
        EXPECT_MSG(errs[e] < 1e-5, c.describe() << " threads " << threads << ": " << names[e] << " rel err " << errs[e]);
    }
  }
  // the per-head case must really leave some group head without a key block another head keeps
  const BlockMask m = build_block_mask(per_head.spec, per_head.T, per_head.H, per_head.Hkv, 2, nullptr);
  bool differs = false;
  for (int j = 0; j < m.n_blocks; j++)
    for (int i = j; i < m.n_blocks; i++) differs |= m.test(0, i, j) != m.test(1, i, j);
  EXPECT(differs);
  ThreadPool::get().set_threads(saved);
}

TEST(blocksparse_attention_rejects_mismatched_mask) {
  MaskSpec s;
  BlockMask m = build_block_mask(s, 100, 4, 2, 0, nullptr);
  std::vector<float> x(4 * 128 * 32), lse(4 * 128);
  bool threw = false;
  try {
    blocksparse_attention_forward(x.data(), lse.data(), x.data(), x.data(), x.data(), 1, 4, 2, 128, 32, m);
  } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("T=100") != std::string::npos;
  }
  EXPECT(threw);
}

TEST(blocksparse_attention_full_mask_equals_dense_kernel) {
  // Every causal block kept: the sparse kernels must agree with ops.h's dense flash attention.
  Rng r{99};
  for (const Case& c : {Case{1, 8, 2, 200, 64, MaskSpec{}}, Case{2, 4, 4, 64 * 3, 32, MaskSpec{}}}) {
    MaskSpec s;
    s.block_size = 64;
    s.window_blocks = 1000;
    BlockMask m = build_block_mask(s, c.T, c.H, c.Hkv, 0, nullptr);
    EXPECT(m.density() == 1.0);
    auto q = randn((size_t)c.B * c.H * c.T * c.D, r), k = randn((size_t)c.B * c.Hkv * c.T * c.D, r);
    auto v = randn(k.size(), r), dout = randn(q.size(), r);
    Outputs sparse = run_kernels(c, q, k, v, dout, m);
    Outputs dense;
    dense.out.resize(q.size());
    dense.lse.resize(sparse.lse.size());
    dense.dq.resize(q.size());
    dense.dk.resize(k.size());
    dense.dv.resize(k.size());
    attention_forward(dense.out.data(), dense.lse.data(), q.data(), k.data(), v.data(), c.B, c.H, c.Hkv, c.T, c.D);
    attention_backward(dense.dq.data(), dense.dk.data(), dense.dv.data(), dout.data(), q.data(), k.data(), v.data(),
                       dense.out.data(), dense.lse.data(), c.B, c.H, c.Hkv, c.T, c.D);
    EXPECT_CLOSE(sparse.out.data(), dense.out.data(), q.size(), 1e-5, 1e-4);
    EXPECT_CLOSE(sparse.lse.data(), dense.lse.data(), sparse.lse.size(), 1e-5, 1e-5);
    EXPECT_CLOSE(sparse.dq.data(), dense.dq.data(), q.size(), 1e-5, 1e-4);
    EXPECT_CLOSE(sparse.dk.data(), dense.dk.data(), k.size(), 1e-5, 1e-4);
    EXPECT_CLOSE(sparse.dv.data(), dense.dv.data(), k.size(), 1e-5, 1e-4);
  }
}
