// Elementwise and layout ops of the CUDA backend: dtype conversion (fp32 <-> bf16, and the
// attention head-dim padding pack / unpack), fill, add_scaled, scale and the head transposes.
// Each mirrors the CPU op of the same meaning (backend_cpu.cpp, backend.h); the CUDA tests check
// them against the CPU backend.
// Shapes: n elements; x (B, T, H, D) and out (B, H, T, D) for the head transposes; rows of D
// values padded to Dp for the attention kernels.
#include <algorithm>
#include <string>

#include "ops_cuda.h"

namespace cuda_backend {

namespace {
constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n) { return (unsigned)((n + kThreads - 1) / kThreads); }

// Grid-stride loops below: any n fits the grid (capped), each element handled by one thread.
inline unsigned capped_blocks(int64_t n) { return (unsigned)std::min<int64_t>(blocks_for(n), 1 << 20); }

// ================================================================== kernels
__global__ void f32_to_bf16_kernel(__nv_bfloat16* out, const float* in, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) out[i] = __float2bfloat16(in[i]);
}
__global__ void bf16_to_f32_kernel(float* out, const __nv_bfloat16* in, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) out[i] = __bfloat162float(in[i]);
}

__global__ void fill_kernel(float* x, float value, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) x[i] = value;
}
__global__ void add_scaled_kernel(float* out, const float* a, const float* b, float s, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float x = a[i], y = b[i];
    out[i] = x + s * y;
  }
}
__global__ void scale_kernel(float* out, const float* x, float s, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) out[i] = x[i] * s;
}

// One thread per element of out (coalesced writes). to_heads: out (B, H, T, D) from x (B, T, H, D);
// from_heads: out (B, T, H, D) from x (B, H, T, D).
__global__ void heads_kernel(float* out, const float* x, int B, int T, int H, int D, bool to_heads) {
  const int64_t total = (int64_t)B * T * H * D;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int d = (int)(i % D);
    const int64_t r = i / D;
    if (to_heads) {  // r = (b * H + h) * T + t
      const int t = (int)(r % T), h = (int)((r / T) % H);
      const int64_t b = r / ((int64_t)T * H);
      out[i] = x[((b * T + t) * H + h) * D + d];
    } else {         // r = (b * T + t) * H + h
      const int h = (int)(r % H), t = (int)((r / H) % T);
      const int64_t b = r / ((int64_t)T * H);
      out[i] = x[((b * H + h) * T + t) * D + d];
    }
  }
}

__global__ void pack_rows_bf16_kernel(__nv_bfloat16* dst, const float* src, int64_t rows, int D, int Dp, float s) {
  const int64_t total = rows * Dp;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int d = (int)(i % Dp);
    const int64_t r = i / Dp;
    dst[i] = __float2bfloat16(d < D ? src[r * D + d] * s : 0.f);
  }
}
__device__ inline float to_f32(float x) { return x; }
__device__ inline float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename Src>
__global__ void unpack_rows_kernel(float* dst, const Src* src, int64_t rows, int D, int Dp, float s) {
  const int64_t total = rows * D;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int d = (int)(i % D);
    const int64_t r = i / D;
    dst[i] = to_f32(src[r * Dp + d]) * s;
  }
}
}  // namespace

// ================================================================== launchers
Status f32_to_bf16(__nv_bfloat16* out, const float* in, int64_t n, cudaStream_t s) {
  if (n <= 0) return Status::success();
  f32_to_bf16_kernel<<<capped_blocks(n), kThreads, 0, s>>>(out, in, n);
  CUDA_TRY_LAUNCH();
  return Status::success();
}
Status bf16_to_f32(float* out, const __nv_bfloat16* in, int64_t n, cudaStream_t s) {
  if (n <= 0) return Status::success();
  bf16_to_f32_kernel<<<capped_blocks(n), kThreads, 0, s>>>(out, in, n);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status fill(float* x, float value, int64_t n, cudaStream_t s) {
  if (n <= 0) return Status::success();
  fill_kernel<<<capped_blocks(n), kThreads, 0, s>>>(x, value, n);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status add_scaled(float* out, const float* a, const float* b, float scale, int64_t n, cudaStream_t s) {
  if (n <= 0) return Status::success();
  add_scaled_kernel<<<capped_blocks(n), kThreads, 0, s>>>(out, a, b, scale, n);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status scale(float* out, const float* x, float scale, int64_t n, cudaStream_t s) {
  if (n <= 0) return Status::success();
  scale_kernel<<<capped_blocks(n), kThreads, 0, s>>>(out, x, scale, n);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

static Status heads(float* out, const float* x, int B, int T, int H, int D, bool to, cudaStream_t s) {
  const int64_t total = (int64_t)B * T * H * D;
  if (total <= 0) return Status::success();
  if (out == x) return Status::error(std::string(to ? "to_heads" : "from_heads") + ": out must not alias x");
  heads_kernel<<<capped_blocks(total), kThreads, 0, s>>>(out, x, B, T, H, D, to);
  CUDA_TRY_LAUNCH();
  return Status::success();
}
Status to_heads(float* out, const float* x, int B, int T, int H, int D, cudaStream_t s) { return heads(out, x, B, T, H, D, true, s); }
Status from_heads(float* out, const float* x, int B, int T, int H, int D, cudaStream_t s) { return heads(out, x, B, T, H, D, false, s); }

Status pack_rows_bf16(__nv_bfloat16* dst, const float* src, int64_t rows, int D, int Dp, float s, cudaStream_t st) {
  if (rows <= 0) return Status::success();
  pack_rows_bf16_kernel<<<capped_blocks(rows * Dp), kThreads, 0, st>>>(dst, src, rows, D, Dp, s);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status unpack_rows_bf16(float* dst, const __nv_bfloat16* src, int64_t rows, int D, int Dp, float s, cudaStream_t st) {
  if (rows <= 0) return Status::success();
  unpack_rows_kernel<__nv_bfloat16><<<capped_blocks(rows * D), kThreads, 0, st>>>(dst, src, rows, D, Dp, s);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status unpack_rows_f32(float* dst, const float* src, int64_t rows, int D, int Dp, float s, cudaStream_t st) {
  if (rows <= 0) return Status::success();
  unpack_rows_kernel<float><<<capped_blocks(rows * D), kThreads, 0, st>>>(dst, src, rows, D, Dp, s);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

}  // namespace cuda_backend
