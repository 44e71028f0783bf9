// engine::sgemm against OpenBLAS (loaded at run time, src/reference_blas.h) on shapes given as
// arguments, for quick runs while tuning without rebuilding the addon; `sparse-studio bench gemm`
// measures the product's own shape list the same way. Not part of the build: see
// run-gemm-vs-openblas.sh.
//   gemm_vs_openblas REPS M,N,K,LAYOUT ...   LAYOUT: nt (A B^T), tn (A^T B), nn, tt
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "bench.h"
#include "parallel.h"
#include "reference_blas.h"
#include "ops.h"
#include "simd.h"

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 3;
  // SIMD=avx2|scalar holds the engine to a lower level (e.g. to compare with OpenBLAS's AVX2 kernels,
  // which OPENBLAS_CORETYPE=Haswell selects).
  if (const char* level = std::getenv("SIMD"); level && !engine::set_simd_level_for_testing(level)) {
    std::fprintf(stderr, "SIMD=%s: not a level this CPU runs (scalar, avx2, avx512)\n", level);
    return 2;
  }
  const auto& blas = engine::ReferenceBlas::get();
  std::printf("engine simd=%s threads=%d reference=%s\n", engine::simd_level_name(engine::simd()),
              engine::ThreadPool::get().threads(), blas.available() ? blas.core().c_str() : blas.missing_reason().c_str());
  double log_sum = 0;
  int count = 0;
  for (int i = 2; i < argc; i++) {
    int m, n, k;
    char layout[3] = "nt";
    if (std::sscanf(argv[i], "%d,%d,%d,%2s", &m, &n, &k, layout) < 3) {
      std::fprintf(stderr, "shape '%s': expected M,N,K[,nt|tn|nn|tt]\n", argv[i]);
      return 2;
    }
    auto r = engine::bench_gemm_compare(m, n, k, layout[0] == 't', layout[1] == 't', reps);
    const double ratio = r.reference_gflops > 0 ? r.gflops / r.reference_gflops : 0;
    std::printf("%6d %6d %6d %s  engine %7.1f  openblas %7.1f GFLOP/s  ratio %.3f  (%d reps)\n", m, n, k, layout,
                r.gflops, r.reference_gflops, ratio, r.reps);
    if (ratio > 0) log_sum += std::log(ratio), count++;
  }
  if (count) std::printf("geomean ratio %.3f over %d shapes\n", std::exp(log_sum / count), count);
  return 0;
}
