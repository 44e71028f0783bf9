// Losses of a training step: the LM head's cross-entropy and logit KL (chunked over rows), and
// the distillation losses against the dense teacher: hidden-state MSE, attention KL of the
// block-sparse layers and the block indexers' KL (warm-up or selected set); and the optional
// entropy of the student's own attention.
#include <algorithm>

#include "attention_entropy.h"
#include "model.h"
#include "model_acts.h"
#include "token_sparse_attention.h"

namespace engine {

std::pair<double, double> Model::lm_head_loss(const float* hidden, const float* teacher_hidden, const int32_t* targets,
                                              int B, int T, float* dhidden, const DistillWeights* dw,
                                              bool teacher_weights, float grad_scale) {
  Backend& be = *backend_;
  Backend* bp = backend_.get();
  const int N = B * T, C = config_.hidden_size, V = config_.vocab_size;
  const float inv_div = 1.0f / config_.logit_divisor;
  const Param& head = params_[lm_head_index_];
  const float* W = dev_weights(lm_head_index_, teacher_weights);
  const float* W_teacher = dev_weights(lm_head_index_, true);
  const size_t dW = (dhidden && head.trainable && !teacher_weights) ? lm_head_index_ : SIZE_MAX;  // gets a gradient
  const float task_w = dw ? dw->task : 1.0f;
  const float kl_w = (dw && teacher_hidden) ? dw->logit_kl : 0.0f;
  const float temp = dw ? dw->temperature : 1.0f;
  const bool want_kl = teacher_hidden != nullptr;
  // Rows per chunk: up to about 16M logits at a time. Every chunk's GEMMs pack the whole head
  // weight (V x C) again, so few large chunks keep that packing small next to the math.
  const int R = std::max(1, std::min(N, (int)((int64_t)(1 << 24) / V)));
  Activations& a = *acts_;
  Buf &xs = a.head_xs, &xt = a.head_xt, &logits = a.head_logits, &tlogits = a.head_tlogits,
      &dlogits = a.head_dlogits, &dxs = a.head_dxs;
  xs.resize(bp, (int64_t)R * C);
  logits.resize(bp, (int64_t)R * V);
  if (dhidden) {
    dlogits.resize(bp, (int64_t)R * V);
    dxs.resize(bp, (int64_t)R * C);
  }
  if (want_kl) {
    xt.resize(bp, (int64_t)R * C);
    tlogits.resize(bp, (int64_t)R * V);
  }
  double ce_sum = 0, kl_sum = 0;
  for (int r0 = 0; r0 < N; r0 += R) {
    const int rows = std::min(R, N - r0);
    be.scale(xs.data(), hidden + (size_t)r0 * C, inv_div, (int64_t)rows * C);
    be.matmul_forward(logits.data(), xs.data(), W, rows, C, V);
    // cross_entropy returns the mean over the chunk; dscale makes its gradient a share of the mean
    // over all N rows (every target is valid: the model checked them).
    const double ce = be.cross_entropy(dhidden ? dlogits.data() : nullptr, logits.data(), targets + r0, rows, V,
                                       task_w * (float)rows / (float)N * grad_scale);
    ce_sum += ce * rows;
    if (want_kl) {
      // KL(teacher || student) of softmax(z / temp); gradient w.r.t. student logits T * (ps - pt) / N.
      be.scale(xt.data(), teacher_hidden + (size_t)r0 * C, inv_div, (int64_t)rows * C);
      be.matmul_forward(tlogits.data(), xt.data(), W_teacher, rows, C, V);
      const bool add_grad = dhidden && kl_w != 0;
      kl_sum += be.logit_kl(add_grad ? dlogits.data() : nullptr, logits.data(), tlogits.data(), rows, V, temp,
                            add_grad ? kl_w * temp / N * grad_scale : 0.0f);
    }
    if (!dhidden) continue;
    be.fill(dxs.data(), 0.0f, (int64_t)rows * C);
    linear_backward(dxs.data(), dW, dlogits.data(), xs.data(), W, rows, C, V);
    // dW got the gradient w.r.t. W from scaled inputs, which is what we want (logits = (h/div) W^T).
    be.scale(dhidden + (size_t)r0 * C, dxs.data(), inv_div, (int64_t)rows * C);
  }
  const double t2 = (double)temp * temp;
  return {ce_sum / N, want_kl ? t2 * kl_sum / N : 0.0};
}

double Model::hidden_mse(float* dhidden, float weight, float grad_scale) {
  Backend& be = *backend_;
  const int N = acts_->B * acts_->T, C = config_.hidden_size;
  // On the backend: nothing comes down but the sum.
  Buf diff(backend_.get(), (int64_t)N * C);  // hs - ht
  be.add_scaled(diff.data(), acts_->hidden.data(), teacher_acts_->hidden.data(), -1.0f, diff.size());
  const double loss = be.sum_squares(diff.data(), diff.size()) / ((double)N * C);
  if (weight != 0) {
    const float g = 2.0f * weight / ((float)N * C);
    be.add_scaled(dhidden, dhidden, diff.data(), g * grad_scale, diff.size());
  }
  return loss;
}

double Model::attention_kl(float weight) {
  Activations& s = *acts_;
  Activations& t = *teacher_acts_;
  const int B = s.B, T = s.T, H = config_.num_heads, Hkv = config_.num_kv_heads, D = config_.head_dim;
  int n_sparse = 0;
  for (int l = 0; l < config_.num_layers; l++) n_sparse += s.layers[l].sparse();
  if (n_sparse == 0) return 0;
  double total = 0;
  for (int l = 0; l < config_.num_layers; l++) {
    LayerActs& la = s.layers[l];
    const LayerActs& lt = t.layers[l];
    if (!la.sparse()) continue;
    if (weight != 0) {
      la.dq_kl.resize(backend_.get(), la.q.size());
      la.dk_kl.resize(backend_.get(), la.k.size());
    }
    if (!la.token_sel.empty()) {
      total += token_sparse_attn_kl(weight != 0 ? la.dq_kl.data() : nullptr, weight != 0 ? la.dk_kl.data() : nullptr,
                                    weight / n_sparse, nullptr, la.q.data(), la.k.data(), lt.q.data(), lt.k.data(),
                                    lt.lse.data(), B, H, Hkv, T, D, la.token_sel.data());
      continue;
    }
    double layer_kl = 0;
    for_each_mask(la.masks, B, [&](int b0, int bb, const BlockMask& mask) {
      const size_t qo = (size_t)b0 * H * T * D, ko = (size_t)b0 * Hkv * T * D, lo = (size_t)b0 * H * T;
      const double share = (double)bb / B;  // this call's share of the batch mean
      const float g = (float)(weight * share / n_sparse);
      layer_kl += share * backend_->attn_kl_loss(weight != 0 ? la.dq_kl.data() + qo : nullptr,
                                                 weight != 0 ? la.dk_kl.data() + ko : nullptr, g, la.q.data() + qo,
                                                 la.k.data() + ko, lt.q.data() + qo, lt.k.data() + ko,
                                                 lt.lse.data() + lo, bb, H, Hkv, T, D, mask);
    });
    total += layer_kl;
  }
  return total / n_sparse;
}

double Model::attention_entropy(float weight) {
  Activations& s = *acts_;
  const int B = s.B, T = s.T, H = config_.num_heads, Hkv = config_.num_kv_heads, D = config_.head_dim;
  const int stop = lowest_trainable_layer();  // backward never reaches the layers below
  int n_layers = 0;
  for (const LayerActs& la : s.layers) n_layers += la.token_sel.empty();
  if (n_layers == 0) return 0;
  double total = 0;
  for (int l = 0; l < config_.num_layers; l++) {
    LayerActs& la = s.layers[l];
    if (!la.token_sel.empty()) continue;
    const bool grads = weight != 0 && l >= stop;
    if (grads) {
      la.dq_ent.resize(backend_.get(), la.q.size());
      la.dk_ent.resize(backend_.get(), la.k.size());
    }
    la.ent_grads = grads;
    float* dq = grads ? la.dq_ent.data() : nullptr;
    float* dk = grads ? la.dk_ent.data() : nullptr;
    if (la.masks.empty() || la.masks[0].dense) {  // attention ran dense causal
      total += engine::attention_entropy(dq, dk, weight / n_layers, la.q.data(), la.k.data(), B, H, Hkv, T, D, nullptr);
      continue;
    }
    for_each_mask(la.masks, B, [&](int b0, int bb, const BlockMask& mask) {
      const size_t qo = (size_t)b0 * H * T * D, ko = (size_t)b0 * Hkv * T * D;
      const double share = (double)bb / B;  // this call's share of the batch mean
      total += share * engine::attention_entropy(dq ? dq + qo : nullptr, dk ? dk + ko : nullptr,
                                                 (float)(weight * share / n_layers), la.q.data() + qo,
                                                 la.k.data() + ko, bb, H, Hkv, T, D, &mask);
    });
  }
  return total / n_layers;
}

double Model::indexer_loss(float grad_scale, std::vector<int8_t>& phase) {
  Activations& s = *acts_;
  Activations& t = *teacher_acts_;
  const int B = s.B, T = s.T, H = config_.num_heads, Hkv = config_.num_kv_heads, D = config_.head_dim;
  phase.assign(config_.num_layers, 0);
  double total = 0;
  int n = 0;
  for (int l = 0; l < config_.num_layers; l++) {
    const LayerParams& lp = layers_[l];
    if (!attention_[l] || attention_[l]->selector != MaskSpec::Indexer || lp.idx_q == SIZE_MAX) continue;
    const Param &wq = params_[lp.idx_q], &wk = params_[lp.idx_k], &wh = params_[lp.idx_h];
    if (!wq.trainable && !wk.trainable && !wh.trainable) continue;
    // The indexer's own optimiser steps so far (they travel with checkpoints and rollbacks):
    // the first indexer_warmup_steps of them use the warm-up KL, the rest the selected-set KL
    // over the masks this forward used.
    const int64_t trained = std::max({wq.adam_step, wk.adam_step, wh.adam_step});
    const int warmup = attention_[l]->indexer_warmup_steps;
    const bool selected = warmup >= 0 && trained >= warmup;
    phase[l] = selected ? 2 : 1;
    const LayerActs& lt = t.layers[l];
    total += backend_->indexer_loss(dev_grad(lp.idx_q), dev_grad(lp.idx_k), dev_grad(lp.idx_h), grad_scale,
                                    s.layers[l].ln1.data(), dev_weights(lp.idx_q, false), dev_weights(lp.idx_k, false),
                                    dev_weights(lp.idx_h, false), lt.q.data(), lt.k.data(), lt.lse.data(),
                                    indexer_shape_, B, H, Hkv, T, D, attention_[l]->block_size,
                                    selected ? &s.layers[l].masks : nullptr);
    n++;
  }
  return n ? total / n : 0;
}

}  // namespace engine
