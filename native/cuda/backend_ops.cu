// The ops the whole-model CUDA backend needs beyond the original kernels: fill / add_scaled /
// scale, the head transposes, embedding lookup and its deterministic scatter-add, logit
// distillation (KL) and the attention head-dim padding. Each mirrors the CPU op of the same
// meaning (ops.h, backend.h); the CUDA tests check them against the CPU backend.
#include <algorithm>
#include <cfloat>

#include "ops_cuda.h"
#include "reduce.cuh"

namespace cuda_backend {

namespace {
constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n) { return (unsigned)((n + kThreads - 1) / kThreads); }

// Grid-stride loops below: any n fits the grid (capped), each element handled by one thread.
inline unsigned capped_blocks(int64_t n) { return (unsigned)std::min<int64_t>(blocks_for(n), 1 << 20); }

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

// One CTA per row.
__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* table, int C) {
  const int64_t n = blockIdx.x;
  const int32_t tok = tokens[n];
  float* y = out + n * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) y[c] = tok < 0 ? 0.f : table[(int64_t)tok * C + c];
}

// One CTA per distinct token u; each column adds the token's rows in position order, starting
// from dtable's current value, exactly as the CPU op's `row[c] += g[c]` loop does.
__global__ void embedding_backward_kernel(float* dtable, const float* dout, const int32_t* uniq, const int32_t* ptr, const int32_t* rows,
                                          int C) {
  const int u = blockIdx.x;
  float* row = dtable + (int64_t)uniq[u] * C;
  const int r0 = ptr[u], r1 = ptr[u + 1];
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float acc = row[c];
    for (int r = r0; r < r1; r++) acc += dout[(int64_t)rows[r] * C + c];
    row[c] = acc;
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

Status embedding_forward(float* out, const int32_t* tokens, const float* table, int N, int C, cudaStream_t s) {
  if (N <= 0 || C <= 0) return Status::success();
  embedding_forward_kernel<<<N, kThreads, 0, s>>>(out, tokens, table, C);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

int embedding_csr(std::vector<int32_t>* csr, const int32_t* tokens, int N) {
  std::vector<int32_t> order(N);
  for (int n = 0; n < N; n++) order[n] = n;
  // Stable: positions stay ascending within a token.
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return tokens[a] < tokens[b]; });
  std::vector<int32_t> uniq, ptr;
  for (int i = 0; i < N; i++)
    if (i == 0 || tokens[order[i]] != tokens[order[i - 1]]) {
      uniq.push_back(tokens[order[i]]);
      ptr.push_back(i);
    }
  ptr.push_back(N);
  csr->clear();
  csr->insert(csr->end(), uniq.begin(), uniq.end());
  csr->insert(csr->end(), ptr.begin(), ptr.end());
  csr->insert(csr->end(), order.begin(), order.end());
  return (int)uniq.size();
}

Status embedding_backward(float* dtable, const float* dout, const int32_t* csr, int U, int C, cudaStream_t s) {
  if (U <= 0 || C <= 0) return Status::success();
  embedding_backward_kernel<<<U, kThreads, 0, s>>>(dtable, dout, csr, csr + U, csr + 2 * U + 1, C);
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
