// Entropy of a layer's own attention and its gradient: the optional attention-entropy term of a
// training step (docs/metrics.md "attn_entropy"), which rewards concentrated attention.
//   s_ij = q_i . k_j / sqrt(D) over the keys j the layer's mask keeps for query i (causal),
//   p_ij = softmax_j(s_ij),  H_i = -sum_j p_ij log p_ij  (nats),
//   returned: the mean of H_i over batch, query heads and query positions.
// Its gradient w.r.t. the logits is dH_i/ds_ij = -p_ij (s_ij - sum_k p_ik s_ik), chained into q and
// k (the RoPE'd q and k the attention reads).
//
// Shapes: B batch, H query heads, Hkv KV heads, T tokens, D head dim; q (B, H, T, D),
// k (B, Hkv, T, D). Query head h reads KV head h / (H / Hkv).
#pragma once
#include "block_mask.h"

namespace engine {

// mask == nullptr: dense causal attention. When dq and dk are non-null, grad_scale times the
// gradient of the returned mean w.r.t. q and k is WRITTEN (overwritten) there: dq (B, H, T, D),
// dk (B, Hkv, T, D). rows (B, H, T), nullable: each row's H_i. Deterministic, no atomics: every
// output is computed by one task in a fixed order, so results are bit-identical for any thread
// count.
double attention_entropy(float* dq, float* dk, float grad_scale, const float* q, const float* k, int B, int H, int Hkv,
                         int T, int D, const BlockMask* mask, double* rows = nullptr);

}  // namespace engine
