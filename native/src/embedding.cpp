// Token embedding lookup and its scatter-add gradient.
// Shapes: N rows (B*T), C channels, V vocab; table (V, C).
#include <cstring>
#include <stdexcept>
#include <string>

#include "op_checks.h"
#include "ops.h"
#include "parallel.h"

namespace engine {

// out (N, C) = table[tokens[n]]
void embedding_forward(float* out, const int* tokens, const float* table, int N, int C) {
  check_tokens(tokens, N, "embedding_forward");
  parallel_for(N, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) std::memcpy(out + n * C, table + (int64_t)tokens[n] * C, sizeof(float) * C);
  });
}

// dtable (V, C) += dout (N, C) by token. Threads split the channels, not the tokens, so each
// dtable element receives its additions in token order on one thread: deterministic for any
// thread count, and no two threads ever write the same row segment.
void embedding_backward(float* dtable, const float* dout, const int* tokens, int N, int C) {
  check_tokens(tokens, N, "embedding_backward");
  parallel_for(C, [&](int64_t c0, int64_t c1) {
    for (int n = 0; n < N; n++) {
      float* row = dtable + (int64_t)tokens[n] * C;
      const float* g = dout + (int64_t)n * C;
      for (int64_t c = c0; c < c1; c++) row[c] += g[c];
    }
  });
}

}  // namespace engine
