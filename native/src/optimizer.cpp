#include "optimizer.h"

namespace engine {
namespace optimizer {

void set_trainable(Param& p, bool trainable) {
  if (p.trainable == trainable) return;
  p.trainable = trainable;
  if (!trainable) {
    std::vector<float>().swap(p.grad);
    std::vector<float>().swap(p.m);
    std::vector<float>().swap(p.v);
    p.adam_step = 0;
  }
}

void ensure_buffers(Param& p) {
  if (!p.trainable || p.grad.size() == p.data.size()) return;
  p.grad.assign(p.data.size(), 0.0f);
  p.m.assign(p.data.size(), 0.0f);
  p.v.assign(p.data.size(), 0.0f);
  p.adam_step = 0;
}

void step(std::vector<Param>& params, const AdamWOptions& o, float grad_scale) {
  for (auto& p : params) {
    if (!p.trainable) continue;
    p.adam_step++;
    const float wd = p.shape.size() >= 2 ? o.weight_decay : 0.0f;
    adamw_update(p.data.data(), p.grad.data(), p.m.data(), p.v.data(), (int64_t)p.data.size(), o.lr, o.beta1, o.beta2,
                 o.eps, wd, (int)p.adam_step, grad_scale);
  }
}

}  // namespace optimizer
}  // namespace engine
