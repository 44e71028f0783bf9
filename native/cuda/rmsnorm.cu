// RMSNorm on the GPU, forward and backward (the model's norms and its per-head QK-norm, which is
// the same op over N * H rows of D). Mirrors native/src/rmsnorm.cpp.
// Shapes: N rows, C channels; inp, out, dinp (N, C); weight, dweight (C); rstd (N).
#include <algorithm>
#include <string>

#include "ops_cuda.h"
#include "reduce.cuh"

namespace cuda_backend {

namespace {
constexpr int kThreads = 256;
constexpr int kRmsRowsPerChunk = 128;  // rows per partial sum of the RMSNorm weight gradient

// ================================================================== kernels
// One block per row. inp, out (N, C); rstd (N).
__global__ void rmsnorm_forward_kernel(float* out, float* rstd, const float* inp, const float* weight, int C, float eps) {
  __shared__ float shared[32];
  const float* x = inp + (int64_t)blockIdx.x * C;
  float ss = 0.f;
  for (int i = threadIdx.x; i < C; i += blockDim.x) ss += x[i] * x[i];
  ss = block_sum(ss, shared);
  const float r = rsqrtf(ss / C + eps);
  if (rstd && threadIdx.x == 0) rstd[blockIdx.x] = r;
  float* y = out + (int64_t)blockIdx.x * C;
  for (int i = threadIdx.x; i < C; i += blockDim.x) y[i] = x[i] * r * weight[i];
}

// One block per row: dinp += rstd * (w*dout - x * rstd^2 * mean(w*dout*x)).
__global__ void rmsnorm_backward_dinp_kernel(float* dinp, const float* dout, const float* inp, const float* weight, const float* rstd, int C) {
  __shared__ float shared[32];
  const int64_t row = blockIdx.x;
  const float* x = inp + row * C;
  const float* dy = dout + row * C;
  const float r = rstd[row];
  float dot = 0.f;
  for (int i = threadIdx.x; i < C; i += blockDim.x) dot += weight[i] * dy[i] * x[i];
  dot = block_sum(dot, shared) / C;
  float* dx = dinp + row * C;
  for (int i = threadIdx.x; i < C; i += blockDim.x) dx[i] += r * (weight[i] * dy[i] - x[i] * r * r * dot);
}

// dweight[c] += sum_n dout*x*rstd in two deterministic passes (fixed order, no atomics):
// pass 1, CTA (column block, row chunk): each thread sums its column over the chunk's rows in
// order into partial[chunk][c]; pass 2, one thread per column: adds the chunk sums in order.
// Sums in double, like the CPU op (N can be N*H rows for QK-norm).
__global__ void rmsnorm_dweight_partial_kernel(double* partial, const float* dout, const float* inp, const float* rstd, int N, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int n0 = blockIdx.y * kRmsRowsPerChunk, n1 = min(N, n0 + kRmsRowsPerChunk);
  double acc = 0;
  for (int n = n0; n < n1; n++) acc += (double)(dout[(int64_t)n * C + c] * inp[(int64_t)n * C + c] * rstd[n]);
  partial[(int64_t)blockIdx.y * C + c] = acc;
}
__global__ void rmsnorm_dweight_sum_kernel(float* dweight, const double* partial, int chunks, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  double acc = 0;
  for (int k = 0; k < chunks; k++) acc += partial[(int64_t)k * C + c];
  dweight[c] += (float)acc;
}
}  // namespace

// ================================================================== launchers
Status rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps, cudaStream_t s) {
  if (N <= 0) return Status::success();
  rmsnorm_forward_kernel<<<N, kThreads, 0, s>>>(out, rstd, inp, weight, C, eps);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

int64_t rmsnorm_backward_scratch(int N, int C) { return (int64_t)ceil_div(std::max(N, 1), kRmsRowsPerChunk) * std::max(C, 1); }

Status rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, const float* rstd, int N, int C, double* scratch, cudaStream_t s) {
  if (N <= 0) return Status::success();
  if (dweight && !scratch) return Status::error("rmsnorm_backward: dweight needs scratch (rmsnorm_backward_scratch doubles)");
  if (dinp) {
    rmsnorm_backward_dinp_kernel<<<N, kThreads, 0, s>>>(dinp, dout, inp, weight, rstd, C);
    CUDA_TRY_LAUNCH();
  }
  if (dweight) {
    const int chunks = ceil_div(N, kRmsRowsPerChunk);
    if (chunks > 65535) return Status::error("rmsnorm_backward: N = " + std::to_string(N) + " rows is too many");
    rmsnorm_dweight_partial_kernel<<<dim3(ceil_div(C, kThreads), chunks), kThreads, 0, s>>>(scratch, dout, inp, rstd, N, C);
    CUDA_TRY_LAUNCH();
    rmsnorm_dweight_sum_kernel<<<ceil_div(C, kThreads), kThreads, 0, s>>>(dweight, scratch, chunks, C);
    CUDA_TRY_LAUNCH();
  }
  return Status::success();
}

}  // namespace cuda_backend
