// Small models and token batches shared by the model tests (test_model.cpp, test_backend.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "block_mask.h"
#include "model.h"

namespace fixtures {

// 16 channels, 4 heads over 2 KV heads, intermediate 24, context 128. `type` labels the config;
// qwen3 turns on QK-norm (the feature its family adds; minicpm's scales are set by the tests).
inline engine::ModelConfig tiny_config(const std::string& type, int vocab, int layers, int head_dim, bool tied) {
  engine::ModelConfig c;
  c.model_type = type;
  c.qk_norm = type == "qwen3";
  c.vocab_size = vocab;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_layers = layers;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = head_dim;
  c.max_position_embeddings = 128;
  c.tie_word_embeddings = tied;
  return c;
}

// B rows of T + 1 token ids below V, from splitmix64 (the same on every platform).
inline std::vector<int32_t> tokens(int B, int T, int V, uint64_t seed) {
  std::vector<int32_t> t((size_t)B * (T + 1));
  for (auto& x : t) x = (int32_t)(engine::splitmix64(seed) % V);
  return t;
}

}  // namespace fixtures
