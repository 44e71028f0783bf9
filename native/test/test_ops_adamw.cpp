// AdamW against hand-computed steps (torch.optim.AdamW semantics), a float64 multi-step
// reference at every SIMD level, the vector levels' exact rounding, and sum_squares' exactness
// and thread-count independence.
#include <cmath>
#include <string>
#include <vector>

#include "check.h"
#include "ops.h"
#include "parallel.h"
#include "simd.h"
#include "reference.h"

using namespace engine;

TEST(adamw_first_step_by_hand) {
  // p = 1, g = 0.5, m = v = 0, lr = 0.1, betas (0.9, 0.999), eps 1e-8, wd 0.01, step 1:
  //   p *= 1 - 0.1*0.01            -> 0.999
  //   m = 0.1 * 0.5                -> 0.05
  //   v = 0.001 * 0.25             -> 0.00025
  //   bias corrections 0.1, 0.001  -> step size 0.1/0.1 = 1, denom sqrt(0.00025)/sqrt(0.001) + 1e-8 = 0.50000001
  //   p = 0.999 - 1 * 0.05 / 0.50000001 = 0.899000002
  float p = 1.0f, g = 0.5f, m = 0.0f, v = 0.0f;
  adamw_update(&p, &g, &m, &v, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.01f, 1, 1.0f);
  const double want_p = 0.899000002, want_m = 0.05, want_v = 0.00025;
  EXPECT_CLOSE(&p, &want_p, 1, 1e-7, 0.0);
  EXPECT_CLOSE(&m, &want_m, 1, 1e-9, 1e-6);
  EXPECT_CLOSE(&v, &want_v, 1, 1e-12, 1e-4);  // 1 - 0.999 rounds to 0.00099999 in float
}

TEST(adamw_second_step_with_clip_factor_by_hand) {
  // p = -2, raw g = -1 with clip factor 0.5 -> g = -0.5; m = 0.1, v = 0.2; lr 0.01, betas (0.9, 0.99),
  // eps 1e-6, wd 0.1, step 2:
  //   p *= 1 - 0.001                   -> -1.998
  //   m = 0.9*0.1 + 0.1*(-0.5)         -> 0.04
  //   v = 0.99*0.2 + 0.01*0.25         -> 0.2005
  //   bc1 = 1 - 0.81 = 0.19, bc2 = 1 - 0.9801 = 0.0199
  //   denom = sqrt(0.2005)/sqrt(0.0199) + 1e-6 = 3.17417441750921
  //   p = -1.998 - (0.01/0.19) * 0.04 / 3.17417441750921 = -1.9986632474719352
  float p = -2.0f, g = -1.0f, m = 0.1f, v = 0.2f;
  adamw_update(&p, &g, &m, &v, 1, 0.01f, 0.9f, 0.99f, 1e-6f, 0.1f, 2, 0.5f);
  const double want_p = -1.9986632474719352, want_m = 0.04, want_v = 0.2005;
  EXPECT_CLOSE(&p, &want_p, 1, 2e-7, 0.0);
  EXPECT_CLOSE(&m, &want_m, 1, 1e-8, 1e-6);
  EXPECT_CLOSE(&v, &want_v, 1, 1e-8, 1e-6);
}

namespace {

struct SimdGuard {
  ~SimdGuard() { set_simd_level_for_testing("auto"); }
};

// Five steps of one SIMD level's AdamW against a float64 reference: several 4096-element chunks
// plus a tail that is no multiple of 8 or 16 (the vector paths' masked tail), a clip factor,
// weight decay and bias corrections at every step count from 1.
void check_level_against_float64(const char* level) {
  SimdGuard guard;
  if (!set_simd_level_for_testing(level))
    SKIP_TEST(std::string("this CPU has no ") + level + " (best level here: " + simd_level_name(simd_detected()) + ")");
  const int n = 10007, steps = 5;
  auto p = ref::random_floats(n, 1), m = std::vector<float>(n, 0.0f), v = std::vector<float>(n, 0.0f);
  ref::Vec pd = ref::to_double(p), md(n, 0.0), vd(n, 0.0);
  const double lr = 3e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1, clip = 0.7;
  for (int step = 1; step <= steps; step++) {
    auto g = ref::random_floats(n, 100 + step);
    adamw_update(p.data(), g.data(), m.data(), v.data(), n, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd,
                 step, (float)clip);
    const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
    for (int i = 0; i < n; i++) {
      const double gi = g[i] * clip;
      pd[i] *= 1 - lr * wd;
      md[i] = b1 * md[i] + (1 - b1) * gi;
      vd[i] = b2 * vd[i] + (1 - b2) * gi * gi;
      pd[i] -= lr / bc1 * md[i] / (std::sqrt(vd[i]) / std::sqrt(bc2) + eps);
    }
  }
  EXPECT_CLOSE(p.data(), pd.data(), n, 1e-6, 1e-5);
  EXPECT_CLOSE(m.data(), md.data(), n, 1e-7, 1e-5);
  EXPECT_CLOSE(v.data(), vd.data(), n, 1e-9, 1e-5);
}

struct AdamWState {
  std::vector<float> p, m, v;
};

// Three steps at the given level over n elements starting at `offset` floats into each array
// (unaligned starts), from one fixed state.
AdamWState run_level(const char* level, int n, int offset) {
  set_simd_level_for_testing(level);
  AdamWState s{ref::random_floats(n + offset, 2), ref::random_floats(n + offset, 4),
                ref::random_floats(n + offset, 5, 0.0f, 1.0f)};
  for (int step = 3; step <= 5; step++) {
    auto g = ref::random_floats(n + offset, 3 + step);
    adamw_update(s.p.data() + offset, g.data() + offset, s.m.data() + offset, s.v.data() + offset, n, 1e-3f, 0.9f,
                 0.999f, 1e-8f, 0.01f, step, 0.8f);
  }
  set_simd_level_for_testing("auto");
  return s;
}

}  // namespace

TEST(adamw_avx512_matches_float64) { check_level_against_float64("avx512"); }

TEST(adamw_avx2_matches_float64) { check_level_against_float64("avx2"); }

TEST(adamw_scalar_matches_float64) { check_level_against_float64("scalar"); }

const int kSizes[] = {1, 7, 8, 15, 17, 4099, 8200};

TEST(adamw_avx2_close_to_scalar) {
  // The scalar level rounds the products that the vector levels fuse: float rounding apart.
  SimdGuard guard;
  if (!set_simd_level_for_testing("avx2"))
    SKIP_TEST(std::string("this CPU has no avx2 (best level here: ") + simd_level_name(simd_detected()) + ")");
  for (int n : kSizes)
    for (int offset : {0, 3}) {
      const AdamWState a = run_level("avx2", n, offset), s = run_level("scalar", n, offset);
      EXPECT_CLOSE(a.p.data(), s.p.data(), n + offset, 1e-7, 1e-6);
      EXPECT_CLOSE(a.m.data(), s.m.data(), n + offset, 1e-7, 1e-6);
      EXPECT_CLOSE(a.v.data(), s.v.data(), n + offset, 1e-7, 1e-6);
    }
}

// The vector levels' documented rounding, written out in float: one FMA each for m and v, every
// other operation rounded as written. Both levels must match it to the bit (so each other too).
AdamWState run_documented_rounding(int n, int offset) {
  AdamWState s{ref::random_floats(n + offset, 2), ref::random_floats(n + offset, 4),
                ref::random_floats(n + offset, 5, 0.0f, 1.0f)};
  const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f, clip = 0.8f;
  for (int step = 3; step <= 5; step++) {
    auto g = ref::random_floats(n + offset, 3 + step);
    const double bc1 = 1.0 - std::pow((double)b1, step), bc2 = 1.0 - std::pow((double)b2, step);
    const float decay = 1.0f - lr * wd, step_size = (float)(lr / bc1), bc2_sqrt = (float)std::sqrt(bc2);
    for (int i = offset; i < n + offset; i++) {
      const float gi = g[i] * clip;
      s.m[i] = std::fma(1.0f - b1, gi - s.m[i], s.m[i]);
      s.v[i] = std::fma(b2, s.v[i], ((1.0f - b2) * gi) * gi);
      const float denom = std::sqrt(s.v[i]) / bc2_sqrt + eps;
      s.p[i] = s.p[i] * decay - (step_size * s.m[i]) / denom;
    }
  }
  return s;
}

void check_documented_rounding(const char* level) {
  SimdGuard guard;
  if (!set_simd_level_for_testing(level))
    SKIP_TEST(std::string("this CPU has no ") + level + " (best level here: " + simd_level_name(simd_detected()) + ")");
  for (int n : kSizes)
    for (int offset : {0, 3}) {
      const AdamWState got = run_level(level, n, offset), want = run_documented_rounding(n, offset);
      EXPECT(got.p == want.p && got.m == want.m && got.v == want.v);
    }
}

TEST(adamw_avx512_rounds_as_documented) { check_documented_rounding("avx512"); }

TEST(adamw_avx2_rounds_as_documented) { check_documented_rounding("avx2"); }

TEST(adamw_thread_count_independent) {
  const int saved = ThreadPool::get().threads();
  ThreadPool::get().set_threads(1);
  const AdamWState one = run_level("auto", 20011, 1);
  ThreadPool::get().set_threads(3);
  const AdamWState three = run_level("auto", 20011, 1);
  ThreadPool::get().set_threads(saved);
  EXPECT(one.p == three.p && one.m == three.m && one.v == three.v);
}

TEST(sum_squares_exact_and_thread_independent) {
  const int saved = ThreadPool::get().threads();
  // Small integers: every partial sum is exact in double, so the answer is exact.
  const int64_t n = 100003;
  std::vector<float> x(n);
  double want = 0;
  for (int64_t i = 0; i < n; i++) {
    x[i] = (float)((i % 7) - 3);
    want += (double)x[i] * x[i];
  }
  ThreadPool::get().set_threads(2);
  const double a = sum_squares(x.data(), n);
  ThreadPool::get().set_threads(3);
  auto r = ref::random_floats(n, 6);
  const double b1 = sum_squares(r.data(), n);
  ThreadPool::get().set_threads(1);
  const double b2 = sum_squares(r.data(), n);
  ThreadPool::get().set_threads(saved);
  EXPECT(a == want);
  EXPECT(b1 == b2);  // bit-identical for different thread counts
  EXPECT(sum_squares(x.data(), 0) == 0.0);
}
