// One-pass flash attention backward, shared by the dense (attention.cpp) and block-sparse
// (blocksparse_attention.cpp) causal kernels; FlashAttention-2's order of work.
//
// A task is one key block of one KV head. For every query span that attends to the block (over
// the query heads of its GQA group) it recomputes P = exp(scale Q K^T - lse) from the forward's
// log-sum-exp and adds
//   dV += P^T dO,  dS = P * (dO V^T - delta),  dK += scale dS^T Q,  dQ += scale dS K
// with delta = rowsum(dO * O): every (query, key) tile is visited once, 5 tile GEMMs (the forward
// does 2), where a two-pass backward needs 7.
//
// dK and dV of a key block are complete inside its task. dQ rows collect from many key blocks:
// the ordered task list (kv unit = (batch, kv head) major, key block ascending) is cut into two
// contiguous pieces per thread of about equal cost, which threads take as they come free. A
// piece adds straight into dq for the units it begins, and into its own zeroed buffer for the
// unit it continues from the piece before; the buffers are added in piece order at the end. Only
// the cut (a function of the thread count and the costs), not which thread ran a piece, decides
// the order of the additions, so results are bit-identical run to run for a fixed thread count.
// Shapes as in ops.h: q, out, dout, dq (B, H, T, D); k, v, dk, dv (B, Hkv, T, D); lse (B, H, T).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

namespace engine {
namespace flash_backward {

// Query rows [q0, q0 + rows) of one query head.
struct RowSpan {
  int q0, rows;
};

struct Tensors {
  const float *dout, *q, *k, *v, *out, *lse;
  int B, H, Hkv, T, D;
};

// Fills `spans` (cleared by the caller) with the ascending query spans of group head g (0 ..
// H/Hkv - 1) that attend to the key block of `task`; causality inside a span is applied per token.
// Spans must not start before the key block (causal: earlier queries never read it).
using SpansFn = std::function<void(int64_t task, int g, std::vector<RowSpan>& spans)>;

// Writes dq, dk, dv (overwritten, not accumulated). Task t is key block t % n_blocks (keys
// [j * block_size, min(T, (j + 1) * block_size))) of kv unit t / n_blocks = b * Hkv + kv head;
// cost (B * Hkv * n_blocks) is each task's relative work, used only to cut the pieces.
void run(float* dq, float* dk, float* dv, const Tensors& x, int block_size, const std::vector<int64_t>& cost,
         const SpansFn& spans);

}  // namespace flash_backward
}  // namespace engine
