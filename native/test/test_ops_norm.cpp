// Embedding, RMSNorm and SwiGLU: forward against float64 references, backward against central
// finite differences of L = sum(out * dout) in float64, accumulation semantics, determinism,
// and the vector paths against the scalar one.
#include <cmath>
#include <stdexcept>
#include <string>

#include "check.h"
#include "ops.h"
#include "parallel.h"
#include "reference.h"

using namespace engine;

namespace {
struct SimdGuard {
  ~SimdGuard() { set_simd_level_for_testing("auto"); }
};
}  // namespace

// ---------------------------------------------------------------------------- embedding

TEST(embedding_forward_gathers_rows) {
  const int V = 11, N = 9, C = 13;
  auto table = ref::random_floats(V * C, 1);
  auto tokens = ref::random_ints(N, 2, 0, V);
  std::vector<float> out(N * C);
  embedding_forward(out.data(), tokens.data(), table.data(), N, C);
  auto want = ref::embedding(tokens, ref::to_double(table), N, C);
  EXPECT_CLOSE(out.data(), want.data(), out.size(), 0.0, 0.0);
}

TEST(embedding_backward_matches_finite_differences_and_accumulates) {
  const int V = 6, N = 10, C = 5;
  auto table = ref::random_floats(V * C, 3);
  std::vector<int> tokens = {1, 3, 1, 0, 5, 1, 3, 2, 2, 1};  // repeats: rows must sum
  auto dout = ref::random_floats(N * C, 4);
  auto loss = [&](const ref::Vec& t) { return ref::dot(ref::embedding(tokens, t, N, C), ref::to_double(dout)); };
  auto want = ref::numeric_grad(loss, ref::to_double(table));
  std::vector<float> dtable(V * C, 0.5f);
  embedding_backward(dtable.data(), dout.data(), tokens.data(), N, C);
  for (auto& x : want) x += 0.5;
  EXPECT_CLOSE(dtable.data(), want.data(), dtable.size(), 1e-6, 1e-6);
}

TEST(embedding_rejects_negative_tokens) {
  std::vector<float> table(8, 0.0f), out(4);
  std::vector<int> tokens = {0, -1};
  bool threw = false;
  try {
    embedding_forward(out.data(), tokens.data(), table.data(), 2, 2);
  } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("tokens[1]") != std::string::npos;
  }
  EXPECT(threw);
}

// ---------------------------------------------------------------------------- rmsnorm

TEST(rmsnorm_forward_matches_reference) {
  const int N = 7, C = 33;
  const float eps = 1e-5f;
  auto inp = ref::random_floats(N * C, 5, -2.0f, 2.0f), w = ref::random_floats(C, 6, 0.5f, 1.5f);
  std::vector<float> out(N * C), rstd(N);
  rmsnorm_forward(out.data(), rstd.data(), inp.data(), w.data(), N, C, eps);
  auto want = ref::rmsnorm(ref::to_double(inp), ref::to_double(w), N, C, eps);
  EXPECT_CLOSE(out.data(), want.data(), out.size(), 1e-6, 1e-5);
  for (int n = 0; n < N; n++) {
    double ss = 0;
    for (int c = 0; c < C; c++) ss += (double)inp[n * C + c] * inp[n * C + c];
    const double r = 1.0 / std::sqrt(ss / C + eps);
    EXPECT_CLOSE(&rstd[n], &r, 1, 0.0, 1e-6);
  }
}

TEST(rmsnorm_backward_matches_finite_differences_and_accumulates) {
  const int N = 4, C = 9;
  const float eps = 1e-6f;
  auto inp = ref::random_floats(N * C, 7), w = ref::random_floats(C, 8, 0.5f, 1.5f), dout = ref::random_floats(N * C, 9);
  const auto dd = ref::to_double(dout);
  auto want_dinp = ref::numeric_grad(
      [&](const ref::Vec& x) { return ref::dot(ref::rmsnorm(x, ref::to_double(w), N, C, eps), dd); },
      ref::to_double(inp));
  auto want_dw = ref::numeric_grad(
      [&](const ref::Vec& x) { return ref::dot(ref::rmsnorm(ref::to_double(inp), x, N, C, eps), dd); },
      ref::to_double(w));
  std::vector<float> out(N * C), rstd(N), dinp(N * C, 0.25f), dw(C, -0.5f);
  rmsnorm_forward(out.data(), rstd.data(), inp.data(), w.data(), N, C, eps);
  rmsnorm_backward(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), rstd.data(), N, C);
  for (auto& x : want_dinp) x += 0.25;
  for (auto& x : want_dw) x -= 0.5;
  EXPECT_CLOSE(dinp.data(), want_dinp.data(), dinp.size(), 1e-5, 1e-4);
  EXPECT_CLOSE(dw.data(), want_dw.data(), dw.size(), 1e-5, 1e-4);
  // A frozen norm weight: dweight nullptr, dinp unchanged by it.
  std::vector<float> dinp2(N * C, 0.25f);
  rmsnorm_backward(dinp2.data(), nullptr, dout.data(), inp.data(), w.data(), rstd.data(), N, C);
  EXPECT(ref::bit_equal(dinp, dinp2));
}

TEST(rmsnorm_backward_bit_identical_across_thread_counts) {
  const int saved = ThreadPool::get().threads();
  const int N = 37, C = 70;
  auto inp = ref::random_floats(N * C, 10), w = ref::random_floats(C, 11), dout = ref::random_floats(N * C, 12);
  std::vector<float> out(N * C), rstd(N);
  rmsnorm_forward(out.data(), rstd.data(), inp.data(), w.data(), N, C, 1e-5f);
  auto run = [&] {
    std::vector<float> dinp(N * C, 0.0f), dw(C, 0.0f);
    rmsnorm_backward(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), rstd.data(), N, C);
    dinp.insert(dinp.end(), dw.begin(), dw.end());
    return dinp;
  };
  ThreadPool::get().set_threads(2);
  auto a = run(), b = run();
  ThreadPool::get().set_threads(3);
  auto c = run();
  ThreadPool::get().set_threads(saved);
  EXPECT(ref::bit_equal(a, b));
  EXPECT(ref::bit_equal(a, c));
}

// ---------------------------------------------------------------------------- swiglu

TEST(swiglu_forward_matches_reference_including_extremes) {
  const int n = 1000 + 13;  // a tail after the vector loop
  auto gate = ref::random_floats(n, 13, -12.0f, 12.0f), up = ref::random_floats(n, 14);
  gate[0] = -100.0f;  // exp overflow side
  gate[1] = 100.0f;
  gate[2] = 0.0f;
  std::vector<float> out(n);
  swiglu_forward(out.data(), gate.data(), up.data(), n);
  auto want = ref::swiglu(ref::to_double(gate), ref::to_double(up));
  EXPECT_CLOSE(out.data(), want.data(), n, 1e-6, 1e-5);
}

TEST(swiglu_backward_matches_finite_differences) {
  const int n = 37;
  auto gate = ref::random_floats(n, 15, -6.0f, 6.0f), up = ref::random_floats(n, 16), dout = ref::random_floats(n, 17);
  const auto dd = ref::to_double(dout);
  auto want_dgate = ref::numeric_grad([&](const ref::Vec& g) { return ref::dot(ref::swiglu(g, ref::to_double(up)), dd); },
                                      ref::to_double(gate));
  auto want_dup = ref::numeric_grad([&](const ref::Vec& u) { return ref::dot(ref::swiglu(ref::to_double(gate), u), dd); },
                                    ref::to_double(up));
  std::vector<float> dgate(n, 123.0f), dup(n, 123.0f);  // overwritten, not accumulated
  swiglu_backward(dgate.data(), dup.data(), dout.data(), gate.data(), up.data(), n);
  EXPECT_CLOSE(dgate.data(), want_dgate.data(), n, 1e-5, 1e-4);
  EXPECT_CLOSE(dup.data(), want_dup.data(), n, 1e-5, 1e-4);
}

TEST(swiglu_simd_matches_scalar) {
  SimdGuard guard;
  const int n = 5000 + 7;
  auto gate = ref::random_floats(n, 18, -20.0f, 20.0f), up = ref::random_floats(n, 19), dout = ref::random_floats(n, 20);
  std::vector<float> out_fast(n), out_slow(n), dg_fast(n), dg_slow(n), du_fast(n), du_slow(n);
  swiglu_forward(out_fast.data(), gate.data(), up.data(), n);
  swiglu_backward(dg_fast.data(), du_fast.data(), dout.data(), gate.data(), up.data(), n);
  EXPECT(set_simd_level_for_testing("scalar"));
  swiglu_forward(out_slow.data(), gate.data(), up.data(), n);
  swiglu_backward(dg_slow.data(), du_slow.data(), dout.data(), gate.data(), up.data(), n);
  EXPECT_CLOSE(out_fast.data(), out_slow.data(), n, 1e-6, 1e-5);
  EXPECT_CLOSE(dg_fast.data(), dg_slow.data(), n, 1e-6, 1e-5);
  EXPECT_CLOSE(du_fast.data(), du_slow.data(), n, 1e-6, 1e-5);
}
