// Attention-distribution metrics and the attention-KL distillation loss, as docs/metrics.md
// defines them, for one layer:
//   P_student = softmax of the student's q.k/sqrt(D) over the keys its mask keeps (causal),
//   P_teacher = dense causal softmax of the teacher's q.k/sqrt(D).
//   attn_kl     = mean over batch, heads and query positions of KL(P_student || P_teacher)
//   attn_recall = mean over batch, heads and query positions of the teacher mass inside the mask
//   density     = kept causal block pairs / all causal block pairs (mask.density())
//   attn_flops_saved = share of causal token-pair dot products skipped (mask.flops_saved())
// For pure masking (student q,k = teacher q,k) each row's KL is -log(its kept teacher mass);
// attn_kl is the mean of those, so attn_kl >= -log(attn_recall) (Jensen), equal per row.
//
// Shapes: B batch, H query heads, Hkv KV heads, T tokens, D head dim; student and teacher have
// the same shapes. Query head h reads KV head h / (H / Hkv).
#pragma once
#include "block_mask.h"

namespace engine {

struct AttentionMetrics {
  double attn_kl = 0, attn_recall = 0, density = 0, attn_flops_saved = 0;
};

// q_s, q_t (B, H, T, D); k_s, k_t (B, Hkv, T, D); lse_t (B, H, T) the teacher's dense
// log-sum-exp (nullable: computed here). kl_rows, recall_rows (B, H, T) per-row values (nullable).
AttentionMetrics attention_metrics(const float* q_s, const float* k_s, const float* q_t, const float* k_t,
                                   const float* lse_t, int B, int H, int Hkv, int T, int D, const BlockMask& mask,
                                   double* kl_rows = nullptr, double* recall_rows = nullptr);

// Distillation loss: mean over (B, H, T) of KL(P_student || P_teacher), visiting kept blocks
// only. lse_t (B, H, T) is required (the teacher's dense forward saves it). When dq_s/dk_s are
// non-null the gradients of the returned loss w.r.t. the student's q and k are WRITTEN
// (overwritten) there: dq_s (B, H, T, D), dk_s (B, Hkv, T, D). Deterministic, no atomics.
double attn_kl_loss(float* dq_s, float* dk_s, const float* q_s, const float* k_s, const float* q_t,
                    const float* k_t, const float* lse_t, int B, int H, int Hkv, int T, int D, const BlockMask& mask);

}  // namespace engine
