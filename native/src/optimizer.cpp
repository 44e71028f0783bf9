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

}  // namespace optimizer
}  // namespace engine
