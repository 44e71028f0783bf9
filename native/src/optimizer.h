// AdamW state of the model's parameter groups: only trainable tensors own grad and moment buffers
// (frozen ones cost no optimiser memory and are never written), each tensor keeps its own step
// count (PyTorch semantics, so a tensor unfrozen late starts its bias correction afresh), and
// weight decay applies to matrices only (norm gains are not decayed).
#pragma once
#include <vector>

#include "model.h"

namespace engine {
namespace optimizer {

// Marks the tensor trainable or frozen; freezing frees its grad and moments (and resets its step).
void set_trainable(Param& p, bool trainable);

// Allocates zeroed grad/m/v for a trainable tensor that has none yet. Buffers are made lazily, at
// the first gradient computation, so loading a model (all tensors trainable until a pipeline
// freezes them) or evaluating it never costs optimiser memory.
void ensure_buffers(Param& p);

}  // namespace optimizer
}  // namespace engine
