// The model's activations and backward scratch (internal to the model_*.cpp files), and the one
// loop over a layer's block masks.
#pragma once
#include <cstdint>
#include <vector>

#include "backend.h"
#include "block_mask.h"
#include "block_selector.h"
#include "device_array.h"
#include "moe.h"

namespace engine {

// Every float array lives in the backend's memory.
using Buf = DeviceArray<float>;

struct LayerActs {
  Buf ln1, ln1_rstd;           // (N, C), (N)
  Buf q_pre, k_pre;            // qk_norm: (N, H*D), (N, Hkv*D) before QK-norm
  Buf qn_rstd, kn_rstd;        // qk_norm: (N*H), (N*Hkv)
  Buf q, k, v;                 // (B, H, T, D), (B, Hkv, T, D) x2, after RoPE
  Buf att, lse;                // (B, H, T, D), (B, H, T)
  Buf merged;                  // (N, H*D)
  Buf resid_mid;               // (N, C) after the attention branch
  Buf ln2, ln2_rstd;           // (N, C), (N)
  Buf gate, up, act;           // (N, F)
  // Block-sparse layers of the student: one mask shared by the batch, or one per sequence (top-k).
  std::vector<BlockMask> masks;
  // infllm_v2 layers of the student at or above dense_below: one per-token selection per sequence
  // (masks is then empty; attention runs per token, token_sparse_attention.h).
  std::vector<TokenBlockSelection> token_sel;
  bool sparse() const { return !masks.empty() || !token_sel.empty(); }
  Buf dq_kl, dk_kl;            // attention-KL gradients w.r.t. q, k (heads layout), or empty
  // Attention-entropy gradients w.r.t. q, k (heads layout). Kept from step to step (fresh ones
  // would be zeroed and page-faulted each time); ent_grads says they hold this step's.
  Buf dq_ent, dk_ent;
  bool ent_grads = false;
  MoeActs moe;                 // MoE layers: routing and the experts' forward values (moe.cpp)
};

// Gradient buffers of the backward pass, shared by every layer.
struct BackwardBuffers {
  Buf dres;  // (N, C) gradient w.r.t. the current residual stream
  Buf dbranch, dln;  // (N, C)
  Buf dact, dgate, dup;  // (N, F)
  Buf dmerged, datt, dq, dk, dv, dqt, dkt, dvt, dpre;  // q-shaped (N*H*D) or kv-shaped (N*Hkv*D)
  // MoE layers (moe.cpp): grouped rows (N*K) of the experts' outputs, activations and inputs,
  // and the gradients w.r.t. the routing weights (N, K) and router logits (N, E).
  Buf moe_dy, moe_dact, moe_dgate, moe_dup, moe_dx, moe_dweight, moe_dlogits;
};

struct Activations {
  int B = 0, T = 0;
  DeviceArray<int32_t> inputs, targets;  // (N) each
  std::vector<Buf> resid;  // L+1 of (N, C): resid[0] embeddings, resid[l+1] after layer l (teacher: 2, in turn)
  std::vector<LayerActs> layers;
  Buf hidden, hidden_rstd;  // (N, C) final norm output ("last hidden state"), (N)
  Buf scratch;              // (N, max(C, H*D)) for projections
  Buf qt, kt;               // (B, T, H, D), (B, T, Hkv, D): q, k before the head transpose
  // The LM head's row chunk (model_losses.cpp): inputs, logits and their gradients. Kept from step
  // to step: fresh ones (tens of MiB at a 50k vocabulary) would be zeroed and page-faulted each time.
  Buf head_xs, head_xt, head_logits, head_tlogits, head_dlogits, head_dxs;
  // The step's gradient w.r.t. the final hidden state and the backward pass's buffers, kept from
  // step to step for the same reason (fresh ones cost page faults every step).
  Buf dhidden;
  BackwardBuffers backward;
};

// Calls fn(b0, bb, mask) over the batch: once with the shared mask, or once per sequence.
template <typename Fn>
void for_each_mask(const std::vector<BlockMask>& masks, int B, Fn fn) {
  if (masks.size() == 1) {
    fn(0, B, masks[0]);
  } else {
    for (int b = 0; b < B; b++) fn(b, 1, masks[b]);
  }
}

// Splits (B, T+1) tokens into inputs and targets and puts them in the backend's memory.
void load_tokens(Activations& a, Backend* be, const int32_t* tokens, int B, int T);

}  // namespace engine
