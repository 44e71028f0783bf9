// The attention-entropy term (attention_entropy.h) against a naive float64 reference: per-row
// entropies, the analytic q/k gradients, central finite differences of the float64 mean, closed
// forms (uniform attention), and bit-identical results across thread counts.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "attention_entropy.h"
#include "block_mask.h"
#include "check.h"
#include "test_random.h"
#include "parallel.h"
#include "ops.h"
#include "simd.h"

using namespace engine;

namespace {

std::vector<double> to_double(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

struct Dims { int B, H, Hkv, T, D; };

// float64, straight from the definition: per row (B, H, T) H_i = -sum_j p_ij log p_ij over the keys
// the mask keeps (mask null: every causal key), and the gradients of mean_i H_i w.r.t. q and k
// from dH_i/ds_ij = -p_ij (s_ij - sum_k p_ik s_ik), s = q.k / sqrt(D).
struct Ref {
  std::vector<double> rows, dq, dk;
  double mean = 0;
};

Ref reference(const std::vector<double>& q, const std::vector<double>& k, const Dims& d, const BlockMask* m) {
  Ref out;
  const size_t n_rows = (size_t)d.B * d.H * d.T;
  out.rows.assign(n_rows, 0);
  out.dq.assign(q.size(), 0);
  out.dk.assign(k.size(), 0);
  const double scale = 1.0 / std::sqrt((double)d.D), inv_rows = 1.0 / n_rows;
  std::vector<double> s(d.T), p(d.T);
  std::vector<bool> kept(d.T);
  for (int b = 0; b < d.B; b++)
    for (int h = 0; h < d.H; h++) {
      const int kvh = h / (d.H / d.Hkv);
      for (int t = 0; t < d.T; t++) {
        const size_t qo = (((size_t)b * d.H + h) * d.T + t) * d.D;
        double mx = -INFINITY;
        for (int u = 0; u <= t; u++) {
          kept[u] = !m || m->test(m->mask_head(h, d.H), t / m->block_size, u / m->block_size);
          if (!kept[u]) continue;
          const size_t ko = (((size_t)b * d.Hkv + kvh) * d.T + u) * d.D;
          double a = 0;
          for (int x = 0; x < d.D; x++) a += q[qo + x] * k[ko + x];
          s[u] = a * scale;
          mx = std::max(mx, s[u]);
        }
        double z = 0;
        for (int u = 0; u <= t; u++)
          if (kept[u]) z += std::exp(s[u] - mx);
        double ent = 0, mean_s = 0;
        for (int u = 0; u <= t; u++) {
          if (!kept[u]) continue;
          p[u] = std::exp(s[u] - mx) / z;
          ent -= p[u] * std::log(p[u]);
          mean_s += p[u] * s[u];
        }
        out.rows[((size_t)b * d.H + h) * d.T + t] = ent;
        for (int u = 0; u <= t; u++) {
          if (!kept[u]) continue;
          const double g = -p[u] * (s[u] - mean_s) * inv_rows * scale;  // d mean / d (q.k)
          const size_t ko = (((size_t)b * d.Hkv + kvh) * d.T + u) * d.D;
          for (int x = 0; x < d.D; x++) {
            out.dq[qo + x] += g * k[ko + x];
            out.dk[ko + x] += g * q[qo + x];
          }
        }
      }
    }
  for (double v : out.rows) out.mean += v;
  out.mean *= inv_rows;
  return out;
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

double max_abs(const std::vector<double>& x) {
  double m = 0;
  for (double v : x) m = std::max(m, std::fabs(v));
  return m;
}

// max |got - want| / max |want|
double rel_err(const std::vector<float>& got, const std::vector<double>& want) {
  double e = 0;
  for (size_t i = 0; i < got.size(); i++) e = std::max(e, std::fabs(got[i] - want[i]));
  return e / max_abs(want);
}

}  // namespace

TEST(attention_entropy_matches_float64_reference_dense_and_block_sparse) {
  // Tolerances: per-row entropy 2e-5 nats absolute; gradients 1e-4 of the largest entry (float32
  // tiles and the vectorised exp, ~2 ulp).
  Rng r{41};
  const Dims dims[] = {{1, 4, 2, 16 * 7 + 3, 32}, {2, 2, 2, 64 + 5, 16}, {1, 8, 1, 16 * 5, 64}, {2, 4, 2, 200, 32}};
  for (const Dims& d : dims)
    for (int variant = 0; variant < 3; variant++) {
      BlockMask m = variant > 0 ? sparse_mask(d, 16, variant == 1, 7) : BlockMask{};
      const BlockMask* mp = variant > 0 ? &m : nullptr;
      // Logits of a few units: peaked and flat rows both occur.
      auto q = randn((size_t)d.B * d.H * d.T * d.D, r, 1.5f), k = randn((size_t)d.B * d.Hkv * d.T * d.D, r, 1.5f);
      Ref ref = reference(to_double(q), to_double(k), d, mp);
      std::vector<float> dq(q.size(), NAN), dk(k.size(), NAN);
      std::vector<double> rows(ref.rows.size(), NAN);
      const double got = attention_entropy(dq.data(), dk.data(), 1.0f, q.data(), k.data(), d.B, d.H, d.Hkv, d.T, d.D, mp,
                                           rows.data());
      EXPECT_MSG(std::fabs(got - ref.mean) < 2e-5, "mean " << got << " want " << ref.mean << " (variant " << variant << ")");
      EXPECT_CLOSE(rows.data(), ref.rows.data(), rows.size(), 2e-5, 0.0);
      EXPECT_MSG(rel_err(dq, ref.dq) < 1e-4, "dq rel err " << rel_err(dq, ref.dq) << " (variant " << variant << ")");
      EXPECT_MSG(rel_err(dk, ref.dk) < 1e-4, "dk rel err " << rel_err(dk, ref.dk) << " (variant " << variant << ")");
      // Without gradients: the same value; grad_scale multiplies the gradients.
      EXPECT(attention_entropy(nullptr, nullptr, 0.0f, q.data(), k.data(), d.B, d.H, d.Hkv, d.T, d.D, mp) == got);
      std::vector<float> dq3(q.size()), dk3(k.size());
      attention_entropy(dq3.data(), dk3.data(), 3.0f, q.data(), k.data(), d.B, d.H, d.Hkv, d.T, d.D, mp);
      EXPECT_MSG(rel_err(dq3, [&] { auto x = ref.dq; for (double& v : x) v *= 3; return x; }()) < 1e-4, "grad_scale 3");
    }
}

TEST(attention_entropy_every_simd_level_matches_reference) {
  Rng r{43};
  const Dims d{1, 4, 2, 16 * 4 + 9, 32};
  auto q = randn((size_t)d.B * d.H * d.T * d.D, r, 1.5f), k = randn((size_t)d.B * d.Hkv * d.T * d.D, r, 1.5f);
  Ref ref = reference(to_double(q), to_double(k), d, nullptr);
  const SimdLevel detected = simd_detected();
  for (const char* level : {"scalar", "avx2", "avx512"}) {
    if (!set_simd_level_for_testing(level)) continue;  // not on this CPU
    std::vector<float> dq(q.size()), dk(k.size());
    const double got = attention_entropy(dq.data(), dk.data(), 1.0f, q.data(), k.data(), d.B, d.H, d.Hkv, d.T, d.D, nullptr);
    EXPECT_MSG(std::fabs(got - ref.mean) < 2e-5, level << ": mean " << got << " want " << ref.mean);
    EXPECT_MSG(rel_err(dq, ref.dq) < 1e-4 && rel_err(dk, ref.dk) < 1e-4, level << ": gradients");
  }
  set_simd_level_for_testing(simd_level_name(detected));
}

TEST(attention_entropy_gradients_match_finite_differences) {
  // Central differences of the float64 mean entropy (step 1e-4) against the engine's float32
  // gradients, on every 5th coordinate of q and k; tolerance 1e-4 of the largest difference.
  Rng r{17};
  const Dims d{1, 4, 2, 16 * 3 + 5, 16};
  for (int variant = 0; variant < 2; variant++) {
    BlockMask m = sparse_mask(d, 16, true, 21);
    const BlockMask* mp = variant ? &m : nullptr;
    auto q = randn((size_t)d.B * d.H * d.T * d.D, r, 1.0f), k = randn((size_t)d.B * d.Hkv * d.T * d.D, r, 1.0f);
    auto dq64 = to_double(q), dk64 = to_double(k);
    std::vector<float> dq(q.size()), dk(k.size());
    attention_entropy(dq.data(), dk.data(), 1.0f, q.data(), k.data(), d.B, d.H, d.Hkv, d.T, d.D, mp);
    const double eps = 1e-4;
    double err = 0, mag = 0;
    for (int which = 0; which < 2; which++) {
      std::vector<double>& x = which == 0 ? dq64 : dk64;
      const std::vector<float>& g = which == 0 ? dq : dk;
      for (size_t i = 0; i < x.size(); i += 5) {
        const double keep = x[i];
        x[i] = keep + eps;
        const double up = reference(dq64, dk64, d, mp).mean;
        x[i] = keep - eps;
        const double down = reference(dq64, dk64, d, mp).mean;
        x[i] = keep;
        const double fd = (up - down) / (2 * eps);
        err = std::max(err, std::fabs(fd - g[i]));
        mag = std::max(mag, std::fabs(fd));
      }
    }
    EXPECT_MSG(mag > 0 && err / mag < 1e-4, "max |grad - fd| / max |fd| = " << err / mag << " (variant " << variant << ")");
  }
}

TEST(attention_entropy_closed_forms_uniform_and_one_hot) {
  // q = 0: every kept key has the same logit, so H_i = log(number of keys row i reads): log(t + 1)
  // dense, the kept count under a mask. Large aligned logits on one key: H_i -> 0.
  const Dims d{1, 4, 2, 16 * 6 + 7, 32};
  std::vector<float> q((size_t)d.B * d.H * d.T * d.D, 0.0f);
  Rng r{3};
  auto k = randn((size_t)d.B * d.Hkv * d.T * d.D, r, 1.0f);
  std::vector<double> rows((size_t)d.B * d.H * d.T);
  BlockMask m = sparse_mask(d, 16, false, 5);
  for (const BlockMask* mp : {(const BlockMask*)nullptr, (const BlockMask*)&m}) {
    std::vector<float> dq(q.size()), dk(k.size());
    attention_entropy(dq.data(), dk.data(), 1.0f, q.data(), k.data(), d.B, d.H, d.Hkv, d.T, d.D, mp, rows.data());
    double worst = 0;
    for (int h = 0; h < d.H; h++)
      for (int t = 0; t < d.T; t++) {
        int kept = 0;
        for (int u = 0; u <= t; u++) kept += !mp || mp->test(mp->mask_head(h, d.H), t / mp->block_size, u / mp->block_size);
        worst = std::max(worst, std::fabs(rows[(size_t)h * d.T + t] - std::log((double)kept)));
      }
    EXPECT_MSG(worst < 1e-5, "uniform rows: max |H - log(kept)| = " << worst);
    // Uniform attention is a stationary point of the entropy (its maximum): the gradient vanishes.
    EXPECT(*std::max_element(dk.begin(), dk.end()) < 1e-7 && *std::min_element(dk.begin(), dk.end()) > -1e-7);
  }
  // One key far above the rest: every row's query aligned with key 0, which every row keeps.
  std::vector<float> k1(k.size(), 0.0f), q1(q.size(), 0.0f);
  for (int kvh = 0; kvh < d.Hkv; kvh++) k1[(size_t)kvh * d.T * d.D] = 1.0f;
  for (size_t row = 0; row < (size_t)d.H * d.T; row++) q1[row * d.D] = 1000.0f;
  const double peaked = attention_entropy(nullptr, nullptr, 0.0f, q1.data(), k1.data(), d.B, d.H, d.Hkv, d.T, d.D, nullptr);
  EXPECT_MSG(peaked >= 0 && peaked < 1e-6, "one-hot attention: entropy " << peaked);
}

TEST(attention_entropy_bit_identical_across_thread_counts_and_runs) {
  Rng r{23};
  const Dims d{2, 4, 2, 16 * 6 + 3, 32};
  BlockMask m = sparse_mask(d, 16, true, 4);
  auto q = randn((size_t)d.B * d.H * d.T * d.D, r, 1.0f), k = randn((size_t)d.B * d.Hkv * d.T * d.D, r, 1.0f);
  const int threads = ThreadPool::get().threads();
  for (const BlockMask* mp : {(const BlockMask*)nullptr, (const BlockMask*)&m}) {
    std::vector<float> dq[4], dk[4];
    double value[4];
    for (int n = 0; n < 4; n++) {
      ThreadPool::get().set_threads(n < 3 ? n + 1 : 3);  // 1, 2, 3 threads, then 3 again
      dq[n].assign(q.size(), 0.0f);
      dk[n].assign(k.size(), 0.0f);
      value[n] = attention_entropy(dq[n].data(), dk[n].data(), 0.5f, q.data(), k.data(), d.B, d.H, d.Hkv, d.T, d.D, mp);
    }
    for (int n = 1; n < 4; n++) EXPECT(value[n] == value[0] && dq[n] == dq[0] && dk[n] == dk[0]);
  }
  ThreadPool::get().set_threads(threads);
}

TEST(attention_entropy_rejects_bad_arguments) {
  const Dims d{1, 4, 2, 32, 8};
  std::vector<float> q((size_t)d.H * d.T * d.D), k((size_t)d.Hkv * d.T * d.D), dq(q.size());
  EXPECT_THROWS_MSG(attention_entropy(dq.data(), nullptr, 1.0f, q.data(), k.data(), 1, d.H, d.Hkv, d.T, d.D, nullptr),
                    "attention_entropy: pass both dq and dk, or neither");
  EXPECT_THROWS_MSG(attention_entropy(nullptr, nullptr, 1.0f, q.data(), k.data(), 1, 3, d.Hkv, d.T, d.D, nullptr),
                    "attention_entropy: need B, H, Hkv, T, D >= 1");
  BlockMask m = sparse_mask({1, 4, 2, 48, 8}, 16, true, 1);
  EXPECT_THROWS_MSG(attention_entropy(nullptr, nullptr, 1.0f, q.data(), k.data(), 1, d.H, d.Hkv, d.T, d.D, &m),
                    "attention_entropy: mask built for T=48, got T=32");
}
