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
// Chunks run along gridDim.x (up to 2^31 - 1 of them, so any int N), column blocks along gridDim.y.
__global__ void rmsnorm_dweight_partial_kernel(double* partial, const float* dout, const float* inp, const float* rstd, int N, int C) {
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int64_t chunk = blockIdx.x;
  const int64_t n0 = chunk * kRmsRowsPerChunk, n1 = n0 + kRmsRowsPerChunk < N ? n0 + kRmsRowsPerChunk : (int64_t)N;
  double acc = 0;
  for (int64_t n = n0; n < n1; n++) acc += (double)(dout[n * C + c] * inp[n * C + c] * rstd[n]);
  partial[chunk * C + c] = acc;
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

int64_t rmsnorm_backward_scratch(int N, int C) {
  return ((int64_t)std::max(N, 1) + kRmsRowsPerChunk - 1) / kRmsRowsPerChunk * std::max(C, 1);
}

Status rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, const float* rstd, int N, int C, double* scratch, cudaStream_t s) {
  if (N <= 0) return Status::success();
  if (dweight && !scratch) return Status::error("rmsnorm_backward: dweight needs scratch (rmsnorm_backward_scratch doubles)");
  if (dinp) {
    rmsnorm_backward_dinp_kernel<<<N, kThreads, 0, s>>>(dinp, dout, inp, weight, rstd, C);
    CUDA_TRY_LAUNCH();
  }
  if (dweight) {
    const int chunks = (int)(((int64_t)N + kRmsRowsPerChunk - 1) / kRmsRowsPerChunk);
    const int col_blocks = ceil_div(C, kThreads);
    if (col_blocks > 65535) return Status::error("rmsnorm_backward: C = " + std::to_string(C) + " channels is too many");
    rmsnorm_dweight_partial_kernel<<<dim3(chunks, col_blocks), kThreads, 0, s>>>(scratch, dout, inp, rstd, N, C);
    CUDA_TRY_LAUNCH();
    rmsnorm_dweight_sum_kernel<<<ceil_div(C, kThreads), kThreads, 0, s>>>(dweight, scratch, chunks, C);
    CUDA_TRY_LAUNCH();
  }
  return Status::success();
}

}  // namespace cuda_backend
