// Token embedding on the GPU: the lookup and its deterministic scatter-add gradient (a CTA per
// distinct token over a host-built CSR, so each row receives the CPU op's additions in order).
// Mirrors native/src/embedding.cpp.
// Shapes: N rows (B*T), C channels, V vocab, U distinct tokens; table, dtable (V, C); out, dout (N, C).
#include <algorithm>
#include <vector>

#include "ops_cuda.h"

namespace cuda_backend {

namespace {
constexpr int kThreads = 256;

// ================================================================== kernels
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
}  // namespace

// ================================================================== launchers
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

}  // namespace cuda_backend
