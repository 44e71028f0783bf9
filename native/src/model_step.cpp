// The training step: gradients of the task and distillation losses, global-norm clipping, AdamW,
// and fp16 dynamic loss scaling.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "model.h"
#include "model_acts.h"
#include "optimizer.h"

namespace engine {

double Model::grad_scale_for_step() const { return backend_->precision() == Precision::fp16 ? loss_scale_ : 1.0; }

void Model::set_loss_scale(double scale, int growth_interval) {
  if (!(scale >= 1 && scale <= 0x1p100) || std::log2(scale) != std::floor(std::log2(scale)))
    throw std::invalid_argument("loss_scale: must be a power of two in [1, 2^100]");
  if (growth_interval < 1) throw std::invalid_argument("loss_scale growth interval: must be >= 1");
  loss_scale_ = scale;
  growth_interval_ = growth_interval;
  good_steps_ = 0;
}

// Mean over block-sparse layers of their masks' density (1 when every layer is dense).
static double mean_density(const Activations& a) {
  double sum = 0;
  int n = 0;
  for (auto& la : a.layers) {
    if (!la.sparse()) continue;
    double d = 0;
    for (auto& m : la.masks) d += m.density();
    for (auto& s : la.token_sel) d += s.density();
    sum += d / (la.masks.size() + la.token_sel.size());
    n++;
  }
  return n ? sum / n : 1.0;
}

void Model::zero_grads() {
  for (auto& p : params_)
    if (p.trainable && p.grad.size() != p.data.size()) {
      host_access();  // new optimiser buffers: the backend's copy is rebuilt below
      break;
    }
  for (auto& p : params_) optimizer::ensure_buffers(p);
  sync_device();
  // No fill pass here: a weight matrix's first gradient overwrites its buffer (linear_backward)
  // and any other first write zero-fills it then (dev_grad), so the step touches each gradient
  // buffer once less.
  grad_unwritten_.assign(params_.size(), 0);
  for (size_t i = 0; i < params_.size(); i++) grad_unwritten_[i] = params_[i].trainable;
}

// Splits (B, T+1) tokens into inputs and targets and puts them in the backend's memory.
void load_tokens(Activations& a, Backend* be, const int32_t* tokens, int B, int T) {
  std::vector<int32_t> inputs((size_t)B * T), targets((size_t)B * T);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      inputs[(size_t)b * T + t] = tokens[(size_t)b * (T + 1) + t];
      targets[(size_t)b * T + t] = tokens[(size_t)b * (T + 1) + t + 1];
    }
  a.inputs.resize(be, (int64_t)inputs.size());
  a.targets.resize(be, (int64_t)targets.size());
  be->upload(a.inputs.data(), inputs.data(), (int64_t)sizeof(int32_t) * inputs.size());
  be->upload(a.targets.data(), targets.data(), (int64_t)sizeof(int32_t) * targets.size());
}

StepResult Model::compute_gradients(const int32_t* tokens, int B, int T, const StepOptions& options) {
  check_tokens(tokens, B, T);
  if (!(options.attn_entropy_weight >= 0) || !std::isfinite(options.attn_entropy_weight))
    throw std::invalid_argument("options.attn_entropy_weight: must be a finite number >= 0, got " +
                                std::to_string(options.attn_entropy_weight));
  // The term reads q and k in place on the host (attention_entropy.h).
  if (options.attn_entropy_weight > 0 && !backend_->host_resident())
    throw std::invalid_argument("options.attn_entropy_weight: the attention-entropy term runs on the cpu backend only");
  ensure_rope(T);
  Backend& be = *backend_;
  const int N = B * T, C = config_.hidden_size;
  const bool distill = options.distill;
  // A trainable tensor without its own teacher copy still holds the base weights: keep them.
  const auto needs_teacher_copy = [](const Param& p) { return p.trainable && p.teacher.empty(); };
  if (distill && std::any_of(params_.begin(), params_.end(), needs_teacher_copy)) host_access();
  zero_grads();
  host_fresh_ = false;  // the gradients change on the backend from here on
  if (distill)
    for (size_t i = 0; i < params_.size(); i++)
      if (needs_teacher_copy(params_[i])) make_teacher_copy(i);
  load_tokens(*acts_, backend_.get(), tokens, B, T);
  const int32_t* inputs = acts_->inputs.data();
  const int32_t* targets = acts_->targets.data();
  forward(*acts_, inputs, B, T, false);
  DistillWeights dw = distill ? options.weights : DistillWeights{};
  if (distill) forward(*teacher_acts_, inputs, B, T, true);
  const float S = (float)grad_scale_for_step();  // loss scale: gradients are computed at loss * S
  const bool need_teacher_logits = distill && dw.logit_kl != 0;
  Buf& dhidden = acts_->dhidden;  // lm_head_loss overwrites every row
  dhidden.resize(backend_.get(), (int64_t)N * C);
  auto [ce, lkl] = lm_head_loss(acts_->hidden.data(), need_teacher_logits ? teacher_acts_->hidden.data() : nullptr,
                                targets, B, T, dhidden.data(), &dw, false, S);
  StepResult r;
  r.task_loss = ce;
  r.logit_kl_loss = lkl;
  r.loss_scale = S;
  if (distill) r.hidden_mse_loss = hidden_mse(dhidden.data(), dw.hidden_mse, S);
  double selector_loss = 0;
  if (distill) {
    r.attn_kl_loss = attention_kl(dw.attn_kl * S);
    selector_loss = r.indexer_loss = indexer_loss(S, r.indexer_phase);
  }
  // The indexer's KL only reaches the selector tensors (its input is detached).
  r.loss = dw.task * ce + dw.attn_kl * r.attn_kl_loss + dw.logit_kl * lkl + dw.hidden_mse * r.hidden_mse_loss +
           selector_loss;
  if (options.attn_entropy_weight > 0) {
    r.attn_entropy = attention_entropy(options.attn_entropy_weight * S);
    r.loss += options.attn_entropy_weight * *r.attn_entropy;
  }
  r.moe = moe_stats(options.load_balance, S);  // keeps the load-balancing gradient for backward
  r.loss += r.moe.load_balance_loss;
  backward(*acts_, dhidden.data(), inputs, B, T);
  double ss = 0;
  for (size_t i = 0; i < params_.size(); i++)
    if (params_[i].trainable) {
      if (S != 1) be.scale(dev_grad(i), dev_grad(i), 1.0f / S, params_[i].numel());  // exact: S is a power of two
      ss += be.sum_squares(dev_grad(i), params_[i].numel());
    }
  r.grad_norm = std::sqrt(ss);
  r.density = mean_density(*acts_);
  return r;
}

StepResult Model::train_step(const int32_t* tokens, int B, int T, const StepOptions& options) {
  StepResult r = compute_gradients(tokens, B, T, options);
  const bool scaling = backend_->precision() == Precision::fp16;
  if (scaling && std::isfinite(r.loss) && !std::isfinite(r.grad_norm)) {
    // fp16 overflow at this loss scale: skip the update and retry smaller next step.
    r.skipped = true;
    loss_scale_ = std::max(1.0, loss_scale_ / 2);
    good_steps_ = 0;
    return r;
  }
  if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm))
    throw std::runtime_error("training diverged: loss " + std::to_string(r.loss) + ", grad norm " +
                             std::to_string(r.grad_norm) + " (weights left unchanged)");
  const float clip = (options.grad_clip > 0 && r.grad_norm > options.grad_clip)
                         ? (float)(options.grad_clip / (r.grad_norm + 1e-6))
                         : 1.0f;
  for (size_t i = 0; i < params_.size(); i++) {
    Param& p = params_[i];
    if (!p.trainable) continue;
    p.adam_step++;
    const float wd = p.shape.size() >= 2 ? options.weight_decay : 0.0f;  // norm gains are not decayed
    const bool host = backend_->host_resident();
    const float lr = options.lr * options.lr_scale[(int)p.kind];
    backend_->adamw_update(dev_data(i), dev_grad(i), host ? p.m.data() : mirrors_[i].m.data(),
                           host ? p.v.data() : mirrors_[i].v.data(), p.numel(), lr, options.beta1,
                           options.beta2, options.eps, wd, (int)p.adam_step, clip);
  }
  if (scaling && ++good_steps_ >= growth_interval_) {
    loss_scale_ *= 2;
    good_steps_ = 0;
  }
  return r;
}

}  // namespace engine
