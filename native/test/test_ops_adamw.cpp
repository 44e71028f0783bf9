// AdamW against hand-computed steps (torch.optim.AdamW semantics), a float64 multi-step
// reference, and sum_squares' exactness and thread-count independence.
#include <cmath>

#include "check.h"
#include "ops.h"
#include "parallel.h"
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

TEST(adamw_many_elements_many_steps_match_float64) {
  const int n = 10007, steps = 5;  // several chunks plus a tail
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

TEST(adamw_simd_matches_scalar) {
  const int n = 4099;
  auto p1 = ref::random_floats(n, 2), g = ref::random_floats(n, 3), m1 = ref::random_floats(n, 4);
  auto v1 = ref::random_floats(n, 5, 0.0f, 1.0f);
  auto p2 = p1, m2 = m1, v2 = v1;
  adamw_update(p1.data(), g.data(), m1.data(), v1.data(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 3, 1.0f);
  set_simd_level_for_testing("scalar");
  adamw_update(p2.data(), g.data(), m2.data(), v2.data(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 3, 1.0f);
  set_simd_level_for_testing("auto");
  EXPECT_CLOSE(p1.data(), p2.data(), n, 1e-7, 1e-6);
  EXPECT_CLOSE(m1.data(), m2.data(), n, 1e-7, 1e-6);
  EXPECT_CLOSE(v1.data(), v2.data(), n, 1e-7, 1e-6);
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
