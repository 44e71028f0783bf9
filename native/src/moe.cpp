// Mixture-of-experts layers: routing (moe.h), the MoE branch of a layer forward and backward, and
// the routing statistics and load-balancing terms of a step.
//   out = x + rs * sum over the chosen experts e of w_e * down_e(swiglu(gate_e(h), up_e(h))), h = norm(x)
// Each expert runs one GEMM per projection over its gathered rows (grouped order, moe.h).
#include "moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "model.h"
#include "model_acts.h"

namespace engine {

// ============================================================================ routing (host)

MoeRouting moe_route(const float* logits, int N, int E, int K, bool norm_topk_prob) {
  MoeRouting r;
  r.N = N; r.E = E; r.K = K;
  r.probs.resize((size_t)N * E);
  r.expert.resize((size_t)N * K);
  r.weight.resize((size_t)N * K);
  std::vector<int> order(E);
  for (int n = 0; n < N; n++) {
    const float* z = logits + (size_t)n * E;
    float* p = r.probs.data() + (size_t)n * E;
    const float m = *std::max_element(z, z + E);
    double sum = 0;
    for (int e = 0; e < E; e++) sum += std::exp((double)z[e] - m);
    for (int e = 0; e < E; e++) p[e] = (float)(std::exp((double)z[e] - m) / sum);
    std::iota(order.begin(), order.end(), 0);
    // Stable: equal probabilities keep the lower expert index first.
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
    double chosen = 0;
    for (int j = 0; j < K; j++) chosen += p[order[j]];
    for (int j = 0; j < K; j++) {
      r.expert[(size_t)n * K + j] = order[j];
      r.weight[(size_t)n * K + j] = norm_topk_prob ? (float)(p[order[j]] / chosen) : p[order[j]];
    }
  }
  r.offset.assign(E + 1, 0);
  for (int32_t e : r.expert) r.offset[e + 1]++;
  for (int e = 0; e < E; e++) r.offset[e + 1] += r.offset[e];
  r.rows.resize((size_t)N * K);
  r.pos.resize((size_t)N * K);
  std::vector<int64_t> next(r.offset.begin(), r.offset.end() - 1);
  for (int n = 0; n < N; n++)  // token order within each expert
    for (int j = 0; j < K; j++) {
      const int64_t row = next[r.expert[(size_t)n * K + j]]++;
      r.rows[row] = n;
      r.pos[(size_t)n * K + j] = (int32_t)row;
    }
  return r;
}

// w_j = p_j / Z (Z = sum of the chosen p) when renormalised: dp_j = (dw_j - sum_i dw_i w_i) / Z.
// Softmax: dz_e = p_e (dp_e - sum_f p_f dp_f).
void moe_route_backward(float* dlogits, const MoeRouting& r, const float* dweight, const float* dprobs,
                        bool norm_topk_prob) {
  const int E = r.E, K = r.K;
  std::vector<double> dp(E);
  for (int n = 0; n < r.N; n++) {
    const float* p = r.probs.data() + (size_t)n * E;
    for (int e = 0; e < E; e++) dp[e] = dprobs ? dprobs[(size_t)n * E + e] : 0.0;
    const int32_t* ex = r.expert.data() + (size_t)n * K;
    const float* dw = dweight + (size_t)n * K;
    if (norm_topk_prob) {
      double Z = 0, dot = 0;
      for (int j = 0; j < K; j++) Z += p[ex[j]];
      for (int j = 0; j < K; j++) dot += (double)dw[j] * r.weight[(size_t)n * K + j];
      for (int j = 0; j < K; j++) dp[ex[j]] += (dw[j] - dot) / Z;
    } else {
      for (int j = 0; j < K; j++) dp[ex[j]] += dw[j];
    }
    double s = 0;
    for (int e = 0; e < E; e++) s += p[e] * dp[e];
    for (int e = 0; e < E; e++) dlogits[(size_t)n * E + e] = (float)(p[e] * (dp[e] - s));
  }
}

std::vector<double> moe_usage(const MoeRouting& r) {
  std::vector<double> u(r.E);
  for (int e = 0; e < r.E; e++) u[e] = (double)r.count(e) / ((double)r.N * r.K);
  return u;
}

double moe_routing_entropy(const MoeRouting& r) {
  double total = 0;
  for (size_t i = 0; i < r.probs.size(); i++)
    if (r.probs[i] > 0) total -= r.probs[i] * std::log((double)r.probs[i]);
  return total / r.N;
}

// ============================================================================ the MoE branch

void Model::moe_forward(Activations& a, int l, const float* x, float* out, bool teacher) const {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  Backend* bp = backend_.get();
  const int N = a.B * a.T, C = c.hidden_size, E = c.num_experts, K = c.num_experts_per_tok,
            Fm = c.moe_intermediate_size;
  const int64_t M = (int64_t)N * K;
  auto w = [&](size_t i) { return dev_weights(i, teacher); };
  const LayerParams& lp = layers_[l];
  LayerActs& work = teacher ? a.layers[0] : a.layers[l];
  MoeActs& m = work.moe;
  work.ln2.resize(bp, (int64_t)N * C); work.ln2_rstd.resize(bp, N);
  be.rmsnorm_forward(work.ln2.data(), work.ln2_rstd.data(), x, w(lp.ln2), N, C, c.rms_norm_eps);

  m.logits.resize(bp, (int64_t)N * E);
  be.matmul_forward(m.logits.data(), work.ln2.data(), w(lp.router), N, C, E);
  std::vector<float> staging;
  m.routing = moe_route(host_view(m.logits.data(), (int64_t)N * E, staging), N, E, K, c.norm_topk_prob);
  const MoeRouting& r = m.routing;
  m.rows.resize(bp, M); m.pos.resize(bp, M); m.weight.resize(bp, M);
  be.upload(m.rows.data(), r.rows.data(), (int64_t)sizeof(int32_t) * M);
  be.upload(m.pos.data(), r.pos.data(), (int64_t)sizeof(int32_t) * M);
  be.upload(m.weight.data(), r.weight.data(), (int64_t)sizeof(float) * M);

  m.xg.resize(bp, M * C); m.y.resize(bp, M * C);
  m.gate.resize(bp, M * Fm); m.up.resize(bp, M * Fm); m.act.resize(bp, M * Fm);
  be.moe_gather_rows(m.xg.data(), work.ln2.data(), m.rows.data(), M, C);
  for (int e = 0; e < E; e++) {
    const int64_t o = r.offset[e], n = r.count(e);
    if (n == 0) continue;
    be.matmul_forward(m.gate.data() + o * Fm, m.xg.data() + o * C, w(lp.expert_gate[e]), (int)n, C, Fm);
    be.matmul_forward(m.up.data() + o * Fm, m.xg.data() + o * C, w(lp.expert_up[e]), (int)n, C, Fm);
  }
  be.swiglu_forward(m.act.data(), m.gate.data(), m.up.data(), M * Fm);
  for (int e = 0; e < E; e++) {
    const int64_t o = r.offset[e], n = r.count(e);
    if (n > 0) be.matmul_forward(m.y.data() + o * C, m.act.data() + o * Fm, w(lp.expert_down[e]), (int)n, Fm, C);
  }
  be.fill(a.scratch.data(), 0.0f, (int64_t)N * C);
  be.moe_combine(a.scratch.data(), m.y.data(), m.pos.data(), m.weight.data(), N, K, C);
  be.add_scaled(out, x, a.scratch.data(), c.residual_scale, (int64_t)N * C);
}

void Model::moe_backward(Activations& a, int l, BackwardBuffers& g) {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  Backend* bp = backend_.get();
  const int N = a.B * a.T, C = c.hidden_size, E = c.num_experts, K = c.num_experts_per_tok,
            Fm = c.moe_intermediate_size;
  const int64_t M = (int64_t)N * K;
  auto dw = [&](size_t i) { return dev_grad(i); };
  auto w = [&](size_t i) { return dev_weights(i, false); };
  const LayerParams& lp = layers_[l];
  LayerActs& la = a.layers[l];
  MoeActs& m = la.moe;
  const MoeRouting& r = m.routing;
  g.moe_dy.resize(bp, M * C); g.moe_dx.resize(bp, M * C);
  g.moe_dact.resize(bp, M * Fm); g.moe_dgate.resize(bp, M * Fm); g.moe_dup.resize(bp, M * Fm);
  g.moe_dweight.resize(bp, M); g.moe_dlogits.resize(bp, (int64_t)N * E);

  be.scale(g.dbranch.data(), g.dres.data(), c.residual_scale, (int64_t)N * C);
  be.moe_combine_backward(g.moe_dy.data(), g.moe_dweight.data(), g.dbranch.data(), m.y.data(), m.pos.data(),
                          m.weight.data(), N, K, C);
  be.fill(g.moe_dact.data(), 0.0f, M * Fm);
  for (int e = 0; e < E; e++) {
    const int64_t o = r.offset[e], n = r.count(e);
    if (n > 0)
      linear_backward(g.moe_dact.data() + o * Fm, lp.expert_down[e], g.moe_dy.data() + o * C, m.act.data() + o * Fm,
                      w(lp.expert_down[e]), (int)n, Fm, C);
  }
  be.swiglu_backward(g.moe_dgate.data(), g.moe_dup.data(), g.moe_dact.data(), m.gate.data(), m.up.data(), M * Fm);
  be.fill(g.moe_dx.data(), 0.0f, M * C);
  for (int e = 0; e < E; e++) {
    const int64_t o = r.offset[e], n = r.count(e);
    if (n == 0) continue;
    linear_backward(g.moe_dx.data() + o * C, lp.expert_gate[e], g.moe_dgate.data() + o * Fm, m.xg.data() + o * C,
                    w(lp.expert_gate[e]), (int)n, C, Fm);
    linear_backward(g.moe_dx.data() + o * C, lp.expert_up[e], g.moe_dup.data() + o * Fm, m.xg.data() + o * C,
                    w(lp.expert_up[e]), (int)n, C, Fm);
  }
  be.fill(g.dln.data(), 0.0f, g.dln.size());
  be.moe_combine(g.dln.data(), g.moe_dx.data(), m.pos.data(), nullptr, N, K, C);

  // The router: through the routing weights (and the load-balancing term) to the logits, on the host.
  std::vector<float> staging, dlogits((size_t)N * E);
  const float* dweight = host_view(g.moe_dweight.data(), M, staging);
  moe_route_backward(dlogits.data(), r, dweight, m.dprobs.empty() ? nullptr : m.dprobs.data(), c.norm_topk_prob);
  be.upload(g.moe_dlogits.data(), dlogits.data(), (int64_t)sizeof(float) * dlogits.size());
  linear_backward(g.dln.data(), lp.router, g.moe_dlogits.data(), la.ln2.data(), w(lp.router), N, C, E);
  be.rmsnorm_backward(g.dres.data(), dw(lp.ln2), g.dln.data(), la.resid_mid.data(), w(lp.ln2), la.ln2_rstd.data(), N,
                      C);
}

// ============================================================================ statistics and load balance

MoeStats Model::moe_stats(const LoadBalance& lb, float grad_scale) {
  MoeStats s;
  const ModelConfig& c = config_;
  std::vector<MoeActs*> layers;
  for (int l = 0; l < c.num_layers; l++)
    if (c.is_moe_layer(l)) {
      s.layers.push_back(l);
      layers.push_back(&acts_->layers[l].moe);
    }
  if (layers.empty()) {
    if (lb.kind != LoadBalance::none)
      throw std::invalid_argument("options.load_balance: this model has no mixture-of-experts layers");
    return s;
  }
  s.present = true;
  const int E = c.num_experts, nl = (int)layers.size();
  const int N = layers[0]->routing.N;
  // transformers' load_balancing_loss_func: over the rows of every MoE layer together,
  // E * sum_e f_e P_e, f_e = routed slots of e / rows, P_e = mean probability of e.
  const double rows = (double)N * nl;
  std::vector<double> f(E, 0), P(E, 0);
  for (MoeActs* m : layers) {
    const MoeRouting& r = m->routing;
    for (int e = 0; e < E; e++) f[e] += r.count(e) / rows;
    for (int n = 0; n < N; n++)
      for (int e = 0; e < E; e++) P[e] += r.probs[(size_t)n * E + e] / rows;
    s.usage.push_back(moe_usage(r));
    s.entropy.push_back(moe_routing_entropy(r));
  }
  for (int e = 0; e < E; e++) s.aux_loss += E * f[e] * P[e];

  const float weight =
      lb.weight >= 0 ? lb.weight : (lb.kind == LoadBalance::seed ? 0.01f : c.router_aux_loss_coef);
  const bool grad = lb.kind != LoadBalance::none && weight != 0 && grad_scale != 0;
  std::vector<std::vector<double>> dp_per_layer(nl, std::vector<double>(E, 0));  // d term / d p[n, e], same for every n
  if (lb.kind == LoadBalance::switch_aux) {
    s.load_balance_loss = weight * s.aux_loss;
    for (auto& dp : dp_per_layer)
      for (int e = 0; e < E; e++) dp[e] = weight * E * f[e] / rows;
  } else if (lb.kind == LoadBalance::seed) {
    // Per layer: Var(u) + mean |u - 1/E| on the soft usage u_e = mean_n p[n, e] (sum 1, mean 1/E).
    double total = 0;
    for (int i = 0; i < nl; i++) {
      const MoeRouting& r = layers[i]->routing;
      double var = 0, dev = 0;
      for (int e = 0; e < E; e++) {
        double u = 0;
        for (int n = 0; n < N; n++) u += r.probs[(size_t)n * E + e];
        u /= N;
        const double d = u - 1.0 / E;
        var += d * d / E;
        dev += std::fabs(d) / E;
        const double sign = d > 0 ? 1 : (d < 0 ? -1 : 0);
        dp_per_layer[i][e] = weight / nl * (2 * d / E + sign / E) / N;
      }
      total += var + dev;
    }
    s.load_balance_loss = weight * total / nl;
  }
  for (int i = 0; i < nl; i++) {
    std::vector<float>& dprobs = layers[i]->dprobs;
    dprobs.clear();
    if (!grad) continue;
    dprobs.resize((size_t)N * E);
    for (int n = 0; n < N; n++)
      for (int e = 0; e < E; e++) dprobs[(size_t)n * E + e] = (float)(dp_per_layer[i][e] * grad_scale);
  }
  return s;
}

}  // namespace engine
