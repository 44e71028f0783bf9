// AdamW exactly as torch.optim.AdamW (decoupled weight decay, bias corrections), and the sum of
// squares behind the global gradient norm. Elementwise over n; chunked so each thread's range
// (and hence every result) is independent of the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops.h"
#include "parallel.h"
#include "simd.h"

namespace engine {

namespace {

constexpr int64_t CHUNK = 4096;

// Same operation order as PyTorch's single-tensor AdamW:
//   p *= 1 - lr*wd; m = lerp(m, g, 1-b1); v = b2*v + (1-b2)*g*g;
//   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
struct AdamWStep {
  float decay, one_minus_b1, beta2, one_minus_b2, step_size, bc2_sqrt, eps, grad_scale;
};

__attribute__((always_inline)) inline void adamw_body(float* p, const float* grad, float* m, float* v, int64_t begin,
                                                      int64_t end, const AdamWStep& s) {
  for (int64_t i = begin; i < end; i++) {
    const float g = grad[i] * s.grad_scale;
    p[i] *= s.decay;
    m[i] += s.one_minus_b1 * (g - m[i]);
    v[i] = s.beta2 * v[i] + s.one_minus_b2 * g * g;
    p[i] -= s.step_size * m[i] / (std::sqrt(v[i]) / s.bc2_sqrt + s.eps);
  }
}

void adamw_scalar(float* p, const float* g, float* m, float* v, int64_t b, int64_t e, const AdamWStep& s) {
  adamw_body(p, g, m, v, b, e, s);
}
#if ENGINE_X86
// The same loop compiled for wider vectors (the compiler vectorises it; sqrt and div stay IEEE).
TARGET_AVX2 void adamw_avx2(float* p, const float* g, float* m, float* v, int64_t b, int64_t e, const AdamWStep& s) {
  adamw_body(p, g, m, v, b, e, s);
}
TARGET_AVX512 void adamw_avx512(float* p, const float* g, float* m, float* v, int64_t b, int64_t e,
                                const AdamWStep& s) {
  adamw_body(p, g, m, v, b, e, s);
}
#endif

// Sum of squares of one chunk with four interleaved double accumulators (a fixed pattern).
double chunk_sum_squares(const float* x, int64_t begin, int64_t end) {
  double acc[4] = {0, 0, 0, 0};
  int64_t i = begin;
  for (; i + 4 <= end; i += 4)
    for (int j = 0; j < 4; j++) acc[j] += (double)x[i + j] * x[i + j];
  for (; i < end; i++) acc[0] += (double)x[i] * x[i];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

}  // namespace

// param, grad, m, v (n)
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, int step, float grad_scale) {
  const double bc1 = 1.0 - std::pow((double)beta1, step), bc2 = 1.0 - std::pow((double)beta2, step);
  const AdamWStep s{1.0f - lr * weight_decay, 1.0f - beta1, beta2, 1.0f - beta2, (float)(lr / bc1),
                    (float)std::sqrt(bc2), eps, grad_scale};
  const SimdLevel level = simd();
  parallel_for((n + CHUNK - 1) / CHUNK, [&](int64_t c0, int64_t c1) {
    const int64_t b = c0 * CHUNK, e = std::min(n, c1 * CHUNK);
#if ENGINE_X86
    if (level == SimdLevel::avx512) return adamw_avx512(param, grad, m, v, b, e, s);
    if (level == SimdLevel::avx2) return adamw_avx2(param, grad, m, v, b, e, s);
#endif
    adamw_scalar(param, grad, m, v, b, e, s);
  });
}

// x (n): per-chunk partial sums combined in chunk order.
double sum_squares(const float* x, int64_t n) {
  const int64_t chunks = (n + CHUNK - 1) / CHUNK;
  std::vector<double> partial(chunks, 0.0);
  parallel_for(chunks, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) partial[c] = chunk_sum_squares(x, c * CHUNK, std::min(n, (c + 1) * CHUNK));
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace engine
