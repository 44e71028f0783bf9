// CUDA backend tests: every CUDA op against the CPU engine's op (itself proved against float64
// references and finite differences in native/test/). Inputs are rounded to bf16 first where the
// CUDA op takes bf16, so differences measure the kernel, not the input rounding.
// Tolerances: fp32 ops 1e-4 relative to the reference's max |value| (fast-math exp, different
// summation order); bf16 tensor-core ops 2e-2 (bf16 P and dS, 8-bit mantissa).
// Without a device every test prints `SKIP name: reason` and counts as skipped, never passed;
// what runs there: the host-side tests (named cuda_host_*, e.g. the attention kernels' shared
// memory against each target GPU's limit) and the check that the backend factory refuses,
// giving the reason.
// The binary also holds cuda_backend_tests.cpp (CudaBackend vs the CPU backend, method by
// method), cuda_model_tests.cpp (whole-model steps, CPU vs CUDA) and cuda_precision_tests.cpp
// (the precision switched between calls).
// Prints `cuda: N passed, N failed, N skipped`; writes the counts as JSON to argv[1] if given.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "attention_tiles.h"
#include "backend_cuda.h"
#include "block_mask.h"
#include "block_selector.h"
#include "blocksparse_attention.h"
#include "check.h"
#include "cuda_test_util.h"
#include "ops.h"
#include "ops_cuda.h"

namespace {
using namespace cuda_backend;
using cuda_test::bf16_round;
using cuda_test::near;
using cuda_test::ok;
using cuda_test::randn;
using cuda_test::rounded;

template <typename T> struct Dev {
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(size_t count) : n(count) { if (cudaMalloc(&p, std::max<size_t>(1, n) * sizeof(T)) != cudaSuccess) check::fail(__FILE__, __LINE__, "cudaMalloc failed"); cudaMemset(p, 0, std::max<size_t>(1, n) * sizeof(T)); }
  Dev(const std::vector<T>& h) : Dev(h.size()) { cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice); }
  ~Dev() { cudaFree(p); }
  std::vector<T> get() const { std::vector<T> h(n); cudaDeviceSynchronize(); cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost); return h; }
};
Dev<__nv_bfloat16>* to_bf16(const std::vector<float>& h) {
  auto* d = new Dev<__nv_bfloat16>(h.size());
  Dev<float> f(h);
  ok(f32_to_bf16(d->p, f.p, (int64_t)h.size(), 0));
  cudaDeviceSynchronize();
  return d;
}
std::vector<float> from_bf16(const Dev<__nv_bfloat16>& d) {
  Dev<float> f(d.n);
  ok(bf16_to_f32(f.p, d.p, (int64_t)d.n, 0));
  return f.get();
}
}  // namespace

TEST(cuda_rmsnorm_matches_cpu) {
  const int N = 37, C = 96;
  auto x = randn(N * C, 1), w = randn(C, 2), dy = randn(N * C, 3);
  std::vector<float> y(N * C), rstd(N), dx(N * C, 0.f), dw(C, 0.f);
  engine::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), N, C, 1e-6f);
  engine::rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), N, C);
  Dev<float> dX(x), dW(w), dDY(dy), dY(N * C), dR(N), dDX(N * C), dDW(C);
  Dev<double> scratch((size_t)rmsnorm_backward_scratch(N, C));
  ok(rmsnorm_forward(dY.p, dR.p, dX.p, dW.p, N, C, 1e-6f, 0));
  ok(rmsnorm_backward(dDX.p, dDW.p, dDY.p, dX.p, dW.p, dR.p, N, C, scratch.p, 0));
  near(dY.get(), y, 1e-4, "out");
  near(dDX.get(), dx, 1e-4, "dinp");
  near(dDW.get(), dw, 1e-4, "dweight");
}

// QK-norm runs RMSNorm over B * T * H rows: Qwen3 at B 4, T 128K, 16 heads is 8,388,608 rows,
// past the 65,535 row chunks of 128 that gridDim.y allowed. A few rows more than that, C 2.
TEST(cuda_rmsnorm_backward_many_rows) {
  const int N = 65535 * 128 + 200, C = 2;
  auto x = randn((size_t)N * C, 31), w = randn(C, 32), dy = randn((size_t)N * C, 33);
  std::vector<float> y((size_t)N * C), rstd(N), dx((size_t)N * C, 0.f), dw(C, 0.f);
  engine::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), N, C, 1e-6f);
  engine::rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), N, C);
  Dev<float> dX(x), dW(w), dDY(dy), dR(rstd), dDX((size_t)N * C), dDW(C);
  Dev<double> scratch((size_t)rmsnorm_backward_scratch(N, C));
  ok(rmsnorm_backward(dDX.p, dDW.p, dDY.p, dX.p, dW.p, dR.p, N, C, scratch.p, 0));
  near(dDW.get(), dw, 1e-4, "dweight over 8.4M rows");
  near(dDX.get(), dx, 1e-4, "dinp over 8.4M rows");
}

// The dtype conversions check their launch like every other launcher: a pending error from an
// earlier call comes back as their Status instead of being left for a later op to report.
TEST(cuda_conversions_report_launch_errors) {
  Dev<float> f(100);
  Dev<__nv_bfloat16> b(100);
  ok(f32_to_bf16(b.p, f.p, 100, 0));
  ok(bf16_to_f32(f.p, b.p, 100, 0));
  // A failed allocation leaves a (non-sticky) error pending, checked on the host: nothing runs.
  auto leave_error = [] {
    void* p = nullptr;
    EXPECT(cudaMalloc(&p, size_t(1) << 62) != cudaSuccess);
  };
  leave_error();
  const Status st = f32_to_bf16(b.p, f.p, 100, 0);
  EXPECT_MSG(!st.ok, "f32_to_bf16 did not report the pending error");
  leave_error();
  EXPECT_MSG(!bf16_to_f32(f.p, b.p, 100, 0).ok, "bf16_to_f32 did not report the pending error");
  EXPECT(cudaGetLastError() == cudaSuccess);
}

TEST(cuda_rope_matches_cpu) {
  const int B = 2, T = 33, H = 3, D = 64;
  engine::RopeTable table = engine::rope_table(D, T, 10000.0, engine::RopeScaling{});
  auto x = randn((size_t)B * T * H * D, 4);
  auto want = x, dwant = x;
  engine::rope_forward(want.data(), B, T, H, D, table);
  engine::rope_backward(dwant.data(), B, T, H, D, table);
  Dev<float> dx(x), dd(x), dc(table.cos), ds(table.sin);
  ok(rope_forward(dx.p, dc.p, ds.p, B, T, H, D, 0));
  ok(rope_backward(dd.p, dc.p, ds.p, B, T, H, D, 0));
  near(dx.get(), want, 1e-5, "rope forward");
  near(dd.get(), dwant, 1e-5, "rope backward");
}

TEST(cuda_swiglu_matches_cpu) {
  const int n = 1000;
  auto g = randn(n, 5), u = randn(n, 6), dy = randn(n, 7);
  std::vector<float> y(n), dg(n), du(n);
  engine::swiglu_forward(y.data(), g.data(), u.data(), n);
  engine::swiglu_backward(dg.data(), du.data(), dy.data(), g.data(), u.data(), n);
  Dev<float> G(g), U(u), DY(dy), Y(n), DG(n), DU(n);
  ok(swiglu_forward(Y.p, G.p, U.p, n, 0));
  ok(swiglu_backward(DG.p, DU.p, DY.p, G.p, U.p, n, 0));
  near(Y.get(), y, 1e-4, "out");
  near(DG.get(), dg, 1e-4, "dgate");
  near(DU.get(), du, 1e-4, "dup");
}

TEST(cuda_cross_entropy_matches_cpu) {
  const int N = 19, V = 517;
  auto z = randn((size_t)N * V, 8, 3.f);
  std::vector<int> t(N);
  for (int i = 0; i < N; i++) t[i] = i == 5 ? -1 : (i * 37) % V;
  std::vector<float> dz(N * V);
  const float loss = engine::cross_entropy_forward_backward(dz.data(), z.data(), t.data(), N, V, 1.f);
  Dev<float> Z(z), L(N), DZ((size_t)N * V);
  Dev<int> TT(t);
  ok(cross_entropy(L.p, DZ.p, Z.p, TT.p, N, V, N - 1, 1.f, 0));
  auto losses = L.get();
  double mean = 0;
  for (float l : losses) mean += l;
  mean /= (N - 1);
  EXPECT_MSG(std::fabs(mean - loss) <= 1e-4 * std::fabs(loss), "loss " << mean << " vs cpu " << loss);
  near(DZ.get(), dz, 1e-4, "dlogits");
}

TEST(cuda_adamw_matches_cpu) {
  const int n = 777;
  auto p = randn(n, 9), g = randn(n, 10), m = randn(n, 11, 0.1f), v = rounded(randn(n, 12, 0.1f));
  for (auto& x : v) x = std::fabs(x);
  auto P = p, M = m, Vv = v;
  engine::adamw_update(P.data(), g.data(), M.data(), Vv.data(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3, 0.5f);
  Dev<float> dp(p), dg(g), dm(m), dv(v);
  Dev<__nv_bfloat16> pb(n);
  ok(adamw_update(dp.p, pb.p, dg.p, dm.p, dv.p, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3, 0.5f, 0));
  near(dp.get(), P, 1e-5, "param");
  near(dm.get(), M, 1e-5, "m");
  near(dv.get(), Vv, 1e-5, "v");
  near(from_bf16(pb), rounded(P), 1e-2, "bf16 copy");
}

TEST(cuda_matmul_bf16_matches_cpu) {
  for (int shape = 0; shape < 3; shape++) {
    const int N = shape == 0 ? 64 : 100 + shape * 13, C = shape == 2 ? 200 : 128, OC = 96 + shape * 31;
    auto x = rounded(randn((size_t)N * C, 13 + shape)), w = rounded(randn((size_t)OC * C, 17 + shape, 0.05f));
    std::vector<float> y((size_t)N * OC);
    engine::matmul_forward(y.data(), x.data(), w.data(), nullptr, N, C, OC);
    std::unique_ptr<Dev<__nv_bfloat16>> X(to_bf16(x)), W(to_bf16(w));
    Dev<float> Y1((size_t)N * OC), Y2((size_t)N * OC);
    ok(matmul_forward_bf16_wmma(Y1.p, X->p, W->p, N, C, OC, 0));
    ok(matmul_forward_bf16(Y2.p, X->p, W->p, N, C, OC, 0));
    near(Y1.get(), y, 1e-4, "wmma matmul");
    near(Y2.get(), y, 1e-4, cublas_available() ? "cublas matmul" : "matmul (wmma fallback)");
  }
}

// Sparse (and dense) attention against the CPU block-sparse kernel on the same mask.
// kv_tile as blocksparse_attention_forward's (0: what fits the device; 32 forces the small-tile
// variant that 99 KB GPUs run at D 128).
static void attention_case(int B, int H, int Hkv, int T, int D, int block, bool dense, bool share, uint64_t seed, int kv_tile = 0) {
  engine::MaskSpec spec;
  spec.block_size = block;
  spec.global_blocks = 1;
  spec.window_blocks = 1;
  spec.random_blocks = 2;
  spec.random_seed = seed;
  spec.share_gqa_group = share;
  if (dense) spec.dense_below = T + 1;  // every causal block pair kept
  engine::BlockMask mask = engine::build_block_mask(spec, T, H, Hkv, 0, nullptr);
  const size_t nq = (size_t)B * H * T * D, nk = (size_t)B * Hkv * T * D;
  auto q = rounded(randn(nq, (uint32_t)seed + 1)), k = rounded(randn(nk, (uint32_t)seed + 2)), v = rounded(randn(nk, (uint32_t)seed + 3));
  auto dout = rounded(randn(nq, (uint32_t)seed + 4));
  std::vector<float> out(nq), lse((size_t)B * H * T), dq(nq), dk(nk), dv(nk);
  engine::blocksparse_attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), B, H, Hkv, T, D, mask);
  auto out_r = rounded(out);  // the CUDA kernel stores out in bf16; backward reads that
  engine::blocksparse_attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), out_r.data(), lse.data(), B, H, Hkv, T, D, mask);

  TileMask tiles;
  ok(make_tile_mask(&tiles, dense ? std::vector<uint64_t>{} : mask.bits, T, block, mask.n_mask_heads));
  DeviceTileMask dm;
  ok(upload_tile_mask(&dm, tiles));
  std::unique_ptr<Dev<__nv_bfloat16>> Q(to_bf16(q)), K(to_bf16(k)), V(to_bf16(v)), DO(to_bf16(dout));
  Dev<__nv_bfloat16> O(nq);
  Dev<float> L((size_t)B * H * T), DQ(nq), DK(nk), DV(nk), scratch((size_t)B * H * T);
  ok(blocksparse_attention_forward(O.p, L.p, Q->p, K->p, V->p, B, H, Hkv, T, D, dm, 0, kv_tile));
  ok(blocksparse_attention_backward(DQ.p, DK.p, DV.p, DO->p, Q->p, K->p, V->p, O.p, L.p, scratch.p, B, H, Hkv, T, D, dm, 0, kv_tile));
  near(from_bf16(O), out, 2e-2, "out");
  near(L.get(), lse, 1e-3, "lse");
  near(DQ.get(), dq, 2e-2, "dq");
  near(DK.get(), dk, 2e-2, "dk");
  near(DV.get(), dv, 2e-2, "dv");
  free_tile_mask(&dm);
}

TEST(cuda_blocksparse_attention_matches_cpu) {
  attention_case(1, 4, 4, 256, 64, 64, false, true, 1);
  attention_case(2, 8, 2, 333, 64, 64, false, true, 2);     // GQA 4, tail block
  attention_case(1, 4, 1, 300, 128, 128, false, true, 3);   // block 128 = 2x2 tiles, D 128
  attention_case(1, 4, 2, 200, 128, 64, false, false, 4);   // per-head masks
}

TEST(cuda_dense_attention_matches_cpu) {
  attention_case(1, 4, 2, 190, 64, 64, true, true, 5);
  attention_case(1, 2, 2, 128, 128, 64, true, true, 6);
}

// The D 128 kernels with 32-row halves of each tile (what sm_86/sm_89/sm_120 run), forced on
// whatever device runs the tests: tails shorter and longer than a half, GQA, 128 blocks, dense.
TEST(cuda_attention_d128_half_tiles_match_cpu) {
  attention_case(2, 8, 2, 333, 128, 64, false, true, 7, 32);   // tail of 13 rows: the second half skipped
  attention_case(1, 4, 1, 300, 128, 128, false, true, 8, 32);  // tail of 44 rows: both halves, the second partial
  attention_case(1, 4, 2, 200, 128, 64, false, false, 9, 32);  // per-head masks
  attention_case(1, 2, 2, 150, 128, 64, true, true, 10, 32);   // dense
}

// Host-side (runs without a device): the attention kernels' shared memory against the per-block
// opt-in limits of the GPUs we target, and the variant each gets.
TEST(cuda_host_attention_fits_shared_memory_limits) {
  using namespace cuda_backend::attention_tiles;
  struct Arch { const char* name; size_t limit; int kv128; };
  const Arch archs[] = {{"sm_80", 163 * 1024, 64}, {"sm_86", 99 * 1024, 32}, {"sm_89", 99 * 1024, 32}, {"sm_90", 227 * 1024, 64}, {"sm_120", 99 * 1024, 32}};
  // The 64-row kernels at D 128 (113 KB forward, 123 KB backward) exceed 99 KB: why the 32-row variant exists.
  EXPECT_MSG(forward_smem(128, 64) == 113152 && dq_smem(128, 64) == 123392 && dkdv_smem(128, 64) == 123392,
             "D 128, 64 rows: " << forward_smem(128, 64) << " / " << dq_smem(128, 64) << " / " << dkdv_smem(128, 64));
  EXPECT(forward_smem(128, 32) == 83456 && max_smem(128, 32) == 83456);
  for (const Arch& a : archs)
    for (int D : {64, 128}) {
      const Plan p = plan(D, a.limit);
      const std::string what = std::string(a.name) + " D " + std::to_string(D);
      EXPECT_MSG(p.kv != 0, what << ": no variant fits: " << p.reason);
      const int want = D == 64 ? 64 : a.kv128;
      EXPECT_MSG(p.kv == want, what << ": tiles of " << p.kv << ", want " << want);
      EXPECT_MSG(forward_smem(D, p.kv) <= a.limit && dq_smem(D, p.kv) <= a.limit && dkdv_smem(D, p.kv) <= a.limit && p.bytes <= a.limit,
                 what << ": needs " << p.bytes << " bytes, limit " << a.limit);
      EXPECT_MSG(compiled(D, p.kv), what << ": planned a variant that is not compiled");
      EXPECT_MSG(!attention_support(a.limit).empty(), what << ": attention_support says nothing fits");
    }
  EXPECT(attention_support(99 * 1024).find("key tiles of 32") != std::string::npos);
  EXPECT(attention_support(227 * 1024) == "head_dim 64 and 128");
  // Where nothing fits, the plan refuses naming the need and the limit; unknown variants refuse.
  const Plan small = plan(128, 64 * 1024);
  EXPECT_MSG(small.kv == 0 && small.reason.find("83456") != std::string::npos && small.reason.find("65536") != std::string::npos, small.reason);
  EXPECT(attention_support(64 * 1024).empty());  // not even head_dim 64 (90,624 bytes): device_info calls it unusable
  EXPECT(plan(96, 227 * 1024).kv == 0 && plan(64, 227 * 1024, 32).kv == 0);
  EXPECT(plan(128, 227 * 1024, 32).kv == 32 && plan(128, 99 * 1024, 64).kv == 0);
}

TEST(cuda_pooled_scores_match_cpu) {
  const int H = 8, Hkv = 2, T = 300, D = 64, block = 64, nb = (T + block - 1) / block;
  auto q = randn((size_t)H * T * D, 20), k = randn((size_t)Hkv * T * D, 21);
  for (bool share : {true, false}) {
    const int heads = share ? Hkv : H;
    std::vector<float> want((size_t)heads * nb * nb);
    engine::pooled_block_scores(want.data(), q.data(), k.data(), H, Hkv, T, D, block, share);
    Dev<float> Q(q), K(k), S(want.size());
    ok(pooled_block_scores(S.p, Q.p, K.p, H, Hkv, T, D, block, share, 0));
    auto got = S.get();
    std::vector<float> g, w;
    for (int h = 0; h < heads; h++)
      for (int i = 0; i < nb; i++)
        for (int j = 0; j < nb; j++) {
          const size_t at = ((size_t)h * nb + i) * nb + j;
          if (j > i) {
            EXPECT_MSG(std::isinf(got[at]) && got[at] < 0, "non-causal score " << at << " = " << got[at] << ", want -inf");
            continue;
          }
          g.push_back(got[at]);
          w.push_back(want[at]);
        }
    near(g, w, 1e-4, share ? "scores (shared by the GQA group)" : "scores (per query head)");
  }
}

// The indexer's target on its own (the backend tests see it only through the loss): two
// sequences, teacher lse from the CPU's dense attention, block sizes with and without a tail,
// against engine::teacher_block_attention per sequence; rows sum to 1, zeros above the diagonal.
TEST(cuda_teacher_block_attention_matches_cpu) {
  struct Shape { int H, Hkv, T, D, block; };
  for (Shape s : {Shape{4, 2, 150, 32, 16}, Shape{2, 2, 256, 64, 64}, Shape{4, 1, 300, 48, 128}}) {
    const int B = 2, nb = (s.T + s.block - 1) / s.block;
    const size_t nq = (size_t)B * s.H * s.T * s.D, nk = (size_t)B * s.Hkv * s.T * s.D, nl = (size_t)B * s.H * s.T;
    auto q = randn(nq, (uint32_t)(s.T + 1)), k = randn(nk, (uint32_t)(s.T + 2)), v = randn(nk, (uint32_t)(s.T + 3));
    std::vector<float> out(nq), lse(nl), want((size_t)B * nb * nb);
    engine::attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), B, s.H, s.Hkv, s.T, s.D);
    for (int b = 0; b < B; b++)
      engine::teacher_block_attention(want.data() + (size_t)b * nb * nb, q.data() + (size_t)b * s.H * s.T * s.D,
                                      k.data() + (size_t)b * s.Hkv * s.T * s.D, lse.data() + (size_t)b * s.H * s.T, s.H, s.Hkv, s.T, s.D,
                                      s.block);
    Dev<float> Q(q), K(k), L(lse), target(want.size());
    Dev<double> acc(want.size());
    ok(teacher_block_attention(target.p, acc.p, Q.p, K.p, L.p, B, s.H, s.Hkv, s.T, s.D, s.block, 0));
    const auto got = target.get();
    near(got, want, 1e-4, "teacher block attention T" + std::to_string(s.T) + " block " + std::to_string(s.block));
    for (int r = 0; r < B * nb; r++) {
      double sum = 0;
      for (int j = 0; j < nb; j++) {
        const float x = got[(size_t)r * nb + j];
        if (j > r % nb) EXPECT_MSG(x == 0.f, "target above the diagonal at row " << r << ", block " << j);
        sum += x;
      }
      EXPECT_MSG(std::fabs(sum - 1) < 1e-5, "target row " << r << " sums to " << sum);
    }
  }
}

int main(int argc, char** argv) {
  // Versions first: a runtime newer than the driver supports shows up as every GPU test skipped.
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  if (driver == 0) std::printf("cuda: no CUDA driver; runtime (static, from the toolkit) %d.%d\n", runtime / 1000, runtime % 1000 / 10);
  else
    std::printf("cuda: driver supports CUDA %d.%d, runtime (static, from the toolkit) %d.%d%s\n", driver / 1000, driver % 1000 / 10, runtime / 1000,
                runtime % 1000 / 10, runtime > driver ? " (newer than the driver: the device is unusable)" : "");
  const DeviceInfo dev = device_info();
  // Tests named cuda_host_* need no device and always run; the rest are skipped without one.
  auto& tests = check::Registry::get().tests;
  auto all = std::move(tests);
  tests.clear();
  for (auto& t : all)
    if (t.first.rfind("cuda_host_", 0) == 0) tests.push_back(t);
  check::Counts c = check::run_all(nullptr);
  tests.clear();
  for (auto& t : all)
    if (t.first.rfind("cuda_host_", 0) != 0) tests.push_back(t);
  const check::Counts g = check::run_all(nullptr, dev.available ? nullptr : dev.reason.c_str());
  c.passed += g.passed;
  c.failed += g.failed;
  c.skipped += g.skipped;
  if (dev.available)
    std::printf("cuda: %s (sm_%d%d), %zu bytes of shared memory per block: attention %s; GEMM %s\n", dev.name.c_str(), dev.sm_major, dev.sm_minor,
                dev.smem_optin_bytes, dev.attention.c_str(), gemm_path().c_str());
  if (!dev.available) {
    // The one check that needs no device: the factory the engine calls refuses with the reason.
    char error[256] = "";
    engine::Backend* made = sparse_studio_create_cuda_backend(1, error, (int)sizeof error);
    const bool refused = made == nullptr && std::strstr(error, dev.reason.c_str()) != nullptr;
    delete made;
    std::printf("%s cuda_factory_refuses_without_a_device%s%s\n", refused ? "PASS" : "FAIL", refused ? "" : ": got ", refused ? "" : error);
    (refused ? c.passed : c.failed)++;
  }
  std::printf("cuda: %d passed, %d failed, %d skipped%s%s\n", c.passed, c.failed, c.skipped, dev.available ? " on " : "", dev.name.c_str());
  if (argc > 1) {
    if (FILE* f = std::fopen(argv[1], "w")) {
      std::fprintf(f, "{\"passed\":%d,\"failed\":%d,\"skipped\":%d}\n", c.passed, c.failed, c.skipped);
      std::fclose(f);
    }
  }
  return c.failed == 0 ? 0 : 1;
}
