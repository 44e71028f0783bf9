// Model shapes the CUDA tests and bench run: the small test model (CPU vs CUDA steps) and a
// Qwen3-0.6B shape (throughput), as engine::ModelConfig.
#pragma once
#include <string>

#include "model.h"

namespace cuda_test {

inline engine::ModelConfig decoder_config(const std::string& type, int vocab, int hidden, int intermediate, int layers, int heads,
                                          int kv_heads, int head_dim, int max_positions) {
  engine::ModelConfig c;
  c.model_type = type;
  c.qk_norm = type == "qwen3";  // the family table lives in TS (native/checkpoint/families.ts); tests set the feature
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.max_position_embeddings = max_positions;
  return c;
}

// vocab 512, hidden 256, intermediate 512, 4 layers, 4 heads, 2 kv heads, head_dim 64.
inline engine::ModelConfig small_config(const std::string& type) { return decoder_config(type, 512, 256, 512, 4, 4, 2, 64, 1024); }

// Qwen3-0.6B (tied embeddings, rope_theta 1e6), positions limited to `max_positions`.
inline engine::ModelConfig qwen3_06b_config(int max_positions) {
  engine::ModelConfig c = decoder_config("qwen3", 151936, 1024, 3072, 28, 16, 8, 128, max_positions);
  c.rope_theta = 1000000;
  c.tie_word_embeddings = true;
  return c;
}

}  // namespace cuda_test
