// The optimiser on the GPU: fused AdamW on fp32 master weights (refreshing a bf16 copy when
// asked), the finite check of fp16 loss scaling and a deterministic sum of squares for the
// global gradient norm. Mirrors native/src/adamw.cpp.
// Shapes: n elements; param, grad, m, v (n).
#include <algorithm>

#include "ops_cuda.h"
#include "reduce.cuh"

namespace cuda_backend {

namespace {
constexpr int kThreads = 256;
inline int blocks_for(int64_t n) { return (int)((n + kThreads - 1) / kThreads); }

// ================================================================== kernels
__global__ void adamw_kernel(float* param, __nv_bfloat16* param_bf16, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay, float bc1, float bc2, float grad_scale) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = grad[i] * grad_scale;
  float p = param[i];
  p -= lr * weight_decay * p;
  const float mi = beta1 * m[i] + (1.f - beta1) * g;
  const float vi = beta2 * v[i] + (1.f - beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  p -= lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
  param[i] = p;
  if (param_bf16) param_bf16[i] = __float2bfloat16(p);
}

__global__ void check_finite_kernel(int* found_inf, const float* x, int64_t n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n && !isfinite(x[i])) *found_inf = 1;  // benign race: every writer writes 1
}

// Pass 1: grid of 1024 blocks max, each sums a fixed strided slice; pass 2 sums partials in order.
__global__ void sum_squares_partial_kernel(float* partial, const float* x, int64_t n) {
  __shared__ float shared[32];
  float acc = 0.f;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) acc += x[i] * x[i];
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}
__global__ void sum_partials_kernel(float* out, const float* partial, int count) {
  __shared__ float shared[32];
  float acc = 0.f;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) *out = acc;
}
}  // namespace

// ================================================================== launchers
Status adamw_update(float* param, __nv_bfloat16* param_bf16, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay, int step, float grad_scale, cudaStream_t s) {
  if (n == 0) return Status::success();
  if (step < 1) return Status::error("adamw_update: step must be >= 1");
  const float bc1 = 1.f - powf(beta1, (float)step), bc2 = 1.f - powf(beta2, (float)step);
  adamw_kernel<<<blocks_for(n), kThreads, 0, s>>>(param, param_bf16, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, bc1, bc2, grad_scale);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status check_finite(int* found_inf, const float* x, int64_t n, cudaStream_t s) {
  if (n == 0) return Status::success();
  check_finite_kernel<<<blocks_for(n), kThreads, 0, s>>>(found_inf, x, n);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status sum_squares(float* out, const float* x, int64_t n, float* scratch, cudaStream_t s) {
  const int grid = (int)std::min<int64_t>(1024, std::max<int64_t>(1, (n + kThreads - 1) / kThreads));
  sum_squares_partial_kernel<<<grid, kThreads, 0, s>>>(scratch, x, n);
  CUDA_TRY_LAUNCH();
  sum_partials_kernel<<<1, kThreads, 0, s>>>(out, scratch, grid);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

}  // namespace cuda_backend
