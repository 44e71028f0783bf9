// The row movements of a mixture-of-experts layer (ops.h "mixture of experts"): each output row is
// written by one thread and its terms are added in slot order, so results are bit-identical for
// any thread count.
#include <cstring>

#include "ops.h"
#include "parallel.h"

namespace engine {

void moe_gather_rows(float* out, const float* x, const int32_t* rows, int64_t M, int C) {
  parallel_for(M, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) std::memcpy(out + i * C, x + (int64_t)rows[i] * C, sizeof(float) * C);
  });
}

void moe_combine(float* out, const float* y, const int32_t* pos, const float* weight, int N, int K, int C) {
  parallel_for(N, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      float* o = out + n * C;
      for (int j = 0; j < K; j++) {
        const float w = weight ? weight[n * K + j] : 1.0f;
        const float* src = y + (int64_t)pos[n * K + j] * C;
        for (int c = 0; c < C; c++) o[c] += w * src[c];
      }
    }
  });
}

void moe_combine_backward(float* dy, float* dweight, const float* dout, const float* y, const int32_t* pos,
                          const float* weight, int N, int K, int C) {
  parallel_for(N, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const float* d = dout + n * C;
      for (int j = 0; j < K; j++) {
        const int64_t row = pos[n * K + j];
        const float w = weight[n * K + j];
        const float* src = y + row * C;
        float* dst = dy + row * C;
        double dot = 0;
        for (int c = 0; c < C; c++) {
          dst[c] = w * d[c];
          dot += (double)d[c] * src[c];
        }
        dweight[n * K + j] = (float)dot;
      }
    }
  });
}

}  // namespace engine
