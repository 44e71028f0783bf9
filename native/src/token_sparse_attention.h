// Per-token sparse causal attention on the CPU (InfLLM-V2's attention as published): each query
// token of KV group g attends over the key blocks its own selection (block_selector.h
// TokenBlockSelection, one per sequence) holds, causally (key <= query). Scale 1/sqrt(D).
// Shapes: B batch, H query heads, Hkv KV heads, T tokens, D head dim; query head h reads KV head
// h / (H / Hkv) and that head's selection row.
// Threading: forward and dq over (batch, head, token); dk/dv over (batch, KV head): every output
// element is written by one task, so results are bit-identical run to run. Accumulates in double.
#pragma once
#include "block_selector.h"

namespace engine {

// out (B, H, T, D), lse (B, H, T) overwritten; sels[b] is sequence b's selection (T, Hkv match).
void token_sparse_attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B,
                                    int H, int Hkv, int T, int D, const TokenBlockSelection* sels);
// dq (B, H, T, D), dk, dv (B, Hkv, T, D) overwritten; out, lse from the forward with the same selections.
void token_sparse_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                     const float* k, const float* v, const float* out, const float* lse, int B, int H,
                                     int Hkv, int T, int D, const TokenBlockSelection* sels);

// Attention KL and recall over per-token selections, as attention_metrics.h defines them (student
// softmax over its selected causal keys, teacher dense with lse_t (B, H, T)): returns the mean over
// (B, H, T) of KL(P_student || P_teacher); *recall (nullable) gets the mean teacher mass inside the
// selections. When dq_s / dk_s are non-null, grad_scale times the gradients of the returned loss
// w.r.t. the student's q (B, H, T, D) and k (B, Hkv, T, D) are WRITTEN there.
double token_sparse_attn_kl(float* dq_s, float* dk_s, float grad_scale, double* recall, const float* q_s,
                            const float* k_s, const float* q_t, const float* k_t, const float* lse_t, int B, int H,
                            int Hkv, int T, int D, const TokenBlockSelection* sels);

}  // namespace engine
