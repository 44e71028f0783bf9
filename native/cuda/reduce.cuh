// Warp and block reductions shared by the row-wise kernels. Fixed reduction trees, so results
// are deterministic. Block versions: blockDim.x a multiple of 32 (at most 1024), every thread of
// the block calls them (they synchronise), `shared` holds 32 floats and may be reused right away.
#pragma once
#include <cfloat>

#include <cuda_runtime.h>

namespace cuda_backend {

struct SumOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <typename Op>
__device__ inline float warp_reduce(float x, Op op) {
  for (int o = 16; o > 0; o >>= 1) x = op(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
// `identity` fills the lanes past the block's warp count.
template <typename Op>
__device__ inline float block_reduce(float x, float* shared /* 32 floats */, float identity, Op op) {
  x = warp_reduce(x, op);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  x = threadIdx.x < blockDim.x / 32 ? shared[threadIdx.x] : identity;
  if (warp == 0) x = warp_reduce(x, op);
  if (threadIdx.x == 0) shared[0] = x;
  __syncthreads();
  return shared[0];
}

__device__ inline float warp_sum(float x) { return warp_reduce(x, SumOp{}); }
__device__ inline float warp_max(float x) { return warp_reduce(x, MaxOp{}); }
__device__ inline float block_sum(float x, float* shared) { return block_reduce(x, shared, 0.f, SumOp{}); }
__device__ inline float block_max(float x, float* shared) { return block_reduce(x, shared, -FLT_MAX, MaxOp{}); }

}  // namespace cuda_backend
