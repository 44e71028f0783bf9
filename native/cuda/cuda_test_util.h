// Helpers shared by the CUDA test files (cuda_tests.cpp, cuda_backend_tests.cpp,
// cuda_model_tests.cpp, cuda_precision_tests.cpp): seeded inputs and token ids, bf16 rounding
// and the tolerance check.
// Tolerances are stated relative to the reference's max |value|: the kernels sum in other
// orders than the CPU (and in bf16 where stated), so elementwise relative checks would flag
// harmless differences next to zero.
#pragma once
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend.h"
#include "backend_cuda.h"
#include "check.h"
#include "ops_cuda.h"

namespace cuda_test {

// B sequences of T + 1 uniform token ids in [0, V) (inputs and next-token targets of a step).
inline std::vector<int32_t> tokens_for(int B, int T, int V, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> dist(0, V - 1);
  std::vector<int32_t> t((size_t)B * (T + 1));
  for (auto& x : t) x = dist(gen);
  return t;
}

inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.f, scale);  // values only feed both sides equally
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}
inline float bf16_round(float x) { return __bfloat162float(__float2bfloat16(x)); }
inline std::vector<float> rounded(std::vector<float> v) {
  for (auto& x : v) x = bf16_round(x);
  return v;
}
// One CUDA backend per precision for the whole test binary (made on first use).
inline std::shared_ptr<engine::Backend> cuda_backend_at(engine::Precision p) {
  static std::shared_ptr<engine::Backend> made[3];
  auto& b = made[(int)p];
  if (!b) b = std::shared_ptr<engine::Backend>(cuda_backend::make_cuda_backend(p));
  return b;
}

inline void ok(const cuda_backend::Status& s) {
  if (!s.ok) check::fail(__FILE__, __LINE__, s.message);
}

// max |got - want| / max(max |want|, tiny) <= tol (and the sizes match, and nothing is NaN).
inline void near(const std::vector<float>& got, const std::vector<float>& want, double tol, const std::string& what) {
  if (got.size() != want.size())
    check::fail(__FILE__, __LINE__, what + ": size " + std::to_string(got.size()) + " != " + std::to_string(want.size()));
  double err = 0, mag = 1e-6;
  for (size_t i = 0; i < want.size(); i++) {
    const double d = std::fabs((double)got[i] - (double)want[i]);
    err = std::isnan(d) ? INFINITY : std::max(err, d);
    mag = std::max(mag, (double)std::fabs(want[i]));
  }
  if (!(err / mag <= tol)) {
    char buf[320];
    std::snprintf(buf, sizeof buf, "%s: max error %.3g relative to max |ref| %.3g = %.3g > %.1g", what.c_str(), err, mag, err / mag, tol);
    check::fail(__FILE__, __LINE__, buf);
  }
}

// |got - want| <= rtol * |want| + atol for scalars.
inline void near_scalar(double got, double want, double rtol, double atol, const std::string& what) {
  if (!(std::fabs(got - want) <= rtol * std::fabs(want) + atol)) {
    char buf[320];
    std::snprintf(buf, sizeof buf, "%s: %.8g vs cpu %.8g (rtol %.1g, atol %.1g)", what.c_str(), got, want, rtol, atol);
    check::fail(__FILE__, __LINE__, buf);
  }
}

}  // namespace cuda_test
