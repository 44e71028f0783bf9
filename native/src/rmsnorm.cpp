// RMSNorm (HF LlamaRMSNorm): out = inp * rstd * weight, rstd = 1 / sqrt(mean(inp^2) + eps).
// Shapes: N rows, C channels; inp, out (N, C), weight (C), rstd (N).
// Row sums are taken in double in channel order, so results do not depend on the thread count.
#include <cmath>
#include <vector>

#include "ops.h"
#include "parallel.h"

namespace engine {

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps) {
  parallel_for(N, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const float* x = inp + n * C;
      float* y = out + n * C;
      double ss = 0;
      for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
      const float r = (float)(1.0 / std::sqrt(ss / C + (double)eps));
      for (int c = 0; c < C; c++) y[c] = x[c] * r * weight[c];
      if (rstd) rstd[n] = r;
    }
  });
}

// dinp (N, C) += rstd * (weight * dout) - rstd^3 / C * inp * sum_c(dout * weight * inp)
// dweight (C) += sum_n dout * inp * rstd (threads split channels: each sums rows in order).
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C) {
  if (dinp) {
    parallel_for(N, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; n++) {
        const float* x = inp + n * C;
        const float* g = dout + n * C;
        float* dx = dinp + n * C;
        double dot = 0;
        for (int c = 0; c < C; c++) dot += (double)g[c] * weight[c] * x[c];
        const float r = rstd[n];
        const float k = (float)(dot * r * r * r / C);
        for (int c = 0; c < C; c++) dx[c] += r * weight[c] * g[c] - k * x[c];
      }
    });
  }
  if (dweight) {
    parallel_for(C, [&](int64_t c0, int64_t c1) {
      std::vector<double> acc(c1 - c0, 0.0);  // double: N can be thousands of rows
      for (int n = 0; n < N; n++) {
        const float* x = inp + (int64_t)n * C;
        const float* g = dout + (int64_t)n * C;
        const float r = rstd[n];
        for (int64_t c = c0; c < c1; c++) acc[c - c0] += (double)(g[c] * x[c] * r);
      }
      for (int64_t c = c0; c < c1; c++) dweight[c] += (float)acc[c - c0];
    });
  }
}

}  // namespace engine
