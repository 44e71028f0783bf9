#include "reference_blas.h"

#include <dlfcn.h>

namespace engine {

namespace {
// CBLAS enum values (cblas.h), fixed by the CBLAS standard.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
// The pthread build first (Debian's libopenblas0-pthread), then whatever libopenblas the loader finds.
const char* const kLibraries[] = {"libopenblas.so.0", "libopenblas.so", "libopenblasp-r0.so"};
}  // namespace

ReferenceBlas& ReferenceBlas::get() {
  static ReferenceBlas instance;
  return instance;
}

ReferenceBlas::ReferenceBlas() {
  void* lib = nullptr;
  for (const char* name : kLibraries)
    if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
  if (!lib) {
    reason_ = "OpenBLAS not found (libopenblas.so.0); install it to compare, e.g. apt-get install libopenblas0-pthread";
    return;
  }
  auto sgemm = reinterpret_cast<SgemmFn>(dlsym(lib, "cblas_sgemm"));
  set_threads_ = reinterpret_cast<SetThreadsFn>(dlsym(lib, "openblas_set_num_threads"));
  if (!sgemm || !set_threads_) {
    reason_ = "the OpenBLAS found lacks cblas_sgemm or openblas_set_num_threads; reinstall libopenblas0-pthread";
    return;
  }
  sgemm_ = sgemm;
  using StringFn = char* (*)();
  if (auto core = reinterpret_cast<StringFn>(dlsym(lib, "openblas_get_corename"))) core_ = core();
  // The library stays loaded for the life of the process (never dlclose'd): sgemm_ points into it.
}

void ReferenceBlas::set_threads(int n) const {
  if (set_threads_) set_threads_(n);
}

void ReferenceBlas::sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                          const float* B, int ldb, float beta, float* C, int ldc) const {
  sgemm_(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
         ldc);
}

}  // namespace engine
