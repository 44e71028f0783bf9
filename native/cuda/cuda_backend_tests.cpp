// CudaBackend against the CPU backend, method by method, through the Backend interface only:
// the same inputs go into both backends' memory, the same call runs on each, and the outputs
// are compared. Outputs that accumulate start non-zero (so += vs = shows), outputs that are
// overwritten start at garbage, and the documented aliasing cases are run aliased.
// Tolerances (relative to the CPU's max |value|): fp32 ops 1e-4; bf16 / fp16 matrix products
// and attention (bf16 always) 2e-2; exact where the CUDA op does the CPU's arithmetic in the
// CPU's order (embedding, head transposes).
// Part of the cuda_tests binary: without a device every test is skipped (see cuda_tests.cpp).
#include <cmath>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "backend.h"
#include "backend_cuda.h"
#include "block_mask.h"
#include "check.h"
#include "moe.h"
#include "cuda_test_util.h"
#include "ops.h"

namespace {
using cuda_test::near;
using cuda_test::near_scalar;
using cuda_test::randn;
using cuda_test::rounded;
using engine::Backend;
using engine::Precision;
using Outputs = std::vector<std::vector<float>>;

Backend& gpu(Precision p = Precision::bf16) { return *cuda_test::cuda_backend_at(p); }
Backend& cpu() { return *engine::cpu_backend(); }

// An array in a backend's memory, made from / read back to the host.
template <typename T>
struct Arr {
  Backend& be;
  T* p = nullptr;
  int64_t n = 0;
  Arr(Backend& b, int64_t count) : be(b), n(count) {
    if constexpr (std::is_same<T, float>::value) p = be.alloc(n);
    else p = be.alloc_i32(n);
  }
  Arr(Backend& b, const std::vector<T>& h) : Arr(b, (int64_t)h.size()) { be.upload(p, h.data(), n * (int64_t)sizeof(T)); }
  Arr(const Arr&) = delete;
  Arr& operator=(const Arr&) = delete;
  ~Arr() { be.release(p); }
  std::vector<T> get() const {
    std::vector<T> h(n);
    be.download(h.data(), p, n * (int64_t)sizeof(T));
    return h;
  }
};
using F = Arr<float>;
using I = Arr<int32_t>;

// Runs `run` on the CPU and on the GPU backend at `p`; compares output i at tols[i] (one tol for all
// when tols has one entry).
template <typename Run>
void compare(Run run, const std::vector<std::string>& names, const std::vector<double>& tols, Precision p = Precision::bf16) {
  const Outputs want = run(cpu()), got = run(gpu(p));
  EXPECT(want.size() == names.size() && got.size() == names.size());
  for (size_t i = 0; i < names.size(); i++) near(got[i], want[i], tols.size() == 1 ? tols[0] : tols[i], names[i]);
}

std::vector<int32_t> random_tokens(int n, int V, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> dist(0, V - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = dist(gen);
  return t;
}
// Start values of outputs that must be overwritten.
std::vector<float> garbage(size_t n) { return std::vector<float>(n, 7.25f); }
}  // namespace

TEST(cuda_backend_identity_memory_and_factory) {
  Backend& be = gpu(Precision::bf16);
  EXPECT(be.name() == "cuda");
  EXPECT(!be.host_resident());
  EXPECT(be.precision() == Precision::bf16);
  EXPECT(!be.device().empty());
  EXPECT(gpu(Precision::fp32).precision() == Precision::fp32);
  EXPECT(gpu(Precision::fp16).precision() == Precision::fp16);
  {
    F zeros(be, 1000);
    I izeros(be, 333);
    for (float x : zeros.get()) EXPECT(x == 0.f);
    for (int32_t x : izeros.get()) EXPECT(x == 0);
    F empty(be, 0);  // a valid (releasable) pointer
    EXPECT(empty.p != nullptr);
  }
  auto h = randn(1000, 1);
  F a(be, h), b(be, 1000);
  EXPECT(a.get() == h);
  be.copy(b.p, a.p, 1000);
  EXPECT(b.get() == h);
  be.fill(b.p + 100, -2.5f, 50);
  auto got = b.get();
  for (int i = 0; i < 1000; i++) EXPECT(got[i] == (i >= 100 && i < 150 ? -2.5f : h[i]));
  be.release(nullptr);  // no-op

  char error[256] = "unchanged";
  engine::Backend* made = sparse_studio_create_cuda_backend((int)Precision::fp16, error, (int)sizeof error);
  EXPECT_MSG(made != nullptr, "factory: " << error);
  EXPECT(made->name() == "cuda" && made->precision() == Precision::fp16);
  delete made;
  EXPECT(sparse_studio_create_cuda_backend(7, error, (int)sizeof error) == nullptr);
  EXPECT_MSG(std::string(error).find("unknown precision 7") != std::string::npos, error);
}

TEST(cuda_backend_embedding_matches_cpu_exactly) {
  const int N = 300, C = 70, V = 40;  // many repeated tokens
  const auto tokens = random_tokens(N, V, 2);
  const auto table = randn((size_t)V * C, 3), dout = randn((size_t)N * C, 4), dtable0 = randn((size_t)V * C, 5);
  compare(
      [&](Backend& be) {
        I tok(be, tokens);
        F tab(be, table), out(be, garbage((size_t)N * C)), dy(be, dout), dtab(be, dtable0);
        be.embedding_forward(out.p, tok.p, tab.p, N, C);
        be.embedding_backward(dtab.p, dy.p, tok.p, N, C);  // accumulates onto dtable0
        return Outputs{out.get(), dtab.get()};
      },
      {"embedding out", "dtable"}, {0.0});
  auto bad = tokens;
  bad[17] = -3;
  I tok(gpu(), bad);
  F dy(gpu(), dout), dtab(gpu(), dtable0);
  EXPECT_THROWS_MSG(gpu().embedding_backward(dtab.p, dy.p, tok.p, N, C), "tokens[17] = -3 is negative");
}

TEST(cuda_backend_rmsnorm_matches_cpu) {
  const int N = 37, C = 200;
  const auto x = randn((size_t)N * C, 6), w = randn(C, 7), dy = randn((size_t)N * C, 8);
  const auto dx0 = randn((size_t)N * C, 9), dw0 = randn(C, 10, 5.f);
  compare(
      [&](Backend& be) {
        F X(be, x), W(be, w), DY(be, dy), Y(be, garbage((size_t)N * C)), R(be, garbage(N)), DX(be, dx0), DW(be, dw0);
        F DX2(be, dx0), DW2(be, dw0);
        be.rmsnorm_forward(Y.p, R.p, X.p, W.p, N, C, 1e-5f);
        be.rmsnorm_backward(DX.p, DW.p, DY.p, X.p, W.p, R.p, N, C);
        be.rmsnorm_backward(DX2.p, nullptr, DY.p, X.p, W.p, R.p, N, C);  // frozen norm
        be.rmsnorm_backward(nullptr, DW2.p, DY.p, X.p, W.p, R.p, N, C);
        return Outputs{Y.get(), R.get(), DX.get(), DW.get(), DX2.get(), DW2.get()};
      },
      {"out", "rstd", "dinp", "dweight", "dinp (dweight null)", "dweight (dinp null)"}, {1e-4});
}

TEST(cuda_backend_matmul_matches_cpu) {
  struct Shape { int N, C, OC; };
  for (Precision p : {Precision::bf16, Precision::fp16, Precision::fp32}) {
    const double tol = p == Precision::fp32 ? 1e-4 : 2e-2;
    for (Shape s : {Shape{37, 96, 80}, Shape{128, 256, 512}, Shape{5, 1000, 3}}) {
      const size_t nx = (size_t)s.N * s.C, nw = (size_t)s.OC * s.C, ny = (size_t)s.N * s.OC;
      const auto x = randn(nx, 11), w = randn(nw, 12, 0.05f), dy = randn(ny, 13);
      // Start values about as large as the products, so a lost += shows.
      const auto dx0 = randn(nx, 14, 0.05f * std::sqrt((float)s.OC)), dw0 = randn(nw, 15, std::sqrt((float)s.N));
      compare(
          [&](Backend& be) {
            F X(be, x), W(be, w), DY(be, dy), Y(be, garbage(ny)), DX(be, dx0), DW(be, dw0), DX2(be, dx0), DW2(be, dw0);
            be.matmul_forward(Y.p, X.p, W.p, s.N, s.C, s.OC);
            be.matmul_backward(DX.p, DW.p, DY.p, X.p, W.p, s.N, s.C, s.OC);
            be.matmul_backward(DX2.p, nullptr, DY.p, X.p, W.p, s.N, s.C, s.OC);
            be.matmul_backward(nullptr, DW2.p, DY.p, X.p, W.p, s.N, s.C, s.OC);
            return Outputs{Y.get(), DX.get(), DW.get(), DX2.get(), DW2.get()};
          },
          {"out", "dinp", "dweight", "dinp only", "dweight only"}, {tol}, p);
    }
  }
}

// Our fp32 SGEMM fallback (and gemm_f32 itself, cuBLAS when present) against ops.h's sgemm,
// every transpose combination, alpha, beta 0 (C ignored, even NaN) and beta != 0.
TEST(cuda_gemm_f32_and_fallback_match_cpu_sgemm) {
  const int M = 45, N = 70, K = 133;
  Backend& be = gpu();
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (float beta : {0.f, 1.3f}) {
        const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
        const auto a = randn((size_t)(ta ? K : M) * lda, 16), b = randn((size_t)(tb ? N : K) * ldb, 17);
        auto c0 = randn((size_t)M * ldc, 18);
        if (beta == 0.f) c0.assign(c0.size(), NAN);
        auto want = c0;
        engine::sgemm(ta, tb, M, N, K, 0.7f, a.data(), lda, b.data(), ldb, beta, want.data(), ldc);
        for (int which = 0; which < 2; which++) {
          F A(be, a), B(be, b), Cm(be, c0);
          cuda_test::ok(which == 0 ? cuda_backend::gemm_f32_fallback(ta, tb, M, N, K, 0.7f, A.p, lda, B.p, ldb, beta, Cm.p, ldc, 0)
                                   : cuda_backend::gemm_f32(ta, tb, M, N, K, 0.7f, A.p, lda, B.p, ldb, beta, Cm.p, ldc,
                                                            cuda_backend::GemmCompute::f32, 0));
          auto got = Cm.get();
          std::vector<float> g, w;  // the M x N part only (padding columns keep c0)
          for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
              g.push_back(got[(size_t)i * ldc + j]);
              w.push_back(want[(size_t)i * ldc + j]);
            }
          near(g, w, 1e-4, std::string(which == 0 ? "fallback" : "gemm_f32") + " ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) +
                               " beta=" + std::to_string(beta));
        }
      }
}

TEST(cuda_backend_rope_matches_cpu) {
  for (int D : {32, 64}) {
    const int B = 2, T = 33, H = 3, max_seq = 80;  // T < max_seq: rows 0..T-1 of the table
    const engine::RopeTable table = engine::rope_table(D, max_seq, 10000.0, engine::RopeScaling{});
    const auto x = randn((size_t)B * T * H * D, 19 + D);
    compare(
        [&](Backend& be) {
          F X(be, x), DX(be, x), cs(be, table.cos), sn(be, table.sin);
          const engine::RopeArrays rope{&table, cs.p, sn.p};
          be.rope_forward(X.p, B, T, H, D, rope);
          be.rope_backward(DX.p, B, T, H, D, rope);
          return Outputs{X.get(), DX.get()};
        },
        {"rope forward", "rope backward"}, {1e-5});
  }
  const engine::RopeTable table = engine::rope_table(64, 16, 10000.0, engine::RopeScaling{});
  F X(gpu(), 64 * 32), cs(gpu(), table.cos), sn(gpu(), table.sin);
  const engine::RopeArrays rope{&table, cs.p, sn.p};
  EXPECT_THROWS_MSG(gpu().rope_forward(X.p, 1, 32, 1, 64, rope), "rope_forward: x has T = 32, D = 64 but the table has max_seq = 16");
}

TEST(cuda_backend_head_transposes_match_cpu_exactly) {
  const int B = 2, T = 19, H = 3, D = 24;
  const auto x = randn((size_t)B * T * H * D, 21);
  compare(
      [&](Backend& be) {
        F X(be, x), heads(be, garbage(x.size())), back(be, garbage(x.size()));
        be.to_heads(heads.p, X.p, B, T, H, D);
        be.from_heads(back.p, heads.p, B, T, H, D);
        return Outputs{heads.get(), back.get()};
      },
      {"to_heads", "from_heads"}, {0.0});
}

namespace {
struct AttnCase {
  const char* what;
  int B, H, Hkv, T, D;
  int block;           // 0: dense (mask == nullptr)
  bool share = true;   // one mask per kv head (else per query head)
  bool built_dense = false;  // a mask built dense (dense_below), any block size
};

// A static mask: global block 0, the diagonal, `window` blocks before it and `random` random
// blocks per row (or every causal pair when built_dense).
engine::BlockMask static_mask(int T, int H, int Hkv, int block, bool share, int window, int random, uint64_t seed, bool built_dense = false) {
  engine::MaskSpec spec;
  spec.block_size = block;
  spec.global_blocks = 1;
  spec.window_blocks = window;
  spec.random_blocks = random;
  spec.random_seed = seed;
  spec.share_gqa_group = share;
  if (built_dense) spec.dense_below = T + 1;
  return engine::build_block_mask(spec, T, H, Hkv, 0, nullptr);
}

engine::BlockMask case_mask(const AttnCase& c, uint64_t seed) { return static_mask(c.T, c.H, c.Hkv, c.block, c.share, 1, 2, seed, c.built_dense); }

void attention_case(const AttnCase& c, uint32_t seed) {
  const size_t nq = (size_t)c.B * c.H * c.T * c.D, nk = (size_t)c.B * c.Hkv * c.T * c.D, nl = (size_t)c.B * c.H * c.T;
  const auto q = rounded(randn(nq, seed + 1)), k = rounded(randn(nk, seed + 2)), v = rounded(randn(nk, seed + 3));
  const auto dout = rounded(randn(nq, seed + 4));
  engine::BlockMask mask;
  if (c.block) mask = case_mask(c, seed);
  const engine::BlockMask* m = c.block ? &mask : nullptr;
  // Each backend runs its own forward and feeds its own out / lse to its backward, as the model does.
  compare(
      [&](Backend& be) {
        F Q(be, q), K(be, k), V(be, v), DO(be, dout), O(be, garbage(nq)), L(be, garbage(nl));
        F DQ(be, garbage(nq)), DK(be, garbage(nk)), DV(be, garbage(nk));
        be.attention_forward(O.p, L.p, Q.p, K.p, V.p, c.B, c.H, c.Hkv, c.T, c.D, m);
        be.attention_backward(DQ.p, DK.p, DV.p, DO.p, Q.p, K.p, V.p, O.p, L.p, c.B, c.H, c.Hkv, c.T, c.D, m);
        return Outputs{O.get(), L.get(), DQ.get(), DK.get(), DV.get()};
      },
      {std::string(c.what) + ": out", std::string(c.what) + ": lse", std::string(c.what) + ": dq", std::string(c.what) + ": dk",
       std::string(c.what) + ": dv"},
      {2e-2, 1e-3, 2e-2, 2e-2, 2e-2});
}
}  // namespace

TEST(cuda_backend_attention_matches_cpu) {
  const AttnCase cases[] = {
      {"dense D32 (padded to 64) GQA 2", 2, 4, 2, 150, 32, 0},
      {"block 64 D64 GQA 4 tail", 2, 8, 2, 333, 64, 64},
      {"block 128 D128 MQA", 1, 4, 1, 300, 128, 128},
      {"block 64 D64 per-head masks", 1, 4, 2, 200, 64, 64, false},
      {"block 128 D48 (padded to 64)", 1, 4, 2, 256, 48, 128},
      {"block 64 D96 (padded to 128) per-head", 1, 2, 1, 190, 96, 64, false},
      {"built-dense block 16 D64", 1, 4, 2, 100, 64, 16, true, true},
      {"dense D128", 1, 2, 2, 128, 128, 0},
      {"dense D64 short T", 3, 2, 1, 7, 64, 0},
  };
  uint32_t seed = 100;
  for (const AttnCase& c : cases) attention_case(c, seed += 10);
}

TEST(cuda_backend_attention_refuses_what_it_cannot_run) {
  Backend& be = gpu();
  const int B = 1, H = 2, Hkv = 1, T = 128;
  F q(be, (int64_t)B * H * T * 160), k(be, (int64_t)B * Hkv * T * 160), o(be, (int64_t)B * H * T * 160), l(be, (int64_t)B * H * T);
  engine::MaskSpec spec;
  spec.block_size = 16;
  const engine::BlockMask m16 = engine::build_block_mask(spec, T, H, Hkv, 0, nullptr);
  EXPECT(!m16.dense);
  EXPECT_THROWS_MSG(be.attention_forward(o.p, l.p, q.p, k.p, k.p, B, H, Hkv, T, 64, &m16),
                    "mask.block_size 16: the CUDA attention kernels support block sizes 64 and 128");
  EXPECT_THROWS_MSG(be.attention_backward(o.p, k.p, k.p, o.p, q.p, k.p, k.p, o.p, l.p, B, H, Hkv, T, 64, &m16),
                    "mask.block_size 16: the CUDA attention kernels support block sizes 64 and 128");
  EXPECT_THROWS_MSG(be.attention_forward(o.p, l.p, q.p, k.p, k.p, B, H, Hkv, T, 160, nullptr), "head_dim 160");
  spec.block_size = 64;
  const engine::BlockMask m64 = engine::build_block_mask(spec, 2 * T, H, Hkv, 0, nullptr);
  EXPECT_THROWS_MSG(be.attention_forward(o.p, l.p, q.p, k.p, k.p, B, H, Hkv, T, 64, &m64), "mask built for T=256, got T=128");
  // Still usable after refusing.
  be.attention_forward(o.p, l.p, q.p, k.p, k.p, B, H, Hkv, T, 64, nullptr);
  auto lse = l.get();
  for (float x : lse) EXPECT(std::isfinite(x));
}

TEST(cuda_backend_swiglu_add_scaled_scale_match_cpu) {
  const int n = 100003;
  const auto g = randn(n, 30), u = randn(n, 31), dy = randn(n, 32);
  compare(
      [&](Backend& be) {
        F G(be, g), U(be, u), DY(be, dy), Y(be, garbage(n)), DG(be, garbage(n)), DU(be, garbage(n));
        be.swiglu_forward(Y.p, G.p, U.p, n);
        be.swiglu_backward(DG.p, DU.p, DY.p, G.p, U.p, n);
        F S(be, garbage(n)), A1(be, g), B1(be, u), A2(be, g), X(be, dy);
        be.add_scaled(S.p, G.p, U.p, -0.75f, n);
        be.add_scaled(A1.p, A1.p, U.p, 2.5f, n);  // out aliases a
        be.add_scaled(B1.p, G.p, B1.p, 0.5f, n);  // out aliases b
        be.scale(A2.p, G.p, 3.f, n);
        be.scale(X.p, X.p, -0.125f, n);           // in place
        return Outputs{Y.get(), DG.get(), DU.get(), S.get(), A1.get(), B1.get(), A2.get(), X.get()};
      },
      {"swiglu out", "dgate", "dup", "add_scaled", "add_scaled out=a", "add_scaled out=b", "scale", "scale in place"},
      {1e-4, 1e-4, 1e-4, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6});
}

// The MoE row movements on a routing of random logits (engine::moe_route, the host routing both
// backends share), with the grouped expert GEMM (one matmul per expert over its rows) between them.
TEST(cuda_backend_moe_grouped_expert_pass_matches_cpu) {
  const int N = 37, C = 48, E = 5, K = 2, Fm = 40;
  const auto logits = randn((size_t)N * E, 40);
  const engine::MoeRouting r = engine::moe_route(logits.data(), N, E, K, true);
  const int64_t M = (int64_t)N * K;
  const auto x = randn((size_t)N * C, 41), wg = randn((size_t)E * Fm * C, 42, 0.2f), wd = randn((size_t)E * C * Fm, 43, 0.2f);
  const auto dout = randn((size_t)N * C, 44), base = randn((size_t)N * C, 45);
  compare(
      [&](Backend& be) {
        I rows(be, r.rows), pos(be, r.pos);
        F X(be, x), Wg(be, wg), Wd(be, wd), W(be, r.weight), DOUT(be, dout);
        F XG(be, garbage(M * C)), H(be, garbage(M * Fm)), Y(be, garbage(M * C)), OUT(be, base), BACK(be, base);
        F DY(be, garbage(M * C)), DW(be, garbage(M));
        be.moe_gather_rows(XG.p, X.p, rows.p, M, C);
        for (int e = 0; e < E; e++) {
          const int64_t o = r.offset[e], n = r.count(e);
          if (n == 0) continue;
          be.matmul_forward(H.p + o * Fm, XG.p + o * C, Wg.p + (int64_t)e * Fm * C, (int)n, C, Fm);
          be.matmul_forward(Y.p + o * C, H.p + o * Fm, Wd.p + (int64_t)e * C * Fm, (int)n, Fm, C);
        }
        be.moe_combine(OUT.p, Y.p, pos.p, W.p, N, K, C);  // accumulates onto `base`
        be.moe_combine_backward(DY.p, DW.p, DOUT.p, Y.p, pos.p, W.p, N, K, C);
        be.moe_combine(BACK.p, DY.p, pos.p, nullptr, N, K, C);  // weight 1
        return Outputs{XG.get(), OUT.get(), DY.get(), DW.get(), BACK.get()};
      },
      {"gathered rows", "combined", "dy", "dweight", "combined back (weight 1)"}, {1e-6, 3e-2, 1e-6, 3e-2, 1e-5});
}

TEST(cuda_backend_cross_entropy_matches_cpu) {
  const int N = 19, V = 517;
  const auto z = randn((size_t)N * V, 33, 3.f);
  const auto targets = random_tokens(N, V, 34);
  double loss[2][3];
  int which = 0;
  compare(
      [&](Backend& be) {
        F Z(be, z), DZ(be, garbage(z.size())), Zin(be, z), Z2(be, z);
        I tg(be, targets);
        double* l = loss[which++];
        l[0] = be.cross_entropy(DZ.p, Z.p, tg.p, N, V, 0.5f);
        l[1] = be.cross_entropy(Zin.p, Zin.p, tg.p, N, V, 0.5f);  // dlogits aliases logits
        l[2] = be.cross_entropy(nullptr, Z2.p, tg.p, N, V, 0.5f);
        return Outputs{DZ.get(), Zin.get(), Z2.get()};
      },
      {"dlogits", "dlogits in place", "logits untouched"}, {1e-4});
  for (int i = 0; i < 3; i++) near_scalar(loss[1][i], loss[0][i], 1e-4, 0, "cross-entropy loss " + std::to_string(i));
  // The CPU op's target check (op_checks.h), before any kernel reads past a row.
  auto bad = targets;
  bad[5] = V;
  F Z(gpu(), z);
  I tg(gpu(), bad);
  EXPECT_THROWS_MSG(gpu().cross_entropy(nullptr, Z.p, tg.p, N, V, 1.f), "targets[5] = 517 is outside the vocabulary");
}

TEST(cuda_backend_logit_kl_matches_cpu) {
  const int N = 13, V = 517;
  const auto zs = randn((size_t)N * V, 35, 2.f), zt = randn((size_t)N * V, 36, 2.f), d0 = randn((size_t)N * V, 37, 1e-3f);
  double kl[2][2];
  int which = 0;
  compare(
      [&](Backend& be) {
        F S(be, zs), T(be, zt), D(be, d0);
        double* k = kl[which++];
        k[0] = be.logit_kl(D.p, S.p, T.p, N, V, 2.f, 0.3f);  // adds into d0
        k[1] = be.logit_kl(nullptr, S.p, T.p, N, V, 1.f, 0.3f);
        return Outputs{D.get()};
      },
      {"dlogits (accumulated)"}, {1e-4});
  near_scalar(kl[1][0], kl[0][0], 1e-4, 0, "logit KL at temperature 2");
  near_scalar(kl[1][1], kl[0][1], 1e-4, 0, "logit KL at temperature 1");
}

TEST(cuda_backend_sum_squares_and_adamw_match_cpu) {
  const int64_t n = 1000003;
  const auto x = randn(n, 38);
  F X(gpu(), x);
  near_scalar(gpu().sum_squares(X.p, n), cpu().sum_squares(x.data(), n), 1e-5, 0, "sum_squares");
  EXPECT(gpu().sum_squares(X.p, 0) == 0);
  const int m = 10007;
  const auto p = randn(m, 39), g = randn(m, 40), m0 = randn(m, 41, 0.1f);
  auto v0 = randn(m, 42, 0.1f);
  for (auto& e : v0) e = std::fabs(e);
  compare(
      [&](Backend& be) {
        F P(be, p), G(be, g), M(be, m0), Vv(be, v0);
        be.adamw_update(P.p, G.p, M.p, Vv.p, m, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3, 0.5f);
        return Outputs{P.get(), M.get(), Vv.get()};
      },
      {"param", "m", "v"}, {1e-5});
}

namespace {
// Attention-KL distillation loss: fp32 on both sides, so 1e-4 (loss relative, gradients relative
// to the CPU's max |value|).
struct KlCase {
  const char* what;
  int B, H, Hkv, T, D, block;
  bool share;
};

// Global block 0, the diagonal and one random block per row: sparse from 4 blocks on.
engine::BlockMask kl_mask(const KlCase& c, uint64_t seed) { return static_mask(c.T, c.H, c.Hkv, c.block, c.share, 0, 1, seed); }

// A student near its teacher (noise of std `noise`; 0: the teacher itself), as in distillation;
// the teacher's lse from its dense forward.
struct KlInputs {
  size_t nq, nk, nl;
  std::vector<float> q_s, k_s, q_t, k_t, lse_t;
};
KlInputs kl_inputs(const KlCase& c, uint32_t seed, float noise = 0.5f) {
  KlInputs in;
  in.nq = (size_t)c.B * c.H * c.T * c.D, in.nk = (size_t)c.B * c.Hkv * c.T * c.D, in.nl = (size_t)c.B * c.H * c.T;
  in.q_t = randn(in.nq, seed + 1), in.k_t = randn(in.nk, seed + 2);
  in.q_s = randn(in.nq, seed + 4, noise), in.k_s = randn(in.nk, seed + 5, noise);
  for (size_t i = 0; i < in.nq; i++) in.q_s[i] = noise > 0 ? in.q_s[i] + in.q_t[i] : in.q_t[i];
  for (size_t i = 0; i < in.nk; i++) in.k_s[i] = noise > 0 ? in.k_s[i] + in.k_t[i] : in.k_t[i];
  const auto v_t = randn(in.nk, seed + 3);
  std::vector<float> out(in.nq);
  in.lse_t.resize(in.nl);
  cpu().attention_forward(out.data(), in.lse_t.data(), in.q_t.data(), in.k_t.data(), v_t.data(), c.B, c.H, c.Hkv, c.T, c.D, nullptr);
  return in;
}

void attn_kl_case(const KlCase& c, uint32_t seed) {
  const KlInputs in = kl_inputs(c, seed);
  const size_t nq = in.nq, nk = in.nk;
  const auto &q_s = in.q_s, &k_s = in.k_s, &q_t = in.q_t, &k_t = in.k_t, &lse_t = in.lse_t;
  const engine::BlockMask mask = kl_mask(c, seed);
  std::vector<engine::BlockMask> per_seq;  // one mask per sequence, as top-k masks are
  for (int b = 0; b < c.B; b++) per_seq.push_back(kl_mask(c, seed + 100 + b));
  EXPECT_MSG(mask.density() < 1, c.what << ": the mask should skip blocks");
  const float gscale = 0.37f;
  double loss[2][3];
  int which = 0;
  const std::string w = c.what;
  auto run = [&](Backend& be) {
    F Qs(be, q_s), Ks(be, k_s), Qt(be, q_t), Kt(be, k_t), L(be, lse_t);
    F DQ(be, garbage(nq)), DK(be, garbage(nk)), DQ1(be, garbage(nq)), DK1(be, garbage(nk));
    double* l = loss[which++ % 2];
    l[0] = be.attn_kl_loss(DQ.p, DK.p, gscale, Qs.p, Ks.p, Qt.p, Kt.p, L.p, c.B, c.H, c.Hkv, c.T, c.D, mask);
    l[1] = be.attn_kl_loss(nullptr, nullptr, gscale, Qs.p, Ks.p, Qt.p, Kt.p, L.p, c.B, c.H, c.Hkv, c.T, c.D, mask);
    // Per sequence into slices of the batch's arrays (Model::attention_kl with per-sequence masks).
    l[2] = 0;
    for (int b = 0; b < c.B; b++) {
      const size_t qo = (size_t)b * c.H * c.T * c.D, ko = (size_t)b * c.Hkv * c.T * c.D, lo = (size_t)b * c.H * c.T;
      l[2] += be.attn_kl_loss(DQ1.p + qo, DK1.p + ko, 1.f, Qs.p + qo, Ks.p + ko, Qt.p + qo, Kt.p + ko, L.p + lo, 1, c.H, c.Hkv, c.T, c.D,
                              per_seq[b]) / c.B;
    }
    return Outputs{DQ.get(), DK.get(), DQ1.get(), DK1.get()};
  };
  compare(run, {w + ": dq", w + ": dk", w + ": dq per sequence", w + ": dk per sequence"}, {1e-4}, Precision::bf16);
  EXPECT_MSG(loss[0][0] > 0 && loss[0][2] > 0, w << ": KL should be positive");
  near_scalar(loss[1][0], loss[0][0], 1e-4, 0, w + ": loss");
  near_scalar(loss[1][1], loss[0][1], 1e-4, 0, w + ": loss (no gradients)");
  near_scalar(loss[1][2], loss[0][2], 1e-4, 0, w + ": loss per sequence");
  EXPECT_MSG(loss[1][0] == loss[1][1], w << ": the loss without gradients should be the same number");
  // Deterministic: two more GPU runs (into loss[0] and loss[1]) give the same bits.
  const Outputs first = run(gpu()), second = run(gpu());
  for (size_t i = 0; i < first.size(); i++) EXPECT_MSG(first[i] == second[i], w << ": output " << i << " differs between runs");
  for (int i = 0; i < 3; i++) EXPECT_MSG(loss[0][i] == loss[1][i], w << ": loss " << i << " differs between runs");
}
}  // namespace

TEST(cuda_backend_attn_kl_loss_matches_cpu) {
  const KlCase cases[] = {
      {"attn-KL block 16 D32 GQA 2", 2, 4, 2, 160, 32, 16, true},
      {"attn-KL block 32 D32 tail per-head", 2, 4, 2, 300, 32, 32, false},
      {"attn-KL block 64 D64 H == Hkv tail", 2, 2, 2, 700, 64, 64, true},
      {"attn-KL block 128 D64 GQA 2 tail per-head", 1, 4, 2, 1100, 64, 128, false},
      {"attn-KL block 64 D32 H == Hkv per-head", 1, 3, 3, 512, 32, 64, false},
      {"attn-KL block 16 D64 GQA 4 tail", 1, 4, 1, 250, 64, 16, true},
      {"attn-KL block 256 D48 GQA 2 tail", 1, 2, 1, 1300, 48, 256, true},
  };
  uint32_t seed = 200;
  for (const KlCase& c : cases) attn_kl_case(c, seed += 10);
}

TEST(cuda_backend_attn_kl_loss_refuses_bad_arguments) {
  Backend& be = gpu();
  const int B = 1, H = 2, Hkv = 1, T = 64, D = 32;
  F q(be, (int64_t)B * H * T * 300), k(be, (int64_t)B * Hkv * T * 300), l(be, (int64_t)B * H * T);
  const engine::BlockMask m = kl_mask({"", B, H, Hkv, T, D, 16, true}, 1);
  EXPECT_THROWS_MSG(be.attn_kl_loss(nullptr, nullptr, 1.f, q.p, k.p, q.p, k.p, l.p, B, H, Hkv, T, 300, m), "head_dim 300");
  EXPECT_THROWS_MSG(be.attn_kl_loss(nullptr, nullptr, 1.f, q.p, k.p, q.p, k.p, l.p, B, H, Hkv, T / 2, D, m), "mask built for T=64");
  EXPECT_THROWS_MSG(be.attn_kl_loss(nullptr, nullptr, 1.f, q.p, k.p, q.p, k.p, nullptr, B, H, Hkv, T, D, m), "lse is required");
  // Still usable after refusing; q_s == q_t, k_s == k_t with the dense lse: KL = -log(kept mass) >= 0.
  std::vector<float> out((size_t)B * H * T * D), lse((size_t)B * H * T);
  const auto qh = randn(out.size(), 3), kh = randn((size_t)B * Hkv * T * D, 4);
  cpu().attention_forward(out.data(), lse.data(), qh.data(), kh.data(), kh.data(), B, H, Hkv, T, D, nullptr);
  F Q(be, qh), K(be, kh), L(be, lse);
  const double kl = be.attn_kl_loss(nullptr, nullptr, 1.f, Q.p, K.p, Q.p, K.p, L.p, B, H, Hkv, T, D, m);
  near_scalar(kl, cpu().attn_kl_loss(nullptr, nullptr, 1.f, qh.data(), kh.data(), qh.data(), kh.data(), lse.data(), B, H, Hkv, T, D, m), 1e-4, 0,
              "attn-KL of pure masking");
}

namespace {
// Evaluation metrics: fp32 rows on the device summed in double on the host, against the CPU's
// float64 metric: attn_kl and attn_recall within 1e-5 relative (plus atol for a KL near 0);
// density and attn_flops_saved are the mask's own host numbers on both sides, so equal.
engine::AttentionMetrics metrics_on(Backend& be, const KlInputs& in, const KlCase& c, const engine::BlockMask& mask) {
  F Qs(be, in.q_s), Ks(be, in.k_s), Qt(be, in.q_t), Kt(be, in.k_t), L(be, in.lse_t);
  return be.attention_metrics(Qs.p, Ks.p, Qt.p, Kt.p, L.p, c.B, c.H, c.Hkv, c.T, c.D, mask);
}
engine::AttentionMetrics metrics_match(const KlCase& c, const KlInputs& in, const engine::BlockMask& mask, double kl_atol) {
  const engine::AttentionMetrics want = metrics_on(cpu(), in, c, mask), got = metrics_on(gpu(), in, c, mask);
  const std::string w = c.what;
  near_scalar(got.attn_kl, want.attn_kl, 1e-5, kl_atol, w + ": attn_kl");
  near_scalar(got.attn_recall, want.attn_recall, 1e-5, 0, w + ": attn_recall");
  EXPECT_MSG(got.density == want.density && got.attn_flops_saved == want.attn_flops_saved, w << ": density / flops saved");
  const engine::AttentionMetrics again = metrics_on(gpu(), in, c, mask);  // deterministic
  EXPECT_MSG(again.attn_kl == got.attn_kl && again.attn_recall == got.attn_recall, w << ": differs between runs");
  return got;
}
}  // namespace

TEST(cuda_backend_attention_metrics_match_cpu) {
  const KlCase cases[] = {
      {"metrics block 16 D32 GQA 2 tail", 2, 4, 2, 250, 32, 16, true},
      {"metrics block 64 D64 H == Hkv tail per-head", 2, 2, 2, 700, 64, 64, false},
      {"metrics block 128 D64 GQA 2 tail", 1, 4, 2, 1100, 64, 128, true},
      {"metrics block 128 D32 H == Hkv tail", 1, 3, 3, 600, 32, 128, false},
  };
  uint32_t seed = 500;
  for (const KlCase& c : cases) {
    const engine::BlockMask mask = kl_mask(c, seed += 10);
    EXPECT_MSG(mask.density() < 1, c.what << ": the mask should skip blocks");
    const engine::AttentionMetrics m = metrics_match(c, kl_inputs(c, seed), mask, 0);
    EXPECT_MSG(m.attn_kl > 0 && m.attn_recall > 0 && m.attn_recall < 1, c.what << ": a sparse student should differ from its teacher");
  }
}

// A mask that keeps every causal block without being built dense (its window covers the whole
// sequence): with the teacher's own q, k every row's KL is 0 up to rounding, clamped at 0 per row
// on both sides, so the mean is >= 0 exactly and the recall 1. With the teacher's lse 1e-3 low
// (a bf16 forward's can be) every row is -1e-3 before the clamp: attn_kl exactly 0.
TEST(cuda_backend_attention_metrics_dense_equivalent_mask) {
  const KlCase cases[] = {
      {"metrics dense-equivalent block 16 D64 GQA 2 tail", 1, 4, 2, 200, 64, 16, true},
      {"metrics dense-equivalent block 64 D32 H == Hkv tail", 2, 2, 2, 300, 32, 64, false},
  };
  uint32_t seed = 600;
  for (const KlCase& c : cases) {
    const engine::BlockMask mask = static_mask(c.T, c.H, c.Hkv, c.block, c.share, (c.T + c.block - 1) / c.block, 0, seed);
    EXPECT_MSG(!mask.dense && mask.density() == 1 && mask.flops_saved() == 0, c.what << ": the mask should keep every causal block");
    const engine::AttentionMetrics same = metrics_match(c, kl_inputs(c, seed += 10, 0.f), mask, 1e-6);
    EXPECT_MSG(same.attn_kl >= 0 && same.attn_kl < 1e-6, c.what << ": pure masking without masking: KL " << same.attn_kl);
    near_scalar(same.attn_recall, 1, 1e-5, 0, std::string(c.what) + ": recall of a dense mask");
    KlInputs low = kl_inputs(c, seed, 0.f);
    for (float& x : low.lse_t) x -= 1e-3f;
    EXPECT_MSG(metrics_match(c, low, mask, 0).attn_kl == 0, c.what << ": every row's KL is clamped at 0");
    const engine::AttentionMetrics near_teacher = metrics_match(c, kl_inputs(c, seed), mask, 0);
    EXPECT_MSG(near_teacher.attn_kl > 0, c.what << ": a student off its teacher has a positive KL");
  }
}

TEST(cuda_backend_attention_metrics_refuses_bad_arguments) {
  Backend& be = gpu();
  const int B = 1, H = 2, Hkv = 1, T = 64, D = 32;
  F q(be, (int64_t)B * H * T * 300), k(be, (int64_t)B * Hkv * T * 300), l(be, (int64_t)B * H * T);
  const engine::BlockMask m = kl_mask({"", B, H, Hkv, T, D, 16, true}, 1);
  EXPECT_THROWS_MSG(be.attention_metrics(q.p, k.p, q.p, k.p, l.p, B, H, Hkv, T, 300, m), "head_dim 300");
  EXPECT_THROWS_MSG(be.attention_metrics(q.p, k.p, q.p, k.p, l.p, B, H, Hkv, T / 2, D, m), "mask built for T=64");
  EXPECT_THROWS_MSG(be.attention_metrics(q.p, k.p, q.p, k.p, nullptr, B, H, Hkv, T, D, m), "lse is required");
  EXPECT_THROWS_MSG(be.attention_metrics(q.p, k.p, q.p, k.p, l.p, B, H, 2, T, D, m), "mask has 1 heads");
}

namespace {
// Block scores (heads, nb, nb) of the GPU against the CPU's: -inf above the diagonal on both,
// the causal entries within 1e-4 of the CPU's max |value|.
void scores_match(const std::vector<float>& cpu_scores, const std::vector<float>& gpu_scores, int nb, const std::string& what) {
  EXPECT(cpu_scores.size() == gpu_scores.size());
  std::vector<float> causal_cpu, causal_gpu;
  for (size_t e = 0; e < cpu_scores.size(); e++) {
    const int i = (int)(e / nb % nb), j = (int)(e % nb);
    if (j > i) {
      EXPECT_MSG(std::isinf(gpu_scores[e]) && gpu_scores[e] < 0 && std::isinf(cpu_scores[e]), what << ": entry " << e << " should be -inf");
      continue;
    }
    causal_cpu.push_back(cpu_scores[e]);
    causal_gpu.push_back(gpu_scores[e]);
  }
  near(causal_gpu, causal_cpu, 1e-4, what);
}
}  // namespace

TEST(cuda_backend_pooled_block_scores_match_cpu) {
  struct Shape { int H, Hkv, T, D, block; };
  for (Shape s : {Shape{8, 2, 300, 64, 64}, Shape{4, 4, 200, 32, 32}, Shape{4, 2, 100, 32, 16}, Shape{4, 2, 1000, 128, 128}})
    for (bool share : {true, false}) {
      const std::string what = "pooled scores H" + std::to_string(s.H) + " Hkv" + std::to_string(s.Hkv) + " T" + std::to_string(s.T) +
                                " block " + std::to_string(s.block) + (share ? " shared" : " per head");
      const int nb = (s.T + s.block - 1) / s.block;
      const size_t nq = (size_t)s.H * s.T * s.D, nk = (size_t)s.Hkv * s.T * s.D, n = (size_t)(share ? s.Hkv : s.H) * nb * nb;
      // Two sequences; the second one is scored (the model passes a sequence's offset).
      const auto q = randn(2 * nq, (uint32_t)(s.T + s.block)), k = randn(2 * nk, (uint32_t)(s.T + s.D));
      std::vector<float> got[2];
      int which = 0;
      for (Backend* be : {&cpu(), &gpu()}) {
        F Q(*be, q), K(*be, k);
        std::vector<float>& out = got[which++];
        out.assign(n, 1.5f);
        be->pooled_block_scores(out.data(), Q.p + nq, K.p + nk, s.H, s.Hkv, s.T, s.D, s.block, share);
      }
      scores_match(got[0], got[1], nb, what);
    }
}

namespace {
// The trainable block indexer: fp32 on both sides, so 1e-4 (scores and gradients relative to the
// CPU's max |value|, losses relative). The teacher's q, k and dense lse come from the CPU's dense
// attention; x has a shared per-channel part (as a layer input does), so the block means do not
// all shrink to zero and the scores spread.
struct IndexerCase {
  const char* what;
  int B, H, Hkv, T, D, block;
  engine::IndexerShape shape;
  int mask_heads;
  float grad_scale;
  bool one_mask = false;  // phase 2: one mask for the whole batch instead of one per sequence
};

// phase2: the selected-set KL over masks the CPU builds from the indexer's scores (a global
// block, a random block that differs between mask heads, a top-1 block).
void indexer_case(const IndexerCase& c, uint32_t seed, bool phase2) {
  const engine::IndexerShape& s = c.shape;
  const int nb = (c.T + c.block - 1) / c.block, HD = s.Hi * s.Di;
  const size_t nx = (size_t)c.B * c.T * s.C, nq = (size_t)c.B * c.H * c.T * c.D, nk = (size_t)c.B * c.Hkv * c.T * c.D;
  const size_t nwq = (size_t)HD * s.C, nwk = (size_t)s.Di * s.C;
  auto x = randn(nx, seed + 1);
  const auto channel = randn(s.C, seed + 2);
  for (size_t e = 0; e < nx; e++) x[e] += channel[e % s.C];
  std::vector<float> wq(nwq), wk(nwk), wh(s.Hi);
  engine::indexer_init(wq.data(), wk.data(), wh.data(), s, seed + 3);
  const auto wh_noise = randn(s.Hi, seed + 4, 0.5f);  // heads of unequal weight, some negative
  for (int h = 0; h < s.Hi; h++) wh[h] += wh_noise[h];
  const auto q_t = randn(nq, seed + 5), k_t = randn(nk, seed + 6), v_t = randn(nk, seed + 7);
  std::vector<float> out(nq), lse_t((size_t)c.B * c.H * c.T);
  cpu().attention_forward(out.data(), lse_t.data(), q_t.data(), k_t.data(), v_t.data(), c.B, c.H, c.Hkv, c.T, c.D, nullptr);
  const std::string w = std::string(c.what) + (phase2 ? " (selected set)" : " (warm-up)");
  std::vector<engine::BlockMask> masks;
  if (phase2) {
    engine::MaskSpec m;
    m.block_size = c.block;
    m.global_blocks = 1;
    m.window_blocks = 0;
    m.random_blocks = 1;
    m.random_seed = seed;
    m.topk_blocks = 1;
    m.selector = engine::MaskSpec::Indexer;
    m.share_gqa_group = c.mask_heads <= c.Hkv;
    const int heads = m.share_gqa_group ? c.Hkv : c.H;
    std::vector<float> scores((size_t)heads * nb * nb);
    for (int b = 0; b < (c.one_mask ? 1 : c.B); b++) {
      engine::indexer_block_scores(scores.data(), x.data() + (size_t)b * c.T * s.C, wq.data(), wk.data(), wh.data(), s, c.T, c.block, heads);
      masks.push_back(engine::build_block_mask(m, c.T, c.H, c.Hkv, 0, scores.data()));
    }
  }

  // Scores of the last sequence of the batch (the model passes a sequence's offset), every mask head.
  {
    const size_t n = (size_t)c.mask_heads * nb * nb, xo = (size_t)(c.B - 1) * c.T * s.C;
    std::vector<float> got[2];
    int which = 0;
    for (Backend* be : {&cpu(), &gpu()}) {
      F X(*be, x), WQ(*be, wq), WK(*be, wk), WH(*be, wh);
      got[which].assign(n, 1.5f);
      be->indexer_block_scores(got[which++].data(), X.p + xo, WQ.p, WK.p, WH.p, s, c.T, c.block, c.mask_heads);
    }
    scores_match(got[0], got[1], nb, w + ": scores");
    for (size_t e = (size_t)nb * nb; e < n; e++) EXPECT_MSG(got[1][e] == got[1][e % ((size_t)nb * nb)], w << ": mask heads differ at " << e);
  }

  // The loss and its gradients. Gradients from zero first (their scale sets the start values of the
  // accumulating runs, so a lost += or a wrong scale shows), then into non-zero starts, with some
  // tensors frozen (null).
  const float gs = c.grad_scale;
  auto call = [&](Backend& be, float* dq, float* dk, float* dh, const F& X, const F& WQ, const F& WK, const F& WH, const F& QT, const F& KT,
                  const F& LT) {
    return be.indexer_loss(dq, dk, dh, gs, X.p, WQ.p, WK.p, WH.p, QT.p, KT.p, LT.p, s, c.B, c.H, c.Hkv, c.T, c.D, c.block,
                           phase2 ? &masks : nullptr);
  };
  std::vector<float> scale_of(3, 0.f);
  {
    F X(cpu(), x), WQ(cpu(), wq), WK(cpu(), wk), WH(cpu(), wh), QT(cpu(), q_t), KT(cpu(), k_t), LT(cpu(), lse_t);
    F DQ(cpu(), nwq), DK(cpu(), nwk), DH(cpu(), s.Hi);
    call(cpu(), DQ.p, DK.p, DH.p, X, WQ, WK, WH, QT, KT, LT);
    int t = 0;
    for (const F* g : {&DQ, &DK, &DH}) {
      for (float v : g->get()) scale_of[t] = std::max(scale_of[t], std::fabs(v));
      t++;
    }
  }
  EXPECT_MSG(scale_of[0] > 0 && scale_of[1] > 0 && scale_of[2] > 0, w << ": every weight should get a gradient");
  const auto dq0 = randn(nwq, seed + 8, scale_of[0]), dk0 = randn(nwk, seed + 9, scale_of[1]), dh0 = randn(s.Hi, seed + 10, scale_of[2]);
  double loss[2][5];
  int which = 0;
  auto run = [&](Backend& be) {
    F X(be, x), WQ(be, wq), WK(be, wk), WH(be, wh), QT(be, q_t), KT(be, k_t), LT(be, lse_t);
    F DQ(be, nwq), DK(be, nwk), DH(be, s.Hi), AQ(be, dq0), AK(be, dk0), AH(be, dh0), BK(be, dk0), BH(be, dh0), CQ(be, dq0);
    double* l = loss[which++ % 2];
    l[0] = call(be, DQ.p, DK.p, DH.p, X, WQ, WK, WH, QT, KT, LT);           // from zero
    l[1] = call(be, AQ.p, AK.p, AH.p, X, WQ, WK, WH, QT, KT, LT);           // accumulates onto the starts
    l[2] = call(be, nullptr, nullptr, nullptr, X, WQ, WK, WH, QT, KT, LT);  // loss only
    l[3] = call(be, nullptr, BK.p, BH.p, X, WQ, WK, WH, QT, KT, LT);        // w_q frozen
    l[4] = call(be, CQ.p, nullptr, nullptr, X, WQ, WK, WH, QT, KT, LT);     // w_k and w_h frozen
    return Outputs{DQ.get(), DK.get(), DH.get(), AQ.get(), AK.get(), AH.get(), BK.get(), BH.get(), CQ.get()};
  };
  compare(run,
          {w + ": dw_q", w + ": dw_k", w + ": dw_h", w + ": dw_q accumulated", w + ": dw_k accumulated", w + ": dw_h accumulated",
           w + ": dw_k (w_q frozen)", w + ": dw_h (w_q frozen)", w + ": dw_q (w_k, w_h frozen)"},
          {1e-4});
  EXPECT_MSG(loss[0][0] > 0, w << ": the KL should be positive");
  for (int i = 0; i < 5; i++) {
    near_scalar(loss[1][i], loss[0][i], 1e-4, 0, w + ": loss " + std::to_string(i));
    EXPECT_MSG(loss[1][i] == loss[1][0], w << ": loss " << i << " should not depend on which gradients are asked for");
  }
  // Deterministic: two more GPU runs give the same bits.
  const Outputs first = run(gpu()), second = run(gpu());
  for (size_t i = 0; i < first.size(); i++) EXPECT_MSG(first[i] == second[i], w << ": output " << i << " differs between runs");
  for (int i = 0; i < 5; i++) EXPECT_MSG(loss[0][i] == loss[1][i], w << ": loss " << i << " differs between runs");
}
}  // namespace

TEST(cuda_backend_indexer_matches_cpu) {
  const engine::IndexerShape standard{96, 4, 32}, other{80, 3, 24};  // (C, Hi, Di): Hi 4, Di 32 as IndexerShape's defaults
  const IndexerCase cases[] = {
      {"indexer block 16 D32 GQA 2 tail", 2, 4, 2, 200, 32, 16, standard, 2, 0.37f},
      {"indexer block 64 D64 H == Hkv tail", 2, 2, 2, 300, 64, 64, other, 2, 2.5f},
      {"indexer block 128 D64 GQA 4 tail per-head", 1, 4, 1, 700, 64, 128, standard, 4, 1.f},
      {"indexer block 64 D32 GQA 2 no tail", 3, 4, 2, 256, 32, 64, other, 1, 0.5f, true},
      {"indexer block 16 D64 two blocks short tail", 2, 2, 1, 20, 64, 16, standard, 2, 1.f},
  };
  uint32_t seed = 300;
  for (const IndexerCase& c : cases) {
    indexer_case(c, seed += 20, false);
    indexer_case(c, seed, true);
  }
}

TEST(cuda_backend_indexer_refuses_bad_arguments) {
  Backend& be = gpu();
  const engine::IndexerShape s{32, 4, 8};
  const int T = 64, H = 2, Hkv = 1, D = 32;
  F x(be, (int64_t)T * s.C), wq(be, (int64_t)s.Hi * s.Di * s.C), wk(be, (int64_t)s.Di * s.C), wh(be, s.Hi);
  F q(be, (int64_t)H * T * D), k(be, (int64_t)Hkv * T * D), l(be, (int64_t)H * T);
  std::vector<float> scores(16);
  EXPECT_THROWS_MSG(be.indexer_block_scores(scores.data(), x.p, wq.p, wk.p, wh.p, engine::IndexerShape{0, 4, 8}, T, 16, 1), "C, Hi and Di must be >= 1");
  EXPECT_THROWS_MSG(be.indexer_block_scores(scores.data(), x.p, wq.p, wk.p, wh.p, s, T, 0, 1), "block_size must be >= 1");
  EXPECT_THROWS_MSG(be.indexer_loss(nullptr, nullptr, nullptr, 1.f, x.p, wq.p, wk.p, wh.p, q.p, k.p, nullptr, s, 1, H, Hkv, T, D, 16, nullptr),
                    "lse is required");
  EXPECT_THROWS_MSG(be.indexer_loss(nullptr, nullptr, nullptr, 1.f, x.p, wq.p, wk.p, wh.p, q.p, k.p, l.p, s, 1, 3, 2, T, D, 16, nullptr),
                    "H must be a multiple of Hkv");
  EXPECT_THROWS_MSG(be.indexer_loss(nullptr, nullptr, nullptr, 1.f, x.p, wq.p, wk.p, wh.p, q.p, k.p, l.p, engine::IndexerShape{32, 65, 8}, 1, H,
                                    Hkv, T, D, 16, nullptr),
                    "at most 64");
  // Still usable after refusing: zero inputs give equal scores (0) and a finite loss.
  be.indexer_block_scores(scores.data(), x.p, wq.p, wk.p, wh.p, s, T, 16, 1);
  for (int e = 0; e < 16; e++) EXPECT(e % 4 > e / 4 ? std::isinf(scores[e]) : scores[e] == 0.f);
  EXPECT(std::isfinite(be.indexer_loss(nullptr, nullptr, nullptr, 1.f, x.p, wq.p, wk.p, wh.p, q.p, k.p, l.p, s, 1, H, Hkv, T, D, 16, nullptr)));
}
