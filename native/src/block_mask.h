// Block masks for block-sparse attention: which (query block, key block) pairs are computed.
//
// Design choices:
// - One mask per "mask head": per KV head when share_gqa_group (the GQA group shares its blocks),
//   else per query head. Query head h uses mask head h / (H / n_mask_heads). The layout is shared
//   across the batch; dynamic (top-k) masks for several sequences are built one per sequence.
// - Causal pairs only (key block <= query block); the diagonal block is always kept. The last
//   block is a tail block when T is not a multiple of block_size.
// - Three views built together: a bitmap (uint64 words per (head, q block) row, bit j%64 of word
//   j/64 = key block j, LSB first: the InfLLM-style layout), per-row key lists (CSR, ascending)
//   and the transposed per-key-block query lists (CSR, ascending) for the backward pass.
// - Random blocks come from splitmix64 seeded per (seed, layer, mask head, query block), so a
//   mask is reproducible on every platform and the mask at length T is a prefix of the mask at
//   any longer length. Never std:: random distributions (they differ across standard libraries).
// - Random and top-k blocks are extra: they are drawn among causal blocks not already kept by
//   the static parts (global, global rows, window, diagonal), so a row keeps
//   min(causal blocks, static + random + topk) blocks.
// - Bad specs throw std::invalid_argument with a one-line message naming the field.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace engine {

// Mirrors core/schema.ts MaskSpec (same fields, same meaning).
struct MaskSpec {
  int block_size = 64;      // tokens per block, a power of two in [16, 256]
  int global_blocks = 2;    // first N key blocks every query block sees
  int global_rows = 0;      // first N query blocks see every earlier key block
  int window_blocks = 1;    // key blocks right before the diagonal each query block sees
  int random_blocks = 0;    // extra random causal key blocks per query block
  uint64_t random_seed = 0; // seed of the random blocks
  int topk_blocks = 0;      // extra key blocks per query block picked by the selector's scores
  // InfLLMv2: per-token selection (block_selector.h (c)); topk_blocks extra blocks per query token.
  enum Selector { None, Pooled, Indexer, InfLLMv2 } selector = None;
  int dense_below = 0;      // sequences shorter than this many tokens are dense
  bool share_gqa_group = true;  // one mask per KV head (true) or per query head (false)
  // Indexer only: optimiser steps of the indexer (its own trained steps) that use the warm-up KL
  // over every causal key block; from then on its KL runs over the blocks the mask keeps
  // (block_selector.h, phase 2). -1 (the pipeline leaves the field out): warm-up KL only.
  int indexer_warmup_steps = -1;
  // Block pairs seeded from the teacher's attention (computed by the host from its profile):
  // (n_mask_heads, seeded_blocks, seeded_blocks) 0/1, read for causal pairs of query blocks
  // < seeded_blocks, kept after the static blocks and before random/top-k. Empty: none.
  std::vector<uint8_t> seeded;
  int seeded_blocks = 0;
};

// Why a block pair is kept (first reason wins, in this order), for the editor's heatmap.
enum class BlockSource : uint8_t { Skipped = 0, Dense = 1, Diagonal = 2, Global = 3, GlobalRow = 4, Window = 5, Random = 6, TopK = 7, Seeded = 8 };

struct BlockMask {
  int T = 0, block_size = 0, n_blocks = 0, n_mask_heads = 0;
  int words = 0;   // uint64 words per bitmap row: ceil(n_blocks / 64)
  bool dense = false;  // built dense (T < dense_below): every causal pair kept
  std::vector<uint64_t> bits;      // (n_mask_heads, n_blocks, words)
  std::vector<int32_t> kv_ptr;     // (n_mask_heads * n_blocks + 1): row r's key blocks are kv_idx[kv_ptr[r]..kv_ptr[r+1])
  std::vector<int32_t> kv_idx;     // key blocks, ascending within a row
  std::vector<int32_t> q_ptr;      // (n_mask_heads * n_blocks + 1): key block column c's query blocks
  std::vector<int32_t> q_idx;      // query blocks, ascending within a column
  std::vector<uint8_t> source;     // (n_mask_heads, n_blocks, n_blocks) BlockSource codes

  bool test(int head, int qb, int kb) const { return (bits[((size_t)head * n_blocks + qb) * words + kb / 64] >> (kb % 64)) & 1; }
  // Mask head used by query head h of H.
  int mask_head(int h, int H) const { return h / (H / n_mask_heads); }
  // Tokens in block b (the tail block may be short).
  int block_len(int b) const { int s = b * block_size; return (T - s < block_size) ? T - s : block_size; }
  int64_t kept_pairs() const { return (int64_t)kv_idx.size(); }
  int64_t causal_pairs() const { return (int64_t)n_mask_heads * n_blocks * (n_blocks + 1) / 2; }
  // Kept causal block pairs / all causal block pairs (over all mask heads).
  double density() const { return causal_pairs() ? (double)kept_pairs() / (double)causal_pairs() : 1.0; }
  // Share of causal token-pair (q, k) dot products the mask skips (attention FLOPs saved).
  // Inline so the CUDA module, which links none of the engine, reports it too.
  double flops_saved() const {
    // Token pairs (q, k) with k <= q: a kept off-diagonal block costs rows * cols, a kept
    // diagonal block its causal triangle.
    double kept = 0, total = 0;
    auto tri = [](double n) { return n * (n + 1) / 2; };
    for (int h = 0; h < n_mask_heads; h++)
      for (int i = 0; i < n_blocks; i++) {
        const double rows = block_len(i);
        total += rows * (double)(i * block_size) + tri(rows);
        for (int p = kv_ptr[h * n_blocks + i]; p < kv_ptr[h * n_blocks + i + 1]; p++)
          kept += kv_idx[p] == i ? tri(rows) : rows * block_len(kv_idx[p]);
      }
    return total > 0 ? 1.0 - kept / total : 0.0;
  }
  // Work estimates for scheduling the attention passes (tokens x kept blocks):
  // per task (b, h, query block i), index ((b * H) + h) * n_blocks + i, its kept key blocks;
  std::vector<int64_t> query_block_costs(int B, int H) const;
  // per task (b, kv head, key block j), index ((b * Hkv) + kvh) * n_blocks + j, the query blocks
  // that keep j summed over the query heads of the GQA group.
  std::vector<int64_t> key_block_costs(int B, int H, int Hkv) const;
};

// "" when valid, else a one-line message naming the field ("mask.block_size: ...").
std::string validate_mask_spec(const MaskSpec& spec);

// Builds the mask for one layer. H query heads, Hkv KV heads (H % Hkv == 0).
// block_scores: (n_mask_heads, n_blocks, n_blocks) selector scores, read for causal pairs only;
// required when topk_blocks > 0 and selector != None (and the mask is not dense), else ignored.
// Top-k picks the highest-scoring causal key blocks not already kept; ties go to the lower block.
BlockMask build_block_mask(const MaskSpec& spec, int T, int H, int Hkv, int layer, const float* block_scores);

// Builds a mask straight from a bitmap (n_mask_heads, n_blocks, words); non-causal bits are
// rejected, the diagonal is added. Sources are marked TopK for off-static bits. Used by imports
// and tests (round trips).
BlockMask block_mask_from_bits(const std::vector<uint64_t>& bits, int T, int block_size, int n_mask_heads);

// FlexAttention BlockMask arrays (torch.nn.attention.flex_attention.BlockMask.from_kv_blocks):
// every kept block is exported as a partial block (no full_kv_* arrays) to be used with a
// causal mask_mod (q_idx >= kv_idx), which also handles the diagonal and the tail block.
// Heads are expanded to the H query heads (flex wants H or 1). Index rows are padded the way
// torch's create_block_mask pads them: kept blocks ascending, then the skipped ones ascending.
struct FlexBlockMask {
  int H = 0, q_blocks = 0, kv_blocks = 0, block_size = 0, seq_len = 0;
  std::vector<int32_t> kv_num_blocks;  // (1, H, q_blocks)
  std::vector<int32_t> kv_indices;     // (1, H, q_blocks, kv_blocks)
  std::vector<int32_t> q_num_blocks;   // (1, H, kv_blocks)
  std::vector<int32_t> q_indices;      // (1, H, kv_blocks, q_blocks)
};
FlexBlockMask to_flex_block_mask(const BlockMask& mask, int H);
// Inverse (heads of the flex arrays are taken as mask heads); checks the arrays are consistent.
BlockMask from_flex_block_mask(const FlexBlockMask& flex);

// splitmix64: the fixed PRNG of random blocks (exposed for tests).
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace engine
