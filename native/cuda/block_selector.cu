// Parameter-free block selection on the GPU (InfLLM-V2 / MoBA style): key blocks scored by
// queries against mean-pooled keys, summed over the GQA group when the group shares its blocks
// (else one map per query head).
// Mirrors the CPU scorer in native/src/block_selector.cpp; top-k itself runs on the host mask
// builder, which takes these scores.
#include <cmath>

#include "ops_cuda.h"

namespace cuda_backend {

namespace {
// pooled (Hkv, nb, D) = mean of k over each key block (tail block: its own length).
__global__ void pool_keys_kernel(float* pooled, const float* k, int T, int D, int block_size, int nb) {
  const int blk = blockIdx.x, hk = blockIdx.y;
  const int start = blk * block_size, len = min(block_size, T - start);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0.f;
    for (int t = 0; t < len; t++) acc += k[((int64_t)hk * T + start + t) * D + d];
    pooled[((int64_t)hk * nb + blk) * D + d] = acc / len;
  }
}
// mean query of each query block: qmean (H, nb, D).
__global__ void mean_queries_kernel(float* qmean, const float* q, int T, int D, int block_size, int nb) {
  const int blk = blockIdx.x, h = blockIdx.y;
  const int start = blk * block_size, len = min(block_size, T - start);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0.f;
    for (int t = 0; t < len; t++) acc += q[((int64_t)h * T + start + t) * D + d];
    qmean[((int64_t)h * nb + blk) * D + d] = acc / len;
  }
}
// scores (n_mask_heads, nb, nb): one thread per (mask head, i, j); the mask head's query heads
// summed in order (the whole GQA group when shared, else the one head).
__global__ void scores_kernel(float* scores, const float* qmean, const float* pooled, int H, int Hkv, int D, int nb, bool share) {
  const int n_heads = share ? Hkv : H;
  const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (int64_t)n_heads * nb * nb) return;
  const int j = idx % nb, i = (idx / nb) % nb, mh = (int)(idx / ((int64_t)nb * nb));
  if (j > i) { scores[idx] = -INFINITY; return; }
  const int group = H / Hkv;
  const int h_first = share ? mh * group : mh, h_count = share ? group : 1, kvh = share ? mh : mh / group;
  const float* kp = pooled + ((int64_t)kvh * nb + j) * D;
  float total = 0.f;
  for (int g = 0; g < h_count; g++) {
    const float* qm = qmean + ((int64_t)(h_first + g) * nb + i) * D;
    float dot = 0.f;
    for (int d = 0; d < D; d++) dot += qm[d] * kp[d];
    total += dot;
  }
  scores[idx] = total;
}
}  // namespace

Status pooled_block_scores(float* scores, const float* q, const float* k, int H, int Hkv, int T, int D, int block_size,
                           bool share_gqa_group, cudaStream_t s) {
  if (H <= 0 || Hkv <= 0 || H % Hkv != 0) return Status::error("pooled_block_scores: H must be a multiple of Hkv");
  if (block_size <= 0 || T <= 0 || D <= 0) return Status::error("pooled_block_scores: T, D and block_size must be positive");
  const int nb = ceil_div(T, block_size);
  float *pooled = nullptr, *qmean = nullptr;
  CUDA_TRY(cudaMallocAsync(&pooled, (size_t)Hkv * nb * D * sizeof(float), s));
  cudaError_t err = cudaMallocAsync(&qmean, (size_t)H * nb * D * sizeof(float), s);
  if (err != cudaSuccess) { cudaFreeAsync(pooled, s); return status_from(err, "cudaMallocAsync", __FILE__, __LINE__); }
  pool_keys_kernel<<<dim3(nb, Hkv), 128, 0, s>>>(pooled, k, T, D, block_size, nb);
  mean_queries_kernel<<<dim3(nb, H), 128, 0, s>>>(qmean, q, T, D, block_size, nb);
  const int64_t total = (int64_t)(share_gqa_group ? Hkv : H) * nb * nb;
  scores_kernel<<<(unsigned)((total + 255) / 256), 256, 0, s>>>(scores, qmean, pooled, H, Hkv, D, nb, share_gqa_group);
  err = cudaGetLastError();
  cudaFreeAsync(pooled, s);
  cudaFreeAsync(qmean, s);
  if (err != cudaSuccess) return status_from(err, "pooled_block_scores launch", __FILE__, __LINE__);
  return Status::success();
}

}  // namespace cuda_backend
