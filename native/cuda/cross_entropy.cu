// Row-wise losses over logits on the GPU: fused softmax cross-entropy, and logit distillation
// (the KL between temperature-scaled softmaxes). Mirror native/src/cross_entropy.cpp and the CPU
// backend's logit_kl (backend_cpu.cpp); one CTA per row, per-row values summed on the host.
// Shapes: N rows, V vocab; logits, zs, zt, dlogits (N, V); targets, losses, kl (N).
#include <cfloat>

#include "ops_cuda.h"
#include "reduce.cuh"

namespace cuda_backend {

namespace {
constexpr int kThreads = 256;

// ================================================================== kernels
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

// One CTA per row: log-softmaxes of zs / temp and zt / temp, the row's KL(t || s), and the
// gradient added into dlogits. The last pass reads zs[j], zt[j] and writes dlogits[j] in the same
// thread after every earlier read of the row (block reductions synchronise), so dlogits may
// alias zs or zt.
__global__ void logit_kl_kernel(float* kl, float* dlogits, const float* zs, const float* zt, int V, float temp, float gscale) {
  __shared__ float shared[32];
  const int64_t row = blockIdx.x;
  const float* s = zs + row * V;
  const float* t = zt + row * V;
  float ms = -FLT_MAX, mt = -FLT_MAX;
  for (int j = threadIdx.x; j < V; j += blockDim.x) {
    ms = fmaxf(ms, s[j] / temp);
    mt = fmaxf(mt, t[j] / temp);
  }
  ms = block_max(ms, shared);
  mt = block_max(mt, shared);
  float ss = 0.f, st = 0.f;
  for (int j = threadIdx.x; j < V; j += blockDim.x) {
    ss += expf(s[j] / temp - ms);
    st += expf(t[j] / temp - mt);
  }
  ss = block_sum(ss, shared);
  st = block_sum(st, shared);
  const float lzs = ms + logf(ss), lzt = mt + logf(st);
  float* g = dlogits ? dlogits + row * V : nullptr;
  float acc = 0.f;
  for (int j = threadIdx.x; j < V; j += blockDim.x) {
    const float lps = s[j] / temp - lzs, lpt = t[j] / temp - lzt, pt = expf(lpt);
    acc += pt * (lpt - lps);
    if (g) g[j] += gscale * (expf(lps) - pt);
  }
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) kl[row] = acc;
}
}  // namespace

// ================================================================== launchers
Status cross_entropy(float* losses, float* dlogits, const float* logits, const int* targets, int N, int V, int valid_count, float dscale, cudaStream_t s) {
  if (N <= 0) return Status::success();
  const float scale = valid_count > 0 ? dscale / (float)valid_count : 0.f;
  cross_entropy_kernel<<<N, kThreads, 0, s>>>(losses, dlogits, logits, targets, V, scale);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status logit_kl(float* kl, float* dlogits, const float* zs, const float* zt, int N, int V, float temp, float gscale, cudaStream_t s) {
  if (N <= 0) return Status::success();
  if (V <= 0) return Status::error("logit_kl: V must be positive");
  if (!(temp > 0.f)) return Status::error("logit_kl: temperature must be > 0");
  logit_kl_kernel<<<N, kThreads, 0, s>>>(kl, dlogits, zs, zt, V, temp, gscale);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

}  // namespace cuda_backend
