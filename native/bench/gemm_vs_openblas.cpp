// Compares engine::sgemm with OpenBLAS cblas_sgemm on the Linear shapes of a d=1024 model over
// 4096 tokens. Not part of the build; run with native/bench/run-gemm-vs-openblas.sh.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "ops.h"
#include "parallel.h"

// Alternates the two libraries rep by rep and keeps each one's best time, so load from other
// processes on a shared machine hits both alike.
template <typename A, typename B>
static void best_seconds_interleaved(int reps, A&& a, B&& b, double& best_a, double& best_b) {
  a();
  b();
  best_a = best_b = 1e30;
  for (int r = 0; r < reps; r++) {
    auto t0 = std::chrono::steady_clock::now();
    a();
    auto t1 = std::chrono::steady_clock::now();
    b();
    auto t2 = std::chrono::steady_clock::now();
    best_a = std::min(best_a, std::chrono::duration<double>(t1 - t0).count());
    best_b = std::min(best_b, std::chrono::duration<double>(t2 - t1).count());
  }
}

int main(int argc, char** argv) {
  int reps = argc > 1 ? std::atoi(argv[1]) : 3;
  struct Shape { const char* what; bool ta, tb; int m, n, k; };
  const Shape shapes[] = {
      {"qkvo fwd   (4096x1024)@(1024x1024)^T", false, true, 4096, 1024, 1024},
      {"mlp up fwd (4096x1024)@(4096x1024)^T", false, true, 4096, 4096, 1024},
      {"mlp dn fwd (4096x4096)@(1024x4096)^T", false, true, 4096, 1024, 4096},
      {"dinp       (4096x1024)@(1024x1024)  ", false, false, 4096, 1024, 1024},
      {"dweight    (4096x1024)^T@(4096x1024)", true, false, 1024, 1024, 4096},
  };
  std::printf("engine simd=%s threads=%d\n", engine::simd_level(), engine::ThreadPool::get().threads());
  for (const auto& s : shapes) {
    const int lda = s.ta ? s.m : s.k, ldb = s.tb ? s.k : s.n;
    std::vector<float> a((size_t)s.m * s.k), b((size_t)s.k * s.n), c1((size_t)s.m * s.n), c2((size_t)s.m * s.n);
    for (size_t i = 0; i < a.size(); i++) a[i] = std::sin(0.001f * i);
    for (size_t i = 0; i < b.size(); i++) b[i] = std::cos(0.0007f * i);
    double te, tb;
    best_seconds_interleaved(
        reps,
        [&] { engine::sgemm(s.ta, s.tb, s.m, s.n, s.k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c1.data(), s.n); },
        [&] {
          cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans, s.m, s.n,
                      s.k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c2.data(), s.n);
        },
        te, tb);
    double maxdiff = 0;
    for (size_t i = 0; i < c1.size(); i++) maxdiff = std::max(maxdiff, (double)std::fabs(c1[i] - c2[i]));
    const double flop = 2.0 * s.m * s.n * s.k * 1e-9;
    std::printf("%s  engine %7.1f GFLOP/s  openblas %7.1f GFLOP/s  ratio %5.1f%%  max|diff| %.2e\n", s.what,
                flop / te, flop / tb, 100.0 * tb / te, maxdiff);
  }
  return 0;
}
