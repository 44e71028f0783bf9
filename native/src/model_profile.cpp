// The dense teacher's attention profile (Model::attention_profile; attention_profile.h).
#include <stdexcept>

#include "attention_profile.h"
#include "model.h"
#include "model_acts.h"

namespace engine {

AttentionProfile Model::attention_profile(const int32_t* tokens, int S, int T, int batch, int block, bool share_gqa,
                                          const std::vector<double>& densities) {
  if (S < 1 || batch < 1 || block < 1) throw std::invalid_argument("attention_profile: sequences, batch and block must be >= 1");
  check_tokens(tokens, S, T);
  ensure_rope(T);
  sync_device();
  const int L = config_.num_layers, H = config_.num_heads, Hkv = config_.num_kv_heads, D = config_.head_dim;
  const int nb = profile_blocks(T, block), M = share_gqa ? Hkv : H, levels = (int)densities.size();
  AttentionProfile out;
  out.block = block;
  out.n_blocks = nb;
  out.mask_heads = M;
  out.layers.resize(L);
  for (auto& layer : out.layers) {
    layer.mass.assign((size_t)H * nb * nb, 0.0);
    layer.floor.assign(levels, 0.0);
    layer.recall.assign(levels, 0.0);
  }
  std::vector<double> rows;
  std::vector<float> sq, sk;
  // Runs the teacher over every chunk and calls fn(layer, chunk size, row block masses).
  auto each_layer_rows = [&](auto fn) {
    for (int b0 = 0; b0 < S; b0 += batch) {
      const int bb = std::min(batch, S - b0);
      load_tokens(*acts_, backend_.get(), tokens + (size_t)b0 * (T + 1), bb, T);
      forward(*teacher_acts_, acts_->inputs.data(), bb, T, true);
      rows.resize((size_t)bb * H * T * nb);
      for (int l = 0; l < L; l++) {
        const LayerActs& la = teacher_acts_->layers[l];
        const float* q = host_view(la.q.data(), (int64_t)bb * H * T * D, sq);
        const float* k = host_view(la.k.data(), (int64_t)bb * Hkv * T * D, sk);
        attention_row_block_mass(q, k, bb, H, Hkv, T, D, block, rows.data());
        fn(l, bb);
      }
    }
  };
  each_layer_rows([&](int l, int bb) { pool_block_mass(rows.data(), bb, H, T, block, 1.0 / S, out.layers[l].mass.data()); });
  if (levels == 0) return out;
  std::vector<std::vector<int32_t>> join(L);
  for (int l = 0; l < L; l++)
    join[l] = oracle_join_levels(out.layers[l].mass.data(), H, M, T, block, densities, &out.layers[l].density);
  each_layer_rows([&](int l, int bb) {
    nested_mask_floor(rows.data(), bb, H, T, block, join[l].data(), M, levels, out.layers[l].floor.data(),
                      out.layers[l].recall.data());
  });
  const double n_rows = (double)S * H * T;
  for (auto& layer : out.layers)
    for (int i = 0; i < levels; i++) layer.floor[i] /= n_rows, layer.recall[i] /= n_rows;
  return out;
}

}  // namespace engine
