// SGEMM and the Linear wrappers against float64 references: odd shapes, every transpose,
// alpha/beta, padded leading dimensions, determinism, thread-count independence, SIMD vs scalar.
#include <cmath>
#include <limits>
#include <string>

#include "check.h"
#include "gemm.h"
#include "gemm_kernels.h"
#include "simd.h"
#include "ops.h"
#include "parallel.h"
#include "reference.h"

using namespace engine;

namespace {

// Runs sgemm (or sgemm_serial) and the reference on one shape; tolerance scales with K (float32 accumulation).
void check_gemm_shape(bool ta, bool tb, int M, int N, int K, float alpha, float beta, int pad, uint64_t seed,
                      bool serial = false) {
  const int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  const int a_rows = ta ? K : M, b_rows = tb ? N : K;
  auto A = ref::random_floats((size_t)a_rows * lda, seed);
  auto B = ref::random_floats((size_t)b_rows * ldb, seed + 1);
  auto C = ref::random_floats((size_t)M * ldc, seed + 2);
  auto want = ref::to_double(C);
  ref::gemm(ta, tb, M, N, K, alpha, ref::to_double(A), lda, ref::to_double(B), ldb, beta, want, ldc);
  (serial ? sgemm_serial : sgemm)(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  const double atol = 1e-5 * (K + 1), rtol = 1e-5;
  for (int i = 0; i < M; i++) {
    std::string what = "C row " + std::to_string(i) + " ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) +
                       " M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K);
    check::close(__FILE__, __LINE__, C.data() + (size_t)i * ldc, want.data() + (size_t)i * ldc, N, atol, rtol,
                 what.c_str());
  }
}

struct SimdGuard {
  ~SimdGuard() { set_simd_level_for_testing("auto"); }
};
struct ThreadsGuard {
  int saved = ThreadPool::get().threads();
  ~ThreadsGuard() { ThreadPool::get().set_threads(saved); }
};

// One SIMD level's kernels against the float64 reference: sizes of 1, sizes that are not
// multiples of the register tile (12x32 AVX-512, 6x16 AVX2), K over several slices (kc 256),
// N over several packed blocks (nc 512), M over several packed blocks of a transposed A, every
// transpose, alpha/beta, padded leading dimensions, threaded and on the calling thread.
void check_level(const char* level) {
  SimdGuard guard;
  if (!set_simd_level_for_testing(level))
    SKIP_TEST(std::string("this CPU has no ") + level + " (best level here: " + simd_level_name(simd_detected()) + ")");
  EXPECT(std::string(simd_level()) == level);
  const int shapes[][3] = {{1, 1, 1}, {1, 33, 7}, {13, 1, 5}, {12, 32, 256}, {25, 47, 3}, {6, 16, 257},
                           {37, 65, 600}, {250, 20, 40}, {11, 1100, 30}, {64, 128, 1024}};
  uint64_t seed = 100;
  for (auto& s : shapes)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        check_gemm_shape(ta, tb, s[0], s[1], s[2], 1.0f, 0.0f, 0, seed++);
        check_gemm_shape(ta, tb, s[0], s[1], s[2], -0.75f, 0.5f, 3, seed++, /*serial=*/true);
      }
  check_gemm_shape(false, true, 29, 70, 600, 1.5f, -1.0f, 5, seed++);  // K over slices: beta applied once
  check_gemm_shape(true, false, 200, 40, 300, 2.0f, 1.0f, 1, seed++);
}

// C = A B^T with B stored (N, K) against the direct product of the same numbers with B stored
// transposed (K, N), bit for bit, at 1, 2 and 3 threads; its first 3 rows (too few to take the
// transposed product) the same bits too.
void check_transposed_b_matches_direct(int M, int N, int K, uint64_t seed_a, uint64_t seed_b) {
  auto A = ref::random_floats((size_t)M * K, seed_a), B = ref::random_floats((size_t)N * K, seed_b);
  std::vector<float> Bt((size_t)K * N);  // op(B) stored as is: the direct (packed B) path
  for (int j = 0; j < N; j++)
    for (int p = 0; p < K; p++) Bt[(size_t)p * N + j] = B[(size_t)j * K + p];
  std::vector<float> direct((size_t)M * N);
  sgemm(false, false, M, N, K, 1.0f, A.data(), K, Bt.data(), N, 0.0f, direct.data(), N);
  for (int t : {1, 2, 3}) {
    ThreadPool::get().set_threads(t);
    std::vector<float> C((size_t)M * N);
    sgemm(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, C.data(), N);
    EXPECT_MSG(ref::bit_equal(direct, C), "threads " << t);
    std::vector<float> top((size_t)3 * N);  // 3 rows: below the switch to the transposed product
    sgemm(false, true, 3, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, top.data(), N);
    EXPECT_MSG(std::memcmp(top.data(), C.data(), top.size() * sizeof(float)) == 0, "threads " << t);
  }
}

}  // namespace

TEST(gemm_avx512_kernels_match_float64_reference) { check_level("avx512"); }

TEST(gemm_avx2_kernels_match_float64_reference) { check_level("avx2"); }

TEST(gemm_scalar_kernels_match_float64_reference) { check_level("scalar"); }

TEST(gemm_odd_shapes_all_transposes) {
  const int shapes[][3] = {{1, 1, 1}, {1, 17, 5}, {7, 1, 9}, {5, 3, 300}, {13, 37, 29}, {67, 45, 261}, {130, 33, 8}};
  uint64_t seed = 10;
  for (auto& s : shapes)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) check_gemm_shape(ta, tb, s[0], s[1], s[2], 1.0f, 0.0f, 0, seed++);
}

TEST(gemm_alpha_beta_and_leading_dimensions) {
  check_gemm_shape(false, false, 19, 23, 31, 0.5f, 1.0f, 3, 1);
  check_gemm_shape(true, false, 19, 23, 31, -2.0f, 0.25f, 5, 2);
  check_gemm_shape(false, true, 50, 70, 600, 1.5f, -1.0f, 1, 3);  // K > one KC slice: beta applied once
  check_gemm_shape(true, true, 8, 40, 17, 1.0f, 2.0f, 7, 4);
}

TEST(gemm_beta_zero_ignores_nan_in_c) {
  const int M = 9, N = 21, K = 4;
  auto A = ref::random_floats(M * K, 5), B = ref::random_floats(K * N, 6);
  std::vector<float> C(M * N, std::numeric_limits<float>::quiet_NaN());
  sgemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N);
  for (float c : C) EXPECT(std::isfinite(c));
}

TEST(gemm_k_zero_scales_c_by_beta) {
  std::vector<float> C = {1, 2, 3, 4, 5, 6};
  sgemm(false, false, 2, 3, 0, 1.0f, nullptr, 1, nullptr, 3, 0.5f, C.data(), 3);
  const float want[] = {0.5f, 1, 1.5f, 2, 2.5f, 3};
  EXPECT_CLOSE(C.data(), want, 6, 0.0, 0.0);
}

TEST(gemm_bit_identical_across_runs_and_thread_counts) {
  ThreadsGuard guard;
  const int M = 97, N = 150, K = 520;
  auto A = ref::random_floats(M * K, 7), B = ref::random_floats(N * K, 8);
  auto run = [&] {
    std::vector<float> C(M * N);
    sgemm(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, C.data(), N);
    return C;
  };
  ThreadPool::get().set_threads(2);
  auto first = run(), second = run();
  EXPECT(ref::bit_equal(first, second));
  ThreadPool::get().set_threads(1);
  EXPECT(ref::bit_equal(first, run()));
  ThreadPool::get().set_threads(3);
  EXPECT(ref::bit_equal(first, run()));
  // Short M: still the same numbers.
  std::vector<float> top(3 * N);
  sgemm(false, true, 3, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, top.data(), N);
  EXPECT(std::memcmp(top.data(), first.data(), top.size() * sizeof(float)) == 0);
  // A wide C is split among threads by columns, a narrow one by rows: every split gives the
  // bits of the serial product, transposed A (packed per block) included.
  const int wide = 520;
  auto Bw = ref::random_floats((size_t)wide * K, 18), At = ref::random_floats((size_t)K * M, 19);
  for (bool ta : {false, true}) {
    const float* a = ta ? At.data() : A.data();
    const int lda = ta ? M : K;
    std::vector<float> serial((size_t)M * wide);
    sgemm_serial(ta, true, M, wide, K, 1.0f, a, lda, Bw.data(), K, 0.0f, serial.data(), wide);
    for (int t : {1, 2, 3, 4}) {
      ThreadPool::get().set_threads(t);
      std::vector<float> C((size_t)M * wide);
      sgemm(ta, true, M, wide, K, 1.0f, a, lda, Bw.data(), K, 0.0f, C.data(), wide);
      EXPECT_MSG(ref::bit_equal(serial, C), "threads " << t << " ta " << ta);
    }
  }
}

// A few rows against a big B stored (N, K) (an LM head) go through C^T = B op(A)^T, B read in
// place: still the float64 reference's numbers, and the bits of the direct product (the same
// rows with B pre-transposed, or too few rows to switch), for every thread count.
TEST(gemm_few_rows_big_transposed_b_matches_direct_product) {
  ThreadsGuard guard;
  const int M = 20, N = 2100, K = 2000;  // N * K = 4.2M floats: over the switch
  check_gemm_shape(false, true, M, N, K, 1.0f, 0.0f, 0, 31);
  check_gemm_shape(true, true, M, N, K, -0.5f, 0.0f, 3, 32);
  check_transposed_b_matches_direct(M, N, K, 33, 34);
}

// The transposed product runs C^T in blocks of rows (512 KiB of C^T each) after packing op(A)^T
// once per thread: many rows of C make several blocks per thread, a block's rows end inside a
// register tile, and C's rows are padded. Same reference numbers at every SIMD level, and the
// bits of the direct product for every thread count.
TEST(gemm_transposed_product_in_several_blocks) {
  ThreadsGuard guard;
  SimdGuard simd_guard;
  const int M = 160, N = 2601, K = 1700;  // blocks of 816 rows of C^T: 4 per thread at 1 thread
  for (const char* level : {"scalar", "avx2", "avx512"}) {
    if (!set_simd_level_for_testing(level)) continue;  // levels this CPU lacks: their own tests skip
    check_gemm_shape(false, true, M, N, K, 0.75f, 0.0f, 5, 35);
    check_gemm_shape(true, true, M, N, K, 1.0f, 0.0f, 0, 36);
  }
  set_simd_level_for_testing("auto");
  check_transposed_b_matches_direct(M, N, K, 37, 38);
}

// Each level's B packing against the layout written out naively: k-rows and columns that end
// inside a transpose tile (16 x 16 for AVX-512, 8 x 8 for AVX2) and inside a panel, zero padding,
// an offset block, padded rows of B, both layouts. Pure copies, so equal to the bit.
void check_pack_level(const char* level) {
  SimdGuard guard;
  if (!set_simd_level_for_testing(level))
    SKIP_TEST(std::string("this CPU has no ") + level + " (best level here: " + simd_level_name(simd_detected()) + ")");
  const GemmKernels& g = gemm_kernels(simd());
  const int nr = g.nr, rows_b = 300, ldb = 311;
  auto B = ref::random_floats((size_t)rows_b * ldb, 40);
  for (bool trans_b : {false, true})
    for (int kc : {1, 5, 8, 16, 17, 40})
      for (int cols : {1, 7, 8, 15, 16, 17, 31, 32, 33, 100}) {
        const int p0 = 3, j0 = 5, panels = (cols + nr - 1) / nr;
        std::vector<float> got((size_t)panels * kc * nr, -1.0f), want(got.size());
        for (int q = 0; q < panels; q++)
          for (int p = 0; p < kc; p++)
            for (int c = 0; c < nr; c++) {
              const int j = q * nr + c;
              want[((size_t)q * kc + p) * nr + c] =
                  j >= cols ? 0.0f : trans_b ? B[(size_t)(j0 + j) * ldb + p0 + p] : B[(size_t)(p0 + p) * ldb + j0 + j];
            }
        g.pack_b(got.data(), B.data(), ldb, trans_b, p0, kc, j0, cols);
        EXPECT_MSG(ref::bit_equal(got, want), level << " trans_b " << trans_b << " kc " << kc << " cols " << cols);
      }
}

TEST(gemm_pack_b_avx512_matches_naive_layout) { check_pack_level("avx512"); }

TEST(gemm_pack_b_avx2_matches_naive_layout) { check_pack_level("avx2"); }

TEST(gemm_pack_b_scalar_matches_naive_layout) { check_pack_level("scalar"); }

TEST(gemm_simd_matches_scalar) {
  SimdGuard guard;
  const int M = 45, N = 77, K = 300;
  auto A = ref::random_floats(M * K, 9), B = ref::random_floats(K * N, 10);
  std::vector<float> fast(M * N), slow(M * N);
  sgemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, fast.data(), N);
  EXPECT(set_simd_level_for_testing("scalar"));
  EXPECT(std::string(simd_level()) == "scalar");
  sgemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, slow.data(), N);
  EXPECT_CLOSE(fast.data(), slow.data(), fast.size(), 1e-4, 1e-5);
  // With the scalar kernel the result still matches the float64 reference.
  check_gemm_shape(true, true, 31, 29, 70, 1.0f, 0.5f, 2, 11);
}

TEST(simd_level_setter_rejects_unknown_levels) {
  SimdGuard guard;
  EXPECT(!set_simd_level_for_testing("sse9"));
  const std::string before = simd_level();
  EXPECT(set_simd_level_for_testing("auto"));
  EXPECT(std::string(simd_level()) == before);
}

TEST(matmul_forward_with_and_without_bias) {
  const int N = 11, C = 19, OC = 23;
  auto inp = ref::random_floats(N * C, 12), w = ref::random_floats(OC * C, 13), bias = ref::random_floats(OC, 14);
  std::vector<float> out(N * OC);
  matmul_forward(out.data(), inp.data(), w.data(), bias.data(), N, C, OC);
  auto want = ref::linear(ref::to_double(inp), ref::to_double(w), ref::to_double(bias), N, C, OC);
  EXPECT_CLOSE(out.data(), want.data(), out.size(), 1e-5, 1e-5);
  matmul_forward(out.data(), inp.data(), w.data(), nullptr, N, C, OC);
  want = ref::linear(ref::to_double(inp), ref::to_double(w), {}, N, C, OC);
  EXPECT_CLOSE(out.data(), want.data(), out.size(), 1e-5, 1e-5);
}

// Loss L = sum(out * dout) in float64; its finite-difference gradients are what matmul_backward must add.
TEST(matmul_backward_matches_finite_differences_and_accumulates) {
  const int N = 5, C = 7, OC = 6;
  auto inp = ref::random_floats(N * C, 15), w = ref::random_floats(OC * C, 16), dout = ref::random_floats(N * OC, 17);
  const auto dout_d = ref::to_double(dout);
  auto loss_inp = [&](const ref::Vec& x) { return ref::dot(ref::linear(x, ref::to_double(w), {}, N, C, OC), dout_d); };
  auto loss_w = [&](const ref::Vec& x) { return ref::dot(ref::linear(ref::to_double(inp), x, {}, N, C, OC), dout_d); };
  auto want_dinp = ref::numeric_grad(loss_inp, ref::to_double(inp));
  auto want_dw = ref::numeric_grad(loss_w, ref::to_double(w));
  // Start from 1.0 to check accumulation (+=).
  std::vector<float> dinp(N * C, 1.0f), dw(OC * C, 1.0f);
  matmul_backward(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), N, C, OC);
  for (auto& x : want_dinp) x += 1.0;
  for (auto& x : want_dw) x += 1.0;
  EXPECT_CLOSE(dinp.data(), want_dinp.data(), dinp.size(), 1e-5, 1e-5);
  EXPECT_CLOSE(dw.data(), want_dw.data(), dw.size(), 1e-5, 1e-5);
  // nullptr skips a gradient.
  std::vector<float> only(N * C, 0.0f);
  matmul_backward(only.data(), nullptr, dout.data(), inp.data(), w.data(), N, C, OC);
  for (auto& x : want_dinp) x -= 1.0;
  EXPECT_CLOSE(only.data(), want_dinp.data(), only.size(), 1e-5, 1e-5);
}

// accumulate_dweight false overwrites the weight gradient (old contents, NaN included, ignored)
// with the bits of accumulating into zeros; the input gradient still accumulates.
TEST(matmul_backward_can_overwrite_the_weight_gradient) {
  const int N = 37, C = 45, OC = 70;
  auto inp = ref::random_floats(N * C, 51), w = ref::random_floats(OC * C, 52), dout = ref::random_floats(N * OC, 53);
  std::vector<float> dinp_acc(N * C, 1.0f), dw_acc(OC * C, 0.0f);
  matmul_backward(dinp_acc.data(), dw_acc.data(), dout.data(), inp.data(), w.data(), N, C, OC);
  std::vector<float> dinp(N * C, 1.0f), dw(OC * C, std::numeric_limits<float>::quiet_NaN());
  matmul_backward(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), N, C, OC, /*accumulate_dweight=*/false);
  EXPECT(ref::bit_equal(dw, dw_acc));
  EXPECT(ref::bit_equal(dinp, dinp_acc));
}
