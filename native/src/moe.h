// Mixture-of-experts routing (Qwen3-MoE, as transformers' Qwen3MoeSparseMoeBlock): softmax of the
// router logits over every expert in fp32, top-k (ties go to the lower expert index), the chosen
// probabilities renormalised to sum 1 when norm_topk_prob. Design choices:
// - Routing runs on the host for every backend: each expert's GEMM needs its token count there
//   anyway, the logits are only N x E floats, and one implementation makes the tie-breaking (and
//   so every result) identical on the CPU and the GPU.
// - Tokens are grouped by expert: expert e's rows are [offset[e], offset[e+1]) of the grouped
//   order, in token order, so each expert runs one GEMM over its gathered rows and the weighted
//   sum back per token (moe_combine, a gather, not an atomic scatter) is deterministic.
#pragma once
#include <cstdint>
#include <vector>

#include "device_array.h"

namespace engine {

struct MoeRouting {
  int N = 0, E = 0, K = 0;
  std::vector<float> probs;       // (N, E) router softmax
  std::vector<int32_t> expert;    // (N, K) chosen experts, most probable first
  std::vector<float> weight;      // (N, K) their routing weights
  std::vector<int64_t> offset;    // (E + 1) start of each expert's rows in the grouped order
  std::vector<int32_t> rows;      // (N * K) token of each grouped row
  std::vector<int32_t> pos;       // (N, K) grouped row of each (token, slot)
  int64_t count(int e) const { return offset[e + 1] - offset[e]; }
};

// logits (N, E) on the host.
MoeRouting moe_route(const float* logits, int N, int E, int K, bool norm_topk_prob);

// Gradient w.r.t. the router logits (N, E), written: from dweight (N, K), the gradient w.r.t. the
// routing weights, plus dprobs (N, E, nullable), a gradient w.r.t. the softmax itself (the
// load-balancing terms). The top-k choice is piecewise constant and passes no gradient.
void moe_route_backward(float* dlogits, const MoeRouting& r, const float* dweight, const float* dprobs,
                        bool norm_topk_prob);

// Per expert: routed token-slots / (N * K). Mean over tokens of the softmax's entropy (nats).
std::vector<double> moe_usage(const MoeRouting& r);
double moe_routing_entropy(const MoeRouting& r);

// One MoE layer's forward values (backend memory unless named host).
struct MoeActs {
  MoeRouting routing;                     // host
  DeviceArray<float> logits;              // (N, E)
  DeviceArray<int32_t> rows, pos;         // routing.rows, routing.pos
  DeviceArray<float> weight;              // (N, K) routing.weight
  DeviceArray<float> xg;                  // (N*K, C) the normed input gathered in grouped order
  DeviceArray<float> gate, up, act;       // (N*K, Fm)
  DeviceArray<float> y;                   // (N*K, C) each expert's output
  std::vector<float> dprobs;              // host (N, E): the load-balancing gradient, or empty
};

}  // namespace engine
