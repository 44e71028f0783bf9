// Rotary position embedding on the GPU, HF rotate-half, forward and backward (the inverse
// rotation). Mirrors native/src/rope.cpp; the cos/sin tables are the CPU's, uploaded.
// Shapes: B batch, T tokens, H heads, D head dim; x (B, T, H, D); cos, sin (T, D).
#include "ops_cuda.h"

namespace cuda_backend {

namespace {
constexpr int kThreads = 256;
inline int blocks_for(int64_t n) { return (int)((n + kThreads - 1) / kThreads); }

// ================================================================== kernels
// x (B, T, H, D); one thread per (b, t, h, i < D/2). inverse: rotate by -angle (backward).
__global__ void rope_kernel(float* x, const float* cos, const float* sin, int B, int T, int H, int D, float sign) {
  const int half = D / 2;
  const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  const int64_t total = (int64_t)B * T * H * half;
  if (idx >= total) return;
  const int i = idx % half;
  const int64_t bth = idx / half;
  const int t = (bth / H) % T;
  float* v = x + bth * D;
  const float c = cos[(int64_t)t * D + i], s = sign * sin[(int64_t)t * D + i];
  const float a = v[i], b = v[i + half];
  v[i] = a * c - b * s;
  v[i + half] = b * c + a * s;
}
}  // namespace

// ================================================================== launchers
Status rope_forward(float* x, const float* cos, const float* sin, int B, int T, int H, int D, cudaStream_t s) {
  const int64_t total = (int64_t)B * T * H * (D / 2);
  if (total == 0) return Status::success();
  rope_kernel<<<blocks_for(total), kThreads, 0, s>>>(x, cos, sin, B, T, H, D, 1.f);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status rope_backward(float* dx, const float* cos, const float* sin, int B, int T, int H, int D, cudaStream_t s) {
  const int64_t total = (int64_t)B * T * H * (D / 2);
  if (total == 0) return Status::success();
  rope_kernel<<<blocks_for(total), kThreads, 0, s>>>(dx, cos, sin, B, T, H, D, -1.f);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

}  // namespace cuda_backend
