// Per-token sparse causal attention (see token_sparse_attention.h).
#include "token_sparse_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel.h"

namespace engine {

namespace {

void check(const TokenBlockSelection* sels, int B, int H, int Hkv, int T, int D, const char* who) {
  if (!sels) throw std::invalid_argument(std::string(who) + ": no selections");
  if (B < 1 || T < 1 || D < 1 || Hkv < 1 || H % Hkv != 0)
    throw std::invalid_argument(std::string(who) + ": bad shape");
  for (int b = 0; b < B; b++)
    if (sels[b].T != T || sels[b].n_kv_heads != Hkv)
      throw std::invalid_argument(std::string(who) + ": selection " + std::to_string(b) + " is for T=" +
                                  std::to_string(sels[b].T) + ", " + std::to_string(sels[b].n_kv_heads) +
                                  " kv heads; attention has T=" + std::to_string(T) + ", " + std::to_string(Hkv));
}

// Calls fn(key token) for every selected causal key of query token t (ascending).
template <typename Fn>
void for_each_key(const TokenBlockSelection& s, int g, int t, Fn fn) {
  const int32_t* r = s.row(g, t);
  for (int i = 0; i < s.n(g, t); i++) {
    const int k0 = r[i] * s.block_size, k1 = std::min(t + 1, k0 + s.block_size);
    for (int j = k0; j < k1; j++) fn(j);
  }
}

}  // namespace

void token_sparse_attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B,
                                    int H, int Hkv, int T, int D, const TokenBlockSelection* sels) {
  check(sels, B, H, Hkv, T, D, "token_sparse_attention_forward");
  const int G = H / Hkv;
  const double scale = 1.0 / std::sqrt((double)D);
  parallel_for((int64_t)B * H * T, [&](int64_t r0, int64_t r1) {
    std::vector<double> s, acc(D);
    for (int64_t r = r0; r < r1; r++) {
      const int b = (int)(r / ((int64_t)H * T)), h = (int)(r / T % H), t = (int)(r % T), g = h / G;
      const float* qt = q + r * D;
      const float* kb = k + ((size_t)b * Hkv + g) * T * D;
      const float* vb = v + ((size_t)b * Hkv + g) * T * D;
      s.clear();
      double mx = -std::numeric_limits<double>::infinity();
      for_each_key(sels[b], g, t, [&](int j) {
        double dot = 0;
        for (int d = 0; d < D; d++) dot += (double)qt[d] * kb[(size_t)j * D + d];
        s.push_back(dot * scale);
        mx = std::max(mx, s.back());
      });
      double sum = 0;
      std::fill(acc.begin(), acc.end(), 0.0);
      size_t n = 0;
      for_each_key(sels[b], g, t, [&](int j) {
        const double p = std::exp(s[n++] - mx);
        sum += p;
        for (int d = 0; d < D; d++) acc[d] += p * vb[(size_t)j * D + d];
      });
      for (int d = 0; d < D; d++) out[r * D + d] = (float)(acc[d] / sum);
      lse[r] = (float)(mx + std::log(sum));
    }
  });
}

void token_sparse_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                     const float* k, const float* v, const float* out, const float* lse, int B, int H,
                                     int Hkv, int T, int D, const TokenBlockSelection* sels) {
  check(sels, B, H, Hkv, T, D, "token_sparse_attention_backward");
  const int G = H / Hkv;
  const double scale = 1.0 / std::sqrt((double)D);
  // p_tj = exp(scale q_t.k_j - lse_t); dS_tj = p_tj (dout_t.v_j - dout_t.out_t)
  auto ds_of = [&](int64_t r, int j, const float* kb, const float* vb, double delta) {
    const float* qt = q + r * D;
    const float* dot_ = dout + r * D;
    double qk = 0, dv_ = 0;
    for (int d = 0; d < D; d++) {
      qk += (double)qt[d] * kb[(size_t)j * D + d];
      dv_ += (double)dot_[d] * vb[(size_t)j * D + d];
    }
    const double p = std::exp(qk * scale - (double)lse[r]);
    return std::pair<double, double>{p, p * (dv_ - delta)};
  };
  auto delta_of = [&](int64_t r) {
    double dlt = 0;
    for (int d = 0; d < D; d++) dlt += (double)dout[r * D + d] * out[r * D + d];
    return dlt;
  };
  // dq per (b, h, t)
  parallel_for((int64_t)B * H * T, [&](int64_t r0, int64_t r1) {
    std::vector<double> acc(D);
    for (int64_t r = r0; r < r1; r++) {
      const int b = (int)(r / ((int64_t)H * T)), h = (int)(r / T % H), t = (int)(r % T), g = h / G;
      const float* kb = k + ((size_t)b * Hkv + g) * T * D;
      const float* vb = v + ((size_t)b * Hkv + g) * T * D;
      const double delta = delta_of(r);
      std::fill(acc.begin(), acc.end(), 0.0);
      for_each_key(sels[b], g, t, [&](int j) {
        const double ds = ds_of(r, j, kb, vb, delta).second;
        for (int d = 0; d < D; d++) acc[d] += ds * kb[(size_t)j * D + d];
      });
      for (int d = 0; d < D; d++) dq[r * D + d] = (float)(acc[d] * scale);
    }
  });
  // dk, dv per (b, kv head): the group's queries scatter into this head's keys only.
  parallel_for((int64_t)B * Hkv, [&](int64_t r0, int64_t r1) {
    std::vector<double> gk, gv;
    for (int64_t bg = r0; bg < r1; bg++) {
      const int b = (int)(bg / Hkv), g = (int)(bg % Hkv);
      const float* kb = k + (size_t)bg * T * D;
      const float* vb = v + (size_t)bg * T * D;
      gk.assign((size_t)T * D, 0.0);
      gv.assign((size_t)T * D, 0.0);
      for (int h = g * G; h < (g + 1) * G; h++)
        for (int t = 0; t < T; t++) {
          const int64_t r = ((int64_t)b * H + h) * T + t;
          const double delta = delta_of(r);
          const float* qt = q + r * D;
          const float* dot_ = dout + r * D;
          for_each_key(sels[b], g, t, [&](int j) {
            const auto [p, ds] = ds_of(r, j, kb, vb, delta);
            for (int d = 0; d < D; d++) {
              gk[(size_t)j * D + d] += ds * scale * qt[d];
              gv[(size_t)j * D + d] += p * dot_[d];
            }
          });
        }
      for (size_t i = 0; i < gk.size(); i++) {
        dk[(size_t)bg * T * D + i] = (float)gk[i];
        dv[(size_t)bg * T * D + i] = (float)gv[i];
      }
    }
  });
}

double token_sparse_attn_kl(float* dq_s, float* dk_s, float grad_scale, double* recall, const float* q_s,
                            const float* k_s, const float* q_t, const float* k_t, const float* lse_t, int B, int H,
                            int Hkv, int T, int D, const TokenBlockSelection* sels) {
  check(sels, B, H, Hkv, T, D, "token_sparse_attn_kl");
  const int G = H / Hkv;
  const int64_t rows = (int64_t)B * H * T;
  const double scale = 1.0 / std::sqrt((double)D);
  std::vector<double> kl_rows(rows), recall_rows(rows), lse_s(rows);
  auto dot = [&](const float* a, const float* b) {
    double s = 0;
    for (int d = 0; d < D; d++) s += (double)a[d] * b[d];
    return s;
  };
  // Row r's keys: student logits, log-probabilities of student and teacher.
  auto kv_of = [&](int64_t r, int* g_out) {
    const int b = (int)(r / ((int64_t)H * T)), h = (int)(r / T % H);
    *g_out = h / G;
    return (size_t)b * Hkv + h / G;
  };
  const double gs = (double)grad_scale / (double)rows;
  parallel_for(rows, [&](int64_t r0, int64_t r1) {
    std::vector<double> ls, lt;
    std::vector<int> keys;
    std::vector<double> acc(D);
    for (int64_t r = r0; r < r1; r++) {
      int g;
      const size_t bg = kv_of(r, &g);
      const int b = (int)(r / ((int64_t)H * T)), t = (int)(r % T);
      const float* ks = k_s + bg * T * D;
      const float* kt = k_t + bg * T * D;
      ls.clear(); lt.clear(); keys.clear();
      double mx = -std::numeric_limits<double>::infinity();
      for_each_key(sels[b], g, t, [&](int j) {
        keys.push_back(j);
        ls.push_back(dot(q_s + r * D, ks + (size_t)j * D) * scale);
        lt.push_back(dot(q_t + r * D, kt + (size_t)j * D) * scale - (double)lse_t[r]);
        mx = std::max(mx, ls.back());
      });
      double sum = 0;
      for (double x : ls) sum += std::exp(x - mx);
      const double lse = mx + std::log(sum);
      lse_s[r] = lse;
      double kl = 0, rec = 0;
      for (size_t i = 0; i < ls.size(); i++) {
        const double lp = ls[i] - lse;
        kl += std::exp(lp) * (lp - lt[i]);
        rec += std::exp(lt[i]);
      }
      kl_rows[r] = kl;
      recall_rows[r] = rec;
      if (!dq_s) continue;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (size_t i = 0; i < ls.size(); i++) {
        const double lp = ls[i] - lse, gj = std::exp(lp) * (lp - lt[i] - kl);
        for (int d = 0; d < D; d++) acc[d] += gj * ks[(size_t)keys[i] * D + d];
      }
      for (int d = 0; d < D; d++) dq_s[r * D + d] = (float)(acc[d] * scale * gs);
    }
  });
  if (dk_s) {
    parallel_for((int64_t)B * Hkv, [&](int64_t r0, int64_t r1) {
      std::vector<double> gk;
      for (int64_t bg = r0; bg < r1; bg++) {
        const int b = (int)(bg / Hkv), g = (int)(bg % Hkv);
        const float* ks = k_s + (size_t)bg * T * D;
        const float* kt = k_t + (size_t)bg * T * D;
        gk.assign((size_t)T * D, 0.0);
        for (int h = g * G; h < (g + 1) * G; h++)
          for (int t = 0; t < T; t++) {
            const int64_t r = ((int64_t)b * H + h) * T + t;
            for_each_key(sels[b], g, t, [&](int j) {
              const double lp = dot(q_s + r * D, ks + (size_t)j * D) * scale - lse_s[r];
              const double lt = dot(q_t + r * D, kt + (size_t)j * D) * scale - (double)lse_t[r];
              const double gj = std::exp(lp) * (lp - lt - kl_rows[r]) * scale * gs;
              for (int d = 0; d < D; d++) gk[(size_t)j * D + d] += gj * q_s[r * D + d];
            });
          }
        for (size_t i = 0; i < gk.size(); i++) dk_s[(size_t)bg * T * D + i] = (float)gk[i];
      }
    });
  }
  double kl = 0, rec = 0;
  for (int64_t r = 0; r < rows; r++) kl += kl_rows[r], rec += recall_rows[r];
  if (recall) *recall = rec / rows;
  return kl / rows;
}

}  // namespace engine
