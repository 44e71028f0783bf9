// Block-sparse causal flash attention on the CPU: forward and backward visit only the block
// pairs a BlockMask keeps (online softmax, log-sum-exp saved for the backward pass).
//
// Shapes: B batch, H query heads, Hkv KV heads (H % Hkv == 0), T tokens, D head dim.
// Query head h reads KV head h / (H / Hkv) and mask head mask.mask_head(h, H).
// Scale is 1/sqrt(D). Inside a kept block pair, causality is applied per token (the diagonal
// block and the tail block). Rows with no kept key cannot happen: the diagonal is always kept.
//
// Threading (native/src/parallel.h): forward over (batch, head, query block), each output row
// written by one task, so bit-identical for any thread count; backward in one pass over
// (batch, KV head, key block) and the transposed lists (attention_backward.h), dq summed in a
// fixed order, so bit-identical run to run for a fixed thread count. Vectorised with AVX-512 / AVX2+FMA at the level
// simd.h picks at run time (tests lower it with set_simd_level_for_testing), scalar fallback.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "block_mask.h"

namespace engine {

// out (B, H, T, D) and lse (B, H, T) are overwritten.
// q (B, H, T, D), k (B, Hkv, T, D), v (B, Hkv, T, D)
void blocksparse_attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                   int B, int H, int Hkv, int T, int D, const BlockMask& mask);

// dq (B, H, T, D), dk (B, Hkv, T, D), dv (B, Hkv, T, D) are overwritten (not accumulated).
// dout, out (B, H, T, D); lse (B, H, T) from the forward pass with the same mask.
void blocksparse_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                    const float* k, const float* v, const float* out, const float* lse,
                                    int B, int H, int Hkv, int T, int D, const BlockMask& mask);

// Building blocks shared by the block-sparse kernels (selector, metrics); not a public API.
namespace blocksparse_detail {
constexpr int kSpanTokens = 256;  // longest run of coalesced blocks (tile edge)
// A run of consecutive kept blocks [first_block, last_block].
struct Span { int first_block, last_block; };
// Coalesces an ascending block list into runs of consecutive blocks of at most kSpanTokens
// tokens (a block larger than that stays one span).
void coalesce(const int32_t* blocks, int n, int block_size, std::vector<Span>& spans);
// Runs task(i) for every i in [0, cost.size()) on the pool, dealing tasks longest-first.
void run_scheduled(const std::vector<int64_t>& cost, const std::function<void(int64_t)>& task);
// max of x[0..n) (-inf when n == 0)
float row_max(const float* x, int n);
// x = exp(x - m) over [0, n); returns the sum (vectorised)
float exp_sub_sum(float* x, int n, float m);
// Keys after the query position are masked: a row at query position qp against keys starting
// at k0 has min(cols, qp - k0 + 1) valid columns.
inline int valid_cols(int qp, int k0, int cols) { return cols < qp - k0 + 1 ? cols : qp - k0 + 1; }
// First key and key count of a span (the tail block may be short).
inline int span_k0(const Span& sp, int bs) { return sp.first_block * bs; }
inline int span_cols(const Span& sp, int bs, int T) {
  const int end = (sp.last_block + 1) * bs;
  return (end < T ? end : T) - sp.first_block * bs;
}
// Scores of one query block against a list of key spans, stored span after span: chunk c is
// (rows, cols_c) row-major at offset[c]. Reused across calls (thread_local in the kernels).
struct Strip {
  std::vector<float> s;
  std::vector<size_t> offset;
  // s = scale * Q (rows, D) K_span^T for every span; K is the head's whole key matrix (T, D).
  void fill(const std::vector<Span>& spans, const float* Q, const float* K, int rows, int T, int D, int bs, float scale);
};
}  // namespace blocksparse_detail

}  // namespace engine
