// Evaluation: the student's loss, and its distance from the dense teacher (logit KL, hidden
// states, per-layer attention metrics of the block-sparse layers).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "model.h"
#include "model_acts.h"
#include "token_sparse_attention.h"

namespace engine {

double Model::loss(const int32_t* tokens, int B, int T) {
  check_tokens(tokens, B, T);
  ensure_rope(T);
  sync_device();
  load_tokens(*acts_, backend_.get(), tokens, B, T);
  forward(*acts_, acts_->inputs.data(), B, T, false);
  return lm_head_loss(acts_->hidden.data(), nullptr, acts_->targets.data(), B, T, nullptr, nullptr, false).first;
}

EvalResult Model::evaluate(const int32_t* tokens, int B, int T) {
  check_tokens(tokens, B, T);
  ensure_rope(T);
  sync_device();
  const int N = B * T, C = config_.hidden_size, L = config_.num_layers;
  load_tokens(*acts_, backend_.get(), tokens, B, T);
  const int32_t* inputs = acts_->inputs.data();
  const int32_t* targets = acts_->targets.data();
  forward(*acts_, inputs, B, T, false);
  // While no tensor has its own teacher copy and every layer is dense, the teacher is the student.
  bool teacher_differs = false;
  for (auto& p : params_) teacher_differs |= !p.teacher.empty();
  for (auto& a : attention_) teacher_differs |= a.has_value();
  if (teacher_differs) forward(*teacher_acts_, inputs, B, T, true);
  const Activations& teacher = teacher_differs ? *teacher_acts_ : *acts_;
  EvalResult r;
  DistillWeights unit;  // logit KL at temperature 1
  auto [ce, lkl] = lm_head_loss(acts_->hidden.data(), teacher_differs ? teacher.hidden.data() : nullptr, targets, B, T,
                                nullptr, &unit, false);
  r.loss = ce;
  r.logit_kl = lkl;
  r.loss_teacher =
      teacher_differs ? lm_head_loss(teacher.hidden.data(), nullptr, targets, B, T, nullptr, nullptr, true).first : ce;
  std::vector<float> s1, s2;
  const float* hs = host_view(acts_->hidden.data(), (int64_t)N * C, s1);
  const float* ht = host_view(teacher.hidden.data(), (int64_t)N * C, s2);
  double mse = 0, cos_sum = 0;
  for (int n = 0; n < N; n++) {
    double dot = 0, ns = 0, nt = 0;
    for (int i = 0; i < C; i++) {
      const double s = hs[(size_t)n * C + i], t = ht[(size_t)n * C + i];
      dot += s * t; ns += s * s; nt += t * t;
      mse += (s - t) * (s - t);
    }
    cos_sum += dot / std::max(std::sqrt(ns * nt), 1e-12);
  }
  r.moe = moe_stats(LoadBalance{}, 0);
  r.out_cos = cos_sum / N;
  r.hidden_mse = mse / ((double)N * C);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  r.attn_kl.assign(L, nan);
  r.attn_recall.assign(L, nan);
  r.density.assign(L, nan);
  r.flops_saved.assign(L, nan);
  const int H = config_.num_heads, Hkv = config_.num_kv_heads, D = config_.head_dim;
  for (int l = 0; l < L; l++) {
    const LayerActs& la = acts_->layers[l];
    const LayerActs& lt = teacher.layers[l];
    if (!la.token_sel.empty()) {
      double recall = 0, density = 0;
      r.attn_kl[l] = token_sparse_attn_kl(nullptr, nullptr, 0, &recall, la.q.data(), la.k.data(), lt.q.data(),
                                          lt.k.data(), lt.lse.data(), B, H, Hkv, T, D, la.token_sel.data());
      for (auto& s : la.token_sel) density += s.density() / B;
      r.attn_recall[l] = recall;
      r.density[l] = density;
      r.flops_saved[l] = 1 - density;  // its density already counts token pairs
      continue;
    }
    if (la.masks.empty()) continue;
    double kl = 0, recall = 0, density = 0, saved = 0;
    for_each_mask(la.masks, B, [&](int b0, int bb, const BlockMask& mask) {
      const size_t qo = (size_t)b0 * H * T * D, ko = (size_t)b0 * Hkv * T * D, lo = (size_t)b0 * H * T;
      AttentionMetrics m = backend_->attention_metrics(la.q.data() + qo, la.k.data() + ko, lt.q.data() + qo,
                                                       lt.k.data() + ko, lt.lse.data() + lo, bb, H, Hkv, T, D, mask);
      const double share = (double)bb / B;
      kl += m.attn_kl * share;
      recall += m.attn_recall * share;
      density += m.density * share;
      saved += m.attn_flops_saved * share;
    });
    r.attn_kl[l] = kl;
    r.attn_recall[l] = recall;
    r.density[l] = density;
    r.flops_saved[l] = saved;
  }
  return r;
}

Model::PrefillTimes Model::time_prefill(const int32_t* tokens, int B, int T, int reps) {
  check_tokens(tokens, B, T);
  if (reps < 1) throw std::invalid_argument("time_prefill: reps must be >= 1");
  ensure_rope(T);
  sync_device();
  load_tokens(*acts_, backend_.get(), tokens, B, T);
  // The dense run is this student with its masks lifted; the swap is undone however it ends.
  std::vector<std::optional<MaskSpec>> other(attention_.size());
  struct Restore {
    std::vector<std::optional<MaskSpec>>& a; std::vector<std::optional<MaskSpec>>& b; bool swapped = false;
    void swap() { a.swap(b); swapped = !swapped; }
    ~Restore() { if (swapped) a.swap(b); }
  } masks{attention_, other};
  std::vector<float> staging;
  auto seconds = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    forward(*acts_, acts_->inputs.data(), B, T, false);
    host_view(acts_->hidden.data(), 1, staging);  // waits for a device backend to finish
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  PrefillTimes best{std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()};
  for (int i = 0; i < reps; i++) {
    best.sparse_s = std::min(best.sparse_s, seconds());
    masks.swap();
    best.dense_s = std::min(best.dense_s, seconds());
    masks.swap();
  }
  return best;
}

double Model::train_flops(int B, int T) const {
  // 6 * params-in-matmuls per token (forward 2, backward 4) plus attention's 2 * 2 * T * H * D per
  // token forward (QK^T and PV, causal half), times 3 for forward + backward. A MoE layer's MLP
  // counts its router and only the k experts a token runs.
  const ModelConfig& c = config_;
  const double C = c.hidden_size, F = c.intermediate_size, HD = (double)c.num_heads * c.head_dim,
               KD = (double)c.num_kv_heads * c.head_dim;
  double matmul_params = (double)c.vocab_size * C;
  for (int l = 0; l < c.num_layers; l++) {
    const double mlp = c.is_moe_layer(l)
                           ? C * c.num_experts + (double)c.num_experts_per_tok * 3 * C * c.moe_intermediate_size
                           : 3 * C * F;
    matmul_params += C * HD * 2 + C * KD * 2 + mlp;
  }
  const double tokens = (double)B * T;
  const double attn = c.num_layers * 2.0 * 2.0 * (T / 2.0) * HD;
  return tokens * (6 * matmul_params + 3 * attn);
}

}  // namespace engine
