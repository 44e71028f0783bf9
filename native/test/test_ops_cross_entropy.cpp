// Fused softmax + cross-entropy: mean loss against float64, dlogits against finite differences
// (ignored targets, dscale, aliasing), numerical stability, errors, determinism, SIMD vs scalar.
#include <cmath>
#include <stdexcept>
#include <string>

#include "check.h"
#include "ops.h"
#include "parallel.h"
#include "reference.h"

using namespace engine;

TEST(cross_entropy_forward_matches_reference_with_ignored_rows) {
  const int N = 9, V = 37;
  auto logits = ref::random_floats(N * V, 1, -4.0f, 4.0f);
  std::vector<int> targets = {3, -1, 0, 36, 12, -100, 5, 5, 20};
  const double want = ref::cross_entropy(ref::to_double(logits), targets, N, V);
  const double got = cross_entropy_forward(logits.data(), targets.data(), N, V);
  EXPECT_CLOSE(&got, &want, 1, 1e-6, 1e-6);
}

TEST(cross_entropy_gradient_matches_finite_differences) {
  const int N = 4, V = 11;
  const float dscale = 0.7f;
  auto logits = ref::random_floats(N * V, 2, -3.0f, 3.0f);
  std::vector<int> targets = {1, -1, 10, 4};
  // d(dscale * mean loss)/dlogits; the ignored row gets zeros.
  auto want = ref::numeric_grad(
      [&](const ref::Vec& x) { return dscale * ref::cross_entropy(x, targets, N, V); }, ref::to_double(logits));
  std::vector<float> dlogits(N * V, 99.0f);
  const float loss = cross_entropy_forward_backward(dlogits.data(), logits.data(), targets.data(), N, V, dscale);
  EXPECT_CLOSE(dlogits.data(), want.data(), dlogits.size(), 1e-6, 1e-5);
  const double want_loss = ref::cross_entropy(ref::to_double(logits), targets, N, V);
  EXPECT_CLOSE(&loss, &want_loss, 1, 1e-6, 1e-6);
  // In place (dlogits aliases logits): same loss, same gradient.
  auto inplace = logits;
  const float loss2 = cross_entropy_forward_backward(inplace.data(), inplace.data(), targets.data(), N, V, dscale);
  EXPECT(loss2 == loss);
  EXPECT(ref::bit_equal(inplace, dlogits));
}

TEST(cross_entropy_stable_for_huge_logits_and_all_ignored) {
  const int N = 2, V = 5;
  std::vector<float> logits = {1000.0f, 999.0f, -1000.0f, 0.0f, 998.0f, -500.0f, -501.0f, -499.0f, -502.0f, -500.0f};
  std::vector<int> targets = {1, 2};
  std::vector<float> d(N * V);
  const float loss = cross_entropy_forward_backward(d.data(), logits.data(), targets.data(), N, V, 1.0f);
  const double want = ref::cross_entropy(ref::to_double(logits), targets, N, V);
  EXPECT(std::isfinite(loss));
  EXPECT_CLOSE(&loss, &want, 1, 2e-4, 0.0);  // float32 spacing near |logit| = 1000 is 6e-5
  for (float x : d) EXPECT(std::isfinite(x));
  std::vector<int> none = {-1, -1};
  std::vector<float> dz(N * V, 5.0f);
  EXPECT(cross_entropy_forward_backward(dz.data(), logits.data(), none.data(), N, V, 1.0f) == 0.0f);
  for (float x : dz) EXPECT(x == 0.0f);
}

TEST(cross_entropy_rejects_targets_outside_the_vocabulary) {
  std::vector<float> logits(6, 0.0f);
  std::vector<int> targets = {0, 3};
  std::string message;
  try {
    cross_entropy_forward(logits.data(), targets.data(), 2, 3);
  } catch (const std::invalid_argument& e) {
    message = e.what();
  }
  EXPECT_MSG(message.find("targets[1] = 3") != std::string::npos && message.find("V = 3") != std::string::npos,
             "message: " << message);
}

TEST(cross_entropy_deterministic_and_simd_matches_scalar) {
  const int saved = ThreadPool::get().threads();
  const int N = 33, V = 1003;
  auto logits = ref::random_floats(N * V, 3, -8.0f, 8.0f);
  auto targets = ref::random_ints(N, 4, -1, V);
  auto run = [&] {
    std::vector<float> d(N * V);
    const float loss = cross_entropy_forward_backward(d.data(), logits.data(), targets.data(), N, V, 1.0f);
    d.push_back(loss);
    return d;
  };
  ThreadPool::get().set_threads(2);
  auto a = run(), b = run();
  ThreadPool::get().set_threads(3);
  auto c = run();
  ThreadPool::get().set_threads(saved);
  EXPECT(ref::bit_equal(a, b));
  EXPECT(ref::bit_equal(a, c));
  EXPECT(set_simd_level_for_testing("scalar"));
  auto s = run();
  set_simd_level_for_testing("auto");
  EXPECT_CLOSE(a.data(), s.data(), a.size(), 1e-7, 1e-5);
}
