// Causal GQA flash attention against the float64 naive reference (GQA ratios 1, 2, 4; odd T on
// both sides of the 64-wide tiles; head dims 32 and 64), backward against central finite
// differences and the float64 gradients at several thread counts, determinism (forward across
// thread counts, backward across runs), and the vector path against scalar.
#include <cmath>
#include <stdexcept>
#include <string>

#include "check.h"
#include "ops.h"
#include "parallel.h"
#include "reference.h"

using namespace engine;

namespace {

struct Case {
  int B, H, Hkv, T, D;
};

struct Inputs {
  std::vector<float> q, k, v;
};

Inputs make_inputs(const Case& c, uint64_t seed) {
  const size_t nq = (size_t)c.B * c.H * c.T * c.D, nkv = (size_t)c.B * c.Hkv * c.T * c.D;
  return {ref::random_floats(nq, seed, -1.5f, 1.5f), ref::random_floats(nkv, seed + 1, -1.5f, 1.5f),
          ref::random_floats(nkv, seed + 2)};
}

std::string label(const Case& c) {
  return "B=" + std::to_string(c.B) + " H=" + std::to_string(c.H) + " Hkv=" + std::to_string(c.Hkv) +
         " T=" + std::to_string(c.T) + " D=" + std::to_string(c.D);
}

void check_forward(const Case& c, uint64_t seed) {
  auto in = make_inputs(c, seed);
  std::vector<float> out(in.q.size()), lse((size_t)c.B * c.H * c.T);
  attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), c.B, c.H, c.Hkv, c.T, c.D);
  ref::Vec want_lse;
  auto want = ref::attention(ref::to_double(in.q), ref::to_double(in.k), ref::to_double(in.v), c.B, c.H, c.Hkv, c.T,
                             c.D, &want_lse);
  const std::string what = "out " + label(c), what_lse = "lse " + label(c);
  check::close(__FILE__, __LINE__, out.data(), want.data(), out.size(), 2e-5, 1e-4, what.c_str());
  check::close(__FILE__, __LINE__, lse.data(), want_lse.data(), lse.size(), 2e-5, 1e-5, what_lse.c_str());
}

struct Grads {
  std::vector<float> dq, dk, dv;
};

Grads run_backward(const Case& c, const Inputs& in, const std::vector<float>& dout) {
  std::vector<float> out(in.q.size()), lse((size_t)c.B * c.H * c.T);
  attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), c.B, c.H, c.Hkv, c.T, c.D);
  Grads g{std::vector<float>(in.q.size(), 7.0f), std::vector<float>(in.k.size(), 7.0f),
          std::vector<float>(in.v.size(), 7.0f)};  // overwritten, so the 7s must vanish
  attention_backward(g.dq.data(), g.dk.data(), g.dv.data(), dout.data(), in.q.data(), in.k.data(), in.v.data(),
                     out.data(), lse.data(), c.B, c.H, c.Hkv, c.T, c.D);
  return g;
}

// Backward against float64 finite differences of L = sum(attention(q, k, v) * dout), at every
// coordinate (stride 1) or a strided sample of them.
void check_backward(const Case& c, uint64_t seed, size_t stride) {
  auto in = make_inputs(c, seed);
  auto dout = ref::random_floats(in.q.size(), seed + 3);
  Grads g = run_backward(c, in, dout);
  const auto qd = ref::to_double(in.q), kd = ref::to_double(in.k), vd = ref::to_double(in.v), dd = ref::to_double(dout);
  auto pick = [&](size_t n) {
    std::vector<size_t> at;
    for (size_t i = seed % stride; i < n; i += stride) at.push_back(i);
    return at;
  };
  auto compare = [&](const std::vector<float>& got, const ref::Vec& want, const std::vector<size_t>& at, const char* name) {
    std::vector<float> sel;
    for (size_t i : at) sel.push_back(got[i]);
    const std::string what = std::string(name) + " " + label(c);
    check::close(__FILE__, __LINE__, sel.data(), want.data(), sel.size(), 1e-4, 1e-3, what.c_str());
  };
  auto at_q = pick(qd.size()), at_kv = pick(kd.size());
  compare(g.dq,
          ref::numeric_grad_at(
              [&](const ref::Vec& x) { return ref::dot(ref::attention(x, kd, vd, c.B, c.H, c.Hkv, c.T, c.D), dd); }, qd,
              at_q),
          at_q, "dq");
  compare(g.dk,
          ref::numeric_grad_at(
              [&](const ref::Vec& x) { return ref::dot(ref::attention(qd, x, vd, c.B, c.H, c.Hkv, c.T, c.D), dd); }, kd,
              at_kv),
          at_kv, "dk");
  compare(g.dv,
          ref::numeric_grad_at(
              [&](const ref::Vec& x) { return ref::dot(ref::attention(qd, kd, x, c.B, c.H, c.Hkv, c.T, c.D), dd); }, vd,
              at_kv),
          at_kv, "dv");
}

struct SimdGuard {
  ~SimdGuard() { set_simd_level_for_testing("auto"); }
};

}  // namespace

TEST(attention_forward_gqa_ratios_odd_lengths_head_dims) {
  uint64_t seed = 100;
  for (int group : {1, 2, 4})
    for (int T : {1, 7, 33, 100})
      for (int D : {32, 64}) check_forward({T < 50 ? 2 : 1, 2 * group, 2, T, D}, seed++);
}

TEST(attention_forward_long_rows_stay_stable) {
  // Large logits (|q.k| * scale ~ 40): the online softmax must not overflow.
  Case c{1, 2, 1, 130, 32};
  auto in = make_inputs(c, 7);
  for (auto& x : in.q) x *= 6.0f;
  std::vector<float> out(in.q.size()), lse((size_t)c.H * c.T);
  attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), c.B, c.H, c.Hkv, c.T, c.D);
  ref::Vec want_lse;
  auto want = ref::attention(ref::to_double(in.q), ref::to_double(in.k), ref::to_double(in.v), c.B, c.H, c.Hkv, c.T,
                             c.D, &want_lse);
  EXPECT_CLOSE(out.data(), want.data(), out.size(), 5e-5, 1e-4);
  EXPECT_CLOSE(lse.data(), want_lse.data(), lse.size(), 5e-5, 1e-5);
}

TEST(attention_backward_finite_differences_small) {
  check_backward({1, 2, 1, 7, 4}, 200, 1);   // GQA 2, every coordinate
  check_backward({2, 4, 1, 5, 6}, 210, 1);   // GQA 4, two batches
  check_backward({1, 1, 1, 1, 8}, 220, 1);   // T = 1: dq and dk are exactly zero
}

TEST(attention_backward_finite_differences_across_tiles) {
  check_backward({1, 2, 2, 70, 32}, 300, 37);  // GQA 1, T crosses the 64 tile
  check_backward({1, 4, 2, 80, 64}, 310, 151);  // GQA 2, head dim 64
  check_backward({1, 4, 1, 33, 32}, 320, 23);   // GQA 4
}

// The backward cuts its (kv head, key tile) tasks into one piece per thread; with more threads
// than kv heads the cuts fall inside heads, so dq rows are summed from several pieces' buffers.
// Every thread count must still give the float64 gradients.
TEST(attention_backward_matches_float64_reference_for_any_thread_count) {
  const int saved = ThreadPool::get().threads();
  uint64_t seed = 600;
  for (const Case& c : {Case{1, 2, 2, 200, 32}, Case{2, 4, 1, 129, 16}, Case{1, 6, 2, 192, 64}, Case{1, 2, 1, 1, 8}}) {
    auto in = make_inputs(c, seed);
    auto dout = ref::random_floats(in.q.size(), seed + 3);
    ref::Vec dq, dk, dv;
    ref::attention_backward(dq, dk, dv, ref::to_double(dout), ref::to_double(in.q), ref::to_double(in.k),
                            ref::to_double(in.v), c.B, c.H, c.Hkv, c.T, c.D);
    for (int threads : {1, 2, 3, 5, 8}) {
      ThreadPool::get().set_threads(threads);
      Grads g = run_backward(c, in, dout);
      const std::string what = label(c) + " threads=" + std::to_string(threads);
      check::close(__FILE__, __LINE__, g.dq.data(), dq.data(), dq.size(), 2e-5, 1e-4, ("dq " + what).c_str());
      check::close(__FILE__, __LINE__, g.dk.data(), dk.data(), dk.size(), 2e-5, 1e-4, ("dk " + what).c_str());
      check::close(__FILE__, __LINE__, g.dv.data(), dv.data(), dv.size(), 2e-5, 1e-4, ("dv " + what).c_str());
    }
    seed += 10;
  }
  ThreadPool::get().set_threads(saved);
}

TEST(attention_bit_identical_across_runs) {
  // Forward: every thread count gives the same bits (rows are owned). Backward: the same bits
  // run to run at a fixed thread count (the dq sum order follows the pieces' cut).
  const int saved = ThreadPool::get().threads();
  Case c{1, 4, 2, 150, 32};
  auto in = make_inputs(c, 400);
  auto dout = ref::random_floats(in.q.size(), 401);
  std::vector<float> out2(in.q.size()), out3(in.q.size()), lse((size_t)c.H * c.T);
  for (int threads : {2, 3, 7}) {
    ThreadPool::get().set_threads(threads);
    Grads a = run_backward(c, in, dout), b = run_backward(c, in, dout);
    EXPECT_MSG(ref::bit_equal(a.dq, b.dq) && ref::bit_equal(a.dk, b.dk) && ref::bit_equal(a.dv, b.dv),
               "backward differs between two runs at " << threads << " threads");
  }
  ThreadPool::get().set_threads(2);
  attention_forward(out2.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), c.B, c.H, c.Hkv, c.T, c.D);
  ThreadPool::get().set_threads(3);
  attention_forward(out3.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), c.B, c.H, c.Hkv, c.T, c.D);
  ThreadPool::get().set_threads(saved);
  EXPECT(ref::bit_equal(out2, out3));
}

TEST(attention_simd_matches_scalar) {
  SimdGuard guard;
  Case c{1, 4, 2, 90, 64};
  auto in = make_inputs(c, 500);
  auto dout = ref::random_floats(in.q.size(), 501);
  std::vector<float> out_fast(in.q.size()), out_slow(in.q.size()), lse((size_t)c.H * c.T);
  attention_forward(out_fast.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), c.B, c.H, c.Hkv, c.T, c.D);
  Grads fast = run_backward(c, in, dout);
  EXPECT(set_simd_level_for_testing("scalar"));
  attention_forward(out_slow.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), c.B, c.H, c.Hkv, c.T, c.D);
  Grads slow = run_backward(c, in, dout);
  EXPECT_CLOSE(out_fast.data(), out_slow.data(), out_fast.size(), 1e-5, 1e-4);
  EXPECT_CLOSE(fast.dq.data(), slow.dq.data(), fast.dq.size(), 1e-5, 1e-4);
  EXPECT_CLOSE(fast.dk.data(), slow.dk.data(), fast.dk.size(), 1e-5, 1e-4);
  EXPECT_CLOSE(fast.dv.data(), slow.dv.data(), fast.dv.size(), 1e-5, 1e-4);
}

TEST(attention_rejects_heads_not_a_multiple_of_kv_heads) {
  std::vector<float> buf(64, 0.0f);
  bool threw = false;
  try {
    attention_forward(buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), 1, 3, 2, 1, 4);
  } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("Hkv = 2") != std::string::npos;
  }
  EXPECT(threw);
}
