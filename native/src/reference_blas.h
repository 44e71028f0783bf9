// OpenBLAS as a speed reference for `bench gemm`, loaded at run time with dlopen so the engine
// neither links against it nor needs it installed: available() says whether it was found and,
// if not, why.
#pragma once
#include <string>

namespace engine {

class ReferenceBlas {
 public:
  // The process-wide instance; the library is looked up once, on first use.
  static ReferenceBlas& get();

  bool available() const { return sgemm_ != nullptr; }
  // Empty when available(); else one line saying what is missing and how to install it.
  const std::string& missing_reason() const { return reason_; }
  // The kernel set OpenBLAS picked for this CPU (openblas_get_corename), e.g. "Haswell"; may be empty.
  const std::string& core() const { return core_; }

  // The thread count OpenBLAS uses from now on (openblas_set_num_threads).
  void set_threads(int n) const;
  // Row-major C (M, N) = alpha * op(A) op(B) + beta * C, the same contract as engine::sgemm.
  void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
             int ldb, float beta, float* C, int ldc) const;

 private:
  ReferenceBlas();
  using SgemmFn = void (*)(int order, int trans_a, int trans_b, int M, int N, int K, float alpha, const float* A,
                           int lda, const float* B, int ldb, float beta, float* C, int ldc);
  using SetThreadsFn = void (*)(int);
  SgemmFn sgemm_ = nullptr;
  SetThreadsFn set_threads_ = nullptr;
  std::string reason_, core_;
};

}  // namespace engine
