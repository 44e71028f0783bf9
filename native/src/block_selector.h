// Block selection (the mask controller): scores key blocks for each query block; the top-k of
// those scores become the dynamic blocks of build_block_mask(). Two kinds, one output shape:
// scores (n_mask_heads, n_blocks, n_blocks), causal pairs (key block <= query block) filled,
// the rest -inf. Both work on ONE sequence (the mask layout is shared across a batch; with
// top-k, build one mask per sequence).
//
// (a) pooled: parameter-free, InfLLM-V2 / MoBA style. score(i, j) = mean over the queries of
//     block i of q . kbar_j (kbar_j = mean of the keys of block j), summed over the query heads
//     of a mask head (a GQA group when the mask is shared, else one head).
// (b) indexer: trainable, DeepSeek DSA style, at block granularity on the layer input x:
//       xq_i = mean of x over query block i, xk_j = mean of x over key block j   (C)
//       qi_{i,h} = w_q[h] xq_i (Di), kj_j = w_k xk_j (Di)
//       score(i, j) = sum_h w_h[h] * relu(qi_{i,h} . kj_j) / sqrt(Di)
//     One score map per layer; it is copied to every mask head (DSA shares its selection).
//     Its training has two phases (DeepSeek-V3.2's DSA, at block granularity), both against
//     target = the teacher's block attention summed over all heads (one indexer serves them all):
//     phase 1, warm-up: mean over query blocks of KL(target_i || softmax_j(score(i, .))) over the
//       causal key blocks, target L1-normalised per row;
//     phase 2, selected set: the same KL with the target and the softmax both renormalised over
//       S_m(i), the key blocks the layer's mask keeps for query block i in mask head m; mean over
//       mask heads and query blocks. A row with one kept block (or no target mass on S) adds 0.
//     The input x is detached: gradients go to w_q, w_k, w_h only (the main loss reaches the model
//     through the selected attention; top-k itself has no gradient).
//
// (c) infllm_v2 (InfLLM-V2 as published with MiniCPM 4.1), per (KV head, query TOKEN), not per
//     query block; the selection feeds the per-token attention (token_sparse_attention.h):
//       compressed keys kc_j = mean of k over tokens [j*stride, j*stride + kernel), kernel =
//       block_size / 2, stride = block_size / 4 (MiniCPM 4.1: 32 and 16 for 64-token blocks),
//       j = 0 .. (T - kernel) / stride; kc_j is visible to token t when j*stride + kernel <= t + 1;
//       s_t(j) = sum over the query heads h of the GQA group of softmax_j(q_{h,t} . kc_j / sqrt(D))
//       over the visible j (0 for the others);
//       block score = max of s_t over the compressed keys overlapping the block (block b: j in
//       [b*B/stride - 1, (b+1)*B/stride - 1]; MiniCPM's max-pool, kernel B/stride + 1, padding 1);
//       forced: the first global_blocks blocks and the window_blocks + 1 blocks ending at the
//       token's own block (InfLLM-V2's init and local blocks);
//       selected: the forced blocks plus the topk_blocks best other causal blocks (ties: lower
//       block first), i.e. InfLLM-V2's top-k with k = init + local + topk_blocks. Sorted ascending.
//     Sequences shorter than dense_below select every causal block.
//
// Shapes: H query heads, Hkv KV heads, T tokens, D head dim, C channels, Hi indexer heads,
// Di indexer head dim, nb = ceil(T / block_size).
#pragma once
#include "block_mask.h"

namespace engine {

// q (H, T, D), k (Hkv, T, D) of one sequence; scores (n_mask_heads, nb, nb) with
// n_mask_heads = Hkv (share_gqa_group) or H.
void pooled_block_scores(float* scores, const float* q, const float* k, int H, int Hkv, int T, int D,
                         int block_size, bool share_gqa_group);

// Per-token block selection of one sequence (infllm_v2): blocks (Hkv, T, k_max), ascending, padded
// with -1; count (Hkv, T).
struct TokenBlockSelection {
  int T = 0, block_size = 0, n_blocks = 0, n_kv_heads = 0, k_max = 0;
  bool dense = false;  // T < dense_below: every causal block
  std::vector<int32_t> blocks;
  std::vector<int32_t> count;
  const int32_t* row(int g, int t) const { return blocks.data() + ((size_t)g * T + t) * k_max; }
  int n(int g, int t) const { return count[(size_t)g * T + t]; }
  // Selected causal (query, key) token pairs / all causal token pairs, over the KV heads.
  double density() const;
};

// q (H, T, D), k (Hkv, T, D) of one sequence; spec.selector must be InfLLMv2 (sizes from spec, see (c)).
TokenBlockSelection infllmv2_select(const float* q, const float* k, int H, int Hkv, int T, int D,
                                    const struct MaskSpec& spec);

struct IndexerShape {
  int C = 0;   // layer input channels
  int Hi = 4;  // indexer heads
  int Di = 32; // indexer head dim
};
// Parameter shapes (row-major, like nn.Linear weights):
//   w_q (Hi * Di, C), w_k (Di, C), w_h (Hi)
// Initialise with indexer_init (seeded, scaled like nn.Linear's default init).
void indexer_init(float* w_q, float* w_k, float* w_h, const IndexerShape& s, uint64_t seed);

// x (T, C) of one sequence. scores (n_mask_heads, nb, nb): the same map in every mask head.
void indexer_block_scores(float* scores, const float* x, const float* w_q, const float* w_k, const float* w_h,
                          const IndexerShape& s, int T, int block_size, int n_mask_heads);

// The indexer's target: teacher's block attention for one sequence, summed over heads and the
// queries/keys of each block pair, rows L1-normalised over causal key blocks.
// q (H, T, D), k (Hkv, T, D) of the teacher; lse (H, T) from its dense forward (nullable: then
// computed here). target (nb, nb), zeros above the diagonal.
void teacher_block_attention(float* target, const float* q, const float* k, const float* lse, int H, int Hkv,
                             int T, int D, int block_size);

// The indexer's KL for one sequence, and its gradients ADDED to dw_q, dw_k, dw_h (nullable: loss
// only). x (T, C), target (nb, nb) as teacher_block_attention writes it. selected == nullptr:
// phase 1, the mean over query blocks of KL(target_i || softmax(score_i)) over causal key blocks.
// selected: phase 2 over the blocks that mask keeps (built for this T and block_size, any number
// of mask heads), see (b). Multiply by 1/B yourself to average a batch.
double indexer_kl_loss(float* dw_q, float* dw_k, float* dw_h, const float* x, const float* w_q, const float* w_k,
                       const float* w_h, const float* target, const IndexerShape& s, int T, int block_size,
                       const BlockMask* selected = nullptr);

}  // namespace engine
