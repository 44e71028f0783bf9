// The vector exp and softmax row helpers (simd.h) against libm in double, at every level this
// CPU supports, including the flush-to-zero and saturation ends of the range.
#include <cmath>
#include <string>
#include <vector>

#include "check.h"
#include "ops.h"
#include "simd.h"

using namespace engine;

namespace {
std::vector<std::string> supported_levels() {
  std::vector<std::string> levels = {"scalar"};
  if ((int)simd_detected() >= (int)SimdLevel::avx2) levels.push_back("avx2");
  if ((int)simd_detected() >= (int)SimdLevel::avx512) levels.push_back("avx512");
  return levels;
}
}  // namespace

TEST(simd_exp_matches_libm_at_every_level) {
  const int n = 2001;  // odd: exercises the tails after the vector loops
  std::vector<float> x(n);
  for (int i = 0; i < n; i++) x[i] = -87.0f + 175.0f * i / (n - 1);  // [-87, 88]
  for (const auto& level : supported_levels()) {
    EXPECT(set_simd_level_for_testing(level));
    std::vector<float> y = x;
    exp_inplace(y.data(), n);
    std::vector<double> want(n);
    for (int i = 0; i < n; i++) want[i] = std::exp((double)x[i]);
    const std::string what = "exp at level " + level;
    check::close(__FILE__, __LINE__, y.data(), want.data(), n, 0.0, 5e-7, what.c_str());  // a few ulp
    // Far below the range flushes to 0; -inf (masked scores) gives exactly 0.
    std::vector<float> low = {-100.0f, -1000.0f, -INFINITY, -88.0f, -100.0f, -1e30f, -INFINITY, -90.0f, -INFINITY};
    exp_inplace(low.data(), (int64_t)low.size());
    for (float v : low) EXPECT_MSG(v >= 0.0f && v < 1e-37f, level << ": exp(very negative) = " << v);
  }
  set_simd_level_for_testing("auto");
}

TEST(simd_row_max_and_exp_shift_sum_match_scalar_math) {
  const int n = 77;
  std::vector<float> x(n);
  for (int i = 0; i < n; i++) x[i] = std::sin(0.37f * i) * 9.0f;
  x[5] = -INFINITY;  // a masked score
  for (const auto& level : supported_levels()) {
    EXPECT(set_simd_level_for_testing(level));
    double want_max = -INFINITY;
    for (float v : x) want_max = std::max(want_max, (double)v);
    EXPECT_MSG(max_of(x.data(), n) == (float)want_max, level << ": max_of");
    EXPECT_MSG(max_of(x.data(), 0) == -INFINITY, level << ": max_of empty");
    std::vector<float> out(n);
    const float sum = exp_shift_sum(out.data(), x.data(), n, (float)want_max);
    double want_sum = 0;
    std::vector<double> want(n);
    for (int i = 0; i < n; i++) want_sum += (want[i] = std::exp((double)x[i] - want_max));
    const std::string what = "exp_shift_sum at level " + level;
    check::close(__FILE__, __LINE__, out.data(), want.data(), n, 1e-7, 1e-6, what.c_str());
    check::close(__FILE__, __LINE__, &sum, &want_sum, 1, 0.0, 1e-6, what.c_str());
    EXPECT(out[5] == 0.0f);
  }
  set_simd_level_for_testing("auto");
}
