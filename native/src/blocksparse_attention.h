// Block-sparse causal flash attention on the CPU: forward and backward visit only the block
// pairs a BlockMask keeps (online softmax, log-sum-exp saved for the backward pass).
//
// Shapes: B batch, H query heads, Hkv KV heads (H % Hkv == 0), T tokens, D head dim.
// Query head h reads KV head h / (H / Hkv) and mask head mask.mask_head(h, H).
// Scale is 1/sqrt(D). Inside a kept block pair, causality is applied per token (the diagonal
// block and the tail block). Rows with no kept key cannot happen: the diagonal is always kept.
//
// Threading (native/src/parallel.h): forward over (batch, head, query block); backward computes
// dk/dv per (batch, KV head, key block) over the transposed lists, and dq per (batch, head,
// query block) over the key lists: every output element is written by one task, no atomics,
// so results are bit-identical run to run. Vectorised with AVX-512 / AVX2+FMA at the level
// simd.h picks at run time (tests lower it with set_simd_level_for_testing), scalar fallback.
#pragma once
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

}  // namespace engine
