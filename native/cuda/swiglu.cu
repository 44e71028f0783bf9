// SwiGLU on the GPU: out = silu(gate) * up and its gradients. Mirrors native/src/swiglu.cpp.
// Shapes: n elements; gate, up, out, dgate, dup (n).
#include "ops_cuda.h"

namespace cuda_backend {

namespace {
constexpr int kThreads = 256;
inline int blocks_for(int64_t n) { return (int)((n + kThreads - 1) / kThreads); }

// ================================================================== kernels
__global__ void swiglu_forward_kernel(float* out, const float* gate, const float* up, int64_t n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = gate[i], sig = 1.f / (1.f + __expf(-g));
  out[i] = g * sig * up[i];
}
__global__ void swiglu_backward_kernel(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  // Every input read before any output is written: the arrays may alias one another.
  const float g = gate[i], u = up[i], d = dout[i], sig = 1.f / (1.f + __expf(-g)), silu = g * sig;
  dgate[i] = d * u * (sig + silu * (1.f - sig));
  dup[i] = d * silu;
}
}  // namespace

// ================================================================== launchers
Status swiglu_forward(float* out, const float* gate, const float* up, int64_t n, cudaStream_t s) {
  if (n == 0) return Status::success();
  swiglu_forward_kernel<<<blocks_for(n), kThreads, 0, s>>>(out, gate, up, n);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n, cudaStream_t s) {
  if (n == 0) return Status::success();
  swiglu_backward_kernel<<<blocks_for(n), kThreads, 0, s>>>(dgate, dup, dout, gate, up, n);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

}  // namespace cuda_backend
