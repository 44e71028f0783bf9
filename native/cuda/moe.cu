// Mixture-of-experts row movements on the GPU: gather into the grouped-by-expert order, the
// weighted sum back per token and its backward. Mirrors native/src/moe_ops.cpp. Every output
// element is written by one thread, adding its terms in slot order: no atomics, deterministic.
// Shapes: x (N, C), out/xg (M, C) grouped rows, pos/weight/dweight (N, K), y/dy (M, C).
#include "ops_cuda.h"

namespace cuda_backend {

namespace {
constexpr int kThreads = 256;
inline int blocks_for(int64_t n) { return (int)((n + kThreads - 1) / kThreads); }

// ================================================================== kernels
__global__ void gather_rows_kernel(float* out, const float* x, const int32_t* rows, int64_t M, int C) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= M * C) return;
  const int64_t r = i / C, c = i % C;
  out[i] = x[(int64_t)rows[r] * C + c];
}

__global__ void combine_kernel(float* out, const float* y, const int32_t* pos, const float* weight, int N, int K,
                               int C) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (int64_t)N * C) return;
  const int64_t n = i / C, c = i % C;
  float acc = out[i];
  for (int j = 0; j < K; j++) {
    const float w = weight ? weight[n * K + j] : 1.f;
    acc += w * y[(int64_t)pos[n * K + j] * C + c];
  }
  out[i] = acc;
}

// One block per (token, slot): dy row = weight * dout row; dweight = dot(dout row, y row), reduced
// in a fixed tree order.
__global__ void combine_backward_kernel(float* dy, float* dweight, const float* dout, const float* y,
                                        const int32_t* pos, const float* weight, int K, int C) {
  const int64_t slot = blockIdx.x, n = slot / K;
  const int64_t row = pos[slot];
  const float w = weight[slot];
  float dot = 0.f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float d = dout[n * C + c];
    dy[row * C + c] = w * d;
    dot += d * y[row * C + c];
  }
  __shared__ float partial[kThreads];
  partial[threadIdx.x] = dot;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) dweight[slot] = partial[0];
}
}  // namespace

// ================================================================== launchers
Status moe_gather_rows(float* out, const float* x, const int32_t* rows, int64_t M, int C, cudaStream_t s) {
  if (M == 0) return Status::success();
  gather_rows_kernel<<<blocks_for(M * C), kThreads, 0, s>>>(out, x, rows, M, C);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status moe_combine(float* out, const float* y, const int32_t* pos, const float* weight, int N, int K, int C,
                   cudaStream_t s) {
  if (N == 0) return Status::success();
  combine_kernel<<<blocks_for((int64_t)N * C), kThreads, 0, s>>>(out, y, pos, weight, N, K, C);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status moe_combine_backward(float* dy, float* dweight, const float* dout, const float* y, const int32_t* pos,
                            const float* weight, int N, int K, int C, cudaStream_t s) {
  if (N == 0) return Status::success();
  combine_backward_kernel<<<(unsigned)((int64_t)N * K), kThreads, 0, s>>>(dy, dweight, dout, y, pos, weight, K, C);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

}  // namespace cuda_backend
