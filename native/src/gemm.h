// GEMM internals shared with other op families (attention tiles): the same packed,
// register-tiled SGEMM as engine::sgemm (ops.h), but run entirely on the calling thread, for
// callers that already split work across the pool and want no nested dispatch overhead.
#pragma once

namespace engine {

// Row-major C (M, N) = alpha * op(A) op(B) + beta * C on the calling thread only.
void sgemm_serial(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                  const float* B, int ldb, float beta, float* C, int ldc);

}  // namespace engine
