// Argument checks of the ops, shared by the CPU ops (native/src) and the CUDA backend
// (native/cuda/backend_cuda.cu), so both backends refuse the same calls with the same message.
// Design choices:
// - Inline, header only: the CUDA module links no engine object file and must need no engine
//   symbol at run time (scripts/build-cuda.mjs checks), so it compiles its own copy of these.
// - Each throws std::invalid_argument with a one-line message that starts with the op's name
//   (`who`). What only one backend needs (the CUDA kernels' supported head dims and block
//   sizes, device arrays) stays in that backend.
// Shape letters as in ops.h.
#pragma once
#include <stdexcept>
#include <string>

#include "block_mask.h"
#include "block_selector.h"
#include "ops.h"

namespace engine {

// ---------------------------------------------------------------------------- embedding
// Token ids must not be negative. The table's row count is not passed to the ops, so ids >= V
// are the model's to catch (it checks them against the vocabulary before calling).
inline void check_tokens(const int* tokens, int N, const char* who) {
  for (int n = 0; n < N; n++)
    if (tokens[n] < 0)
      throw std::invalid_argument(std::string(who) + ": tokens[" + std::to_string(n) + "] = " +
                                  std::to_string(tokens[n]) + " is negative");
}

// ---------------------------------------------------------------------------- cross entropy
// Targets (N) below V; negative ones are ignored rows.
inline void check_targets(const int* targets, int N, int V, const char* who) {
  for (int n = 0; n < N; n++)
    if (targets[n] >= V)
      throw std::invalid_argument(std::string(who) + ": targets[" + std::to_string(n) + "] = " +
                                  std::to_string(targets[n]) + " is outside the vocabulary (V = " + std::to_string(V) +
                                  ")");
}

// ---------------------------------------------------------------------------- rope
// x (B, T, H, D) against a table (max_seq, head_dim): D == head_dim and T <= max_seq.
inline void check_rope_shape(int T, int D, const RopeTable& t, const char* who) {
  if (D != t.head_dim || T > t.max_seq)
    throw std::invalid_argument(std::string(who) + ": x has T = " + std::to_string(T) + ", D = " + std::to_string(D) +
                                " but the table has max_seq = " + std::to_string(t.max_seq) +
                                ", head_dim = " + std::to_string(t.head_dim));
}

// ---------------------------------------------------------------------------- attention
// Dense causal attention: H a positive multiple of Hkv.
inline void check_attention_heads(int H, int Hkv, const char* who) {
  if (H <= 0 || Hkv <= 0 || H % Hkv != 0)
    throw std::invalid_argument(std::string(who) + ": query heads H = " + std::to_string(H) +
                                " must be a positive multiple of key/value heads Hkv = " + std::to_string(Hkv));
}

// Block-sparse attention (forward and backward): positive sizes, GQA heads, and a mask built for
// T whose heads are H or Hkv.
inline void check_blocksparse_args(int B, int H, int Hkv, int T, int D, const BlockMask& mask) {
  if (B < 1 || H < 1 || Hkv < 1 || T < 1 || D < 1)
    throw std::invalid_argument("blocksparse_attention: B, H, Hkv, T, D must be >= 1");
  if (H % Hkv != 0) throw std::invalid_argument("blocksparse_attention: H must be a multiple of Hkv");
  if (mask.T != T)
    throw std::invalid_argument("blocksparse_attention: mask built for T=" + std::to_string(mask.T) + ", got T=" +
                                std::to_string(T));
  if (mask.n_mask_heads < 1 || H % mask.n_mask_heads != 0 || mask.n_mask_heads % Hkv != 0)
    throw std::invalid_argument("blocksparse_attention: mask has " + std::to_string(mask.n_mask_heads) +
                                " heads; need H or Hkv (H=" + std::to_string(H) + ", Hkv=" + std::to_string(Hkv) + ")");
}

// ---------------------------------------------------------------------------- attention metrics / KL
// attention_metrics, attn_kl_loss and attention_entropy: positive sizes, GQA heads, a mask built
// for T with H or Hkv heads.
inline void check_attention_dims(int B, int H, int Hkv, int T, int D, const char* who) {
  if (B < 1 || H < 1 || Hkv < 1 || T < 1 || D < 1 || H % Hkv != 0)
    throw std::invalid_argument(std::string(who) + ": need B, H, Hkv, T, D >= 1 and H a multiple of Hkv");
}
inline void check_attention_kl_args(int B, int H, int Hkv, int T, int D, const BlockMask& mask, const char* who) {
  check_attention_dims(B, H, Hkv, T, D, who);
  if (mask.T != T)
    throw std::invalid_argument(std::string(who) + ": mask built for T=" + std::to_string(mask.T) + ", got T=" +
                                std::to_string(T));
  if (mask.n_mask_heads < 1 || H % mask.n_mask_heads != 0 || mask.n_mask_heads % Hkv != 0)
    throw std::invalid_argument(std::string(who) + ": mask has " + std::to_string(mask.n_mask_heads) +
                                " heads; need H or Hkv");
}

// The teacher's dense lse, where an op needs it given (attn_kl_loss; on CUDA every teacher op).
inline void check_teacher_lse(const float* lse_t, const char* who) {
  if (!lse_t) throw std::invalid_argument(std::string(who) + ": the teacher's lse is required");
}

// ---------------------------------------------------------------------------- block selection
// Every selector op: T >= 1 tokens in blocks of block_size >= 1.
inline void check_selector_args(int T, int block_size, const char* who) {
  if (T < 1) throw std::invalid_argument(std::string(who) + ": seq_len must be >= 1");
  if (block_size < 1) throw std::invalid_argument(std::string(who) + ": block_size must be >= 1");
}

// The indexer's selected-set KL: the mask must be built for this sequence's T and block size.
inline void check_indexer_selected(const BlockMask& mask, int T, int block_size, const char* who) {
  if (mask.T != T || mask.block_size != block_size || mask.n_mask_heads < 1)
    throw std::invalid_argument(std::string(who) + ": selected mask built for T=" + std::to_string(mask.T) +
                                " and block_size " + std::to_string(mask.block_size) + ", got T=" + std::to_string(T) +
                                " and block_size " + std::to_string(block_size));
}

// Backend::indexer_loss: one selected mask for the batch or one per sequence.
inline void check_indexer_selected_count(const std::vector<BlockMask>& masks, int B, const char* who) {
  if (masks.size() != 1 && masks.size() != (size_t)B)
    throw std::invalid_argument(std::string(who) + ": " + std::to_string(masks.size()) +
                                " selected masks for a batch of " + std::to_string(B) + " (need 1 or B)");
}

// pooled_block_scores and teacher_block_attention: H a positive multiple of Hkv.
inline void check_selector_heads(int H, int Hkv, const char* who) {
  if (H < 1 || Hkv < 1 || H % Hkv != 0) throw std::invalid_argument(std::string(who) + ": H must be a multiple of Hkv");
}

// The trainable indexer's shape: C, Hi, Di >= 1.
inline void check_indexer_shape(const IndexerShape& s) {
  if (s.C < 1 || s.Hi < 1 || s.Di < 1)
    throw std::invalid_argument("indexer: C, Hi and Di must be >= 1, got C=" + std::to_string(s.C) + " Hi=" +
                                std::to_string(s.Hi) + " Di=" + std::to_string(s.Di));
}

}  // namespace engine
