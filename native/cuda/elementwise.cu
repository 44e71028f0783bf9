// Elementwise and row-wise ops of the CUDA backend: dtype conversion, RMSNorm, RoPE, SwiGLU,
// fused cross-entropy, fused AdamW, finite check and a deterministic sum of squares.
// Every launcher mirrors the CPU op of the same name in native/src/ops.h.
#include <algorithm>
#include <cfloat>
#include <string>

#include "ops_cuda.h"
#include "reduce.cuh"

namespace cuda_backend {

namespace {
constexpr int kThreads = 256;
constexpr int kRmsRowsPerChunk = 128;  // rows per partial sum of the RMSNorm weight gradient
inline int blocks_for(int64_t n) { return (int)((n + kThreads - 1) / kThreads); }

// ================================================================== kernels
__global__ void f32_to_bf16_kernel(__nv_bfloat16* out, const float* in, int64_t n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16(in[i]);
}
__global__ void bf16_to_f32_kernel(float* out, const __nv_bfloat16* in, int64_t n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __bfloat162float(in[i]);
}

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

// One block per row: loss = lse - logit[target]; dlogits = (softmax - onehot) * scale.
__global__ void cross_entropy_kernel(float* losses, float* dlogits, const float* logits, const int* targets, int V, float scale) {
  __shared__ float shared[32];
  const int64_t row = blockIdx.x;
  const float* z = logits + row * V;
  const int target = targets[row];
  float mx = -FLT_MAX;
  for (int i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, z[i]);
  mx = block_max(mx, shared);
  float sum = 0.f;
  for (int i = threadIdx.x; i < V; i += blockDim.x) sum += __expf(z[i] - mx);
  sum = block_sum(sum, shared);
  const float lse = mx + logf(sum);
  if (threadIdx.x == 0) losses[row] = target < 0 ? 0.f : lse - z[target];
  if (!dlogits) return;
  __syncthreads();  // dlogits may alias logits: every read of z above is done
  float* dz = dlogits + row * V;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float p = __expf(z[i] - lse);
    dz[i] = target < 0 ? 0.f : (p - (i == target ? 1.f : 0.f)) * scale;
  }
}

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
void f32_to_bf16(__nv_bfloat16* out, const float* in, int64_t n, cudaStream_t s) {
  if (n > 0) f32_to_bf16_kernel<<<blocks_for(n), kThreads, 0, s>>>(out, in, n);
}
void bf16_to_f32(float* out, const __nv_bfloat16* in, int64_t n, cudaStream_t s) {
  if (n > 0) bf16_to_f32_kernel<<<blocks_for(n), kThreads, 0, s>>>(out, in, n);
}

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

Status cross_entropy(float* losses, float* dlogits, const float* logits, const int* targets, int N, int V, int valid_count, float dscale, cudaStream_t s) {
  if (N <= 0) return Status::success();
  const float scale = valid_count > 0 ? dscale / (float)valid_count : 0.f;
  cross_entropy_kernel<<<N, kThreads, 0, s>>>(losses, dlogits, logits, targets, V, scale);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

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
