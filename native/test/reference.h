// Naive float64 references for the engine's ops, and helpers shared by every native test:
// seeded random fills, float <-> double copies, central finite differences, bit equality.
// The references are written for clarity, not speed: one loop nest per definition, in double,
// so a float32 kernel can be compared to them with a tolerance chosen per test.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

namespace ref {

using Vec = std::vector<double>;

// ---------------------------------------------------------------------------- helpers

// Deterministic uniform values in [lo, hi) from a 64-bit LCG (same numbers on every platform).
inline std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> x(n);
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (auto& v : x) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v = lo + (hi - lo) * (float)((s >> 40) * (1.0 / 16777216.0));
  }
  return x;
}

inline std::vector<int> random_ints(size_t n, uint64_t seed, int lo, int hi /*exclusive*/) {
  std::vector<int> x(n);
  uint64_t s = seed * 2862933555777941757ull + 3037000493ull;
  for (auto& v : x) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v = lo + (int)((s >> 33) % (uint64_t)(hi - lo));
  }
  return x;
}

inline Vec to_double(const std::vector<float>& x) { return Vec(x.begin(), x.end()); }
inline std::vector<float> to_float(const Vec& x) { return std::vector<float>(x.begin(), x.end()); }

inline bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

inline double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
  return s;
}

// Central finite differences of a scalar function f at x, at the listed coordinates only:
// g[n] = (f(x + h e_i) - f(x - h e_i)) / 2h for i = at[n] (all of them for small inputs).
inline Vec numeric_grad_at(const std::function<double(const Vec&)>& f, Vec x, const std::vector<size_t>& at,
                           double h = 1e-6) {
  Vec g(at.size());
  for (size_t n = 0; n < at.size(); n++) {
    const size_t i = at[n];
    const double keep = x[i];
    x[i] = keep + h;
    const double up = f(x);
    x[i] = keep - h;
    const double down = f(x);
    x[i] = keep;
    g[n] = (up - down) / (2 * h);
  }
  return g;
}

// The same at every coordinate.
inline Vec numeric_grad(const std::function<double(const Vec&)>& f, Vec x, double h = 1e-6) {
  std::vector<size_t> all(x.size());
  for (size_t i = 0; i < all.size(); i++) all[i] = i;
  return numeric_grad_at(f, std::move(x), all, h);
}

// ---------------------------------------------------------------------------- gemm

// C (M, N) = alpha * op(A) op(B) + beta * C; trans_a: A stored (K, M); trans_b: B stored (N, K).
inline void gemm(bool trans_a, bool trans_b, int M, int N, int K, double alpha, const Vec& A, int lda, const Vec& B,
                 int ldb, double beta, Vec& C, int ldc) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int p = 0; p < K; p++)
        s += (trans_a ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p]) *
             (trans_b ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j]);
      double& c = C[(size_t)i * ldc + j];
      c = alpha * s + (beta == 0 ? 0.0 : beta * c);
    }
}

// out (N, OC) = inp (N, C) @ weight (OC, C)^T + bias (OC) (bias may be empty)
inline Vec linear(const Vec& inp, const Vec& weight, const Vec& bias, int N, int C, int OC) {
  Vec out((size_t)N * OC);
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = bias.empty() ? 0.0 : bias[o];
      for (int c = 0; c < C; c++) s += inp[(size_t)n * C + c] * weight[(size_t)o * C + c];
      out[(size_t)n * OC + o] = s;
    }
  return out;
}

// ---------------------------------------------------------------------------- elementwise / norms

// out (N, C) = table[tokens[n]] (table (V, C))
inline Vec embedding(const std::vector<int>& tokens, const Vec& table, int N, int C) {
  Vec out((size_t)N * C);
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) out[(size_t)n * C + c] = table[(size_t)tokens[n] * C + c];
  return out;
}

// out (N, C) = inp / sqrt(mean(inp^2) + eps) * weight (C)
inline Vec rmsnorm(const Vec& inp, const Vec& weight, int N, int C, double eps) {
  Vec out((size_t)N * C);
  for (int n = 0; n < N; n++) {
    double ss = 0;
    for (int c = 0; c < C; c++) ss += inp[(size_t)n * C + c] * inp[(size_t)n * C + c];
    const double r = 1.0 / std::sqrt(ss / C + eps);
    for (int c = 0; c < C; c++) out[(size_t)n * C + c] = inp[(size_t)n * C + c] * r * weight[c];
  }
  return out;
}

inline Vec swiglu(const Vec& gate, const Vec& up) {
  Vec out(gate.size());
  for (size_t i = 0; i < gate.size(); i++) out[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
  return out;
}

// ---------------------------------------------------------------------------- rope

// x (B, T, H, D) rotated in place with HF rotate-half: for i < D/2, with (c, s) = cos/sin tables
// (T, D) at [t][i] and [t][i + D/2]: x1' = x1*c - x2*s, x2' = x2*c + x1*s.
inline Vec rope(const Vec& x, int B, int T, int H, int D, const Vec& cos, const Vec& sin) {
  Vec out(x.size());
  const int half = D / 2;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int h = 0; h < H; h++) {
        const size_t base = (((size_t)b * T + t) * H + h) * D;
        for (int i = 0; i < half; i++) {
          const double x1 = x[base + i], x2 = x[base + i + half];
          out[base + i] = x1 * cos[(size_t)t * D + i] - x2 * sin[(size_t)t * D + i];
          out[base + i + half] = x2 * cos[(size_t)t * D + i + half] + x1 * sin[(size_t)t * D + i + half];
        }
      }
  return out;
}

// ---------------------------------------------------------------------------- attention

// Causal GQA softmax attention, scale 1/sqrt(D): q (B, H, T, D), k, v (B, Hkv, T, D) -> out (B, H, T, D);
// lse (B, H, T) = log sum_j exp(scale * q.k_j) when lse is non-null.
inline Vec attention(const Vec& q, const Vec& k, const Vec& v, int B, int H, int Hkv, int T, int D,
                     Vec* lse = nullptr) {
  Vec out((size_t)B * H * T * D, 0.0);
  if (lse) lse->assign((size_t)B * H * T, 0.0);
  const double scale = 1.0 / std::sqrt((double)D);
  const int group = H / Hkv;
  Vec p(T);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const size_t qh = ((size_t)b * H + h) * T * D, kh = ((size_t)b * Hkv + h / group) * T * D;
      for (int i = 0; i < T; i++) {
        double m = -INFINITY;
        for (int j = 0; j <= i; j++) {
          double s = 0;
          for (int d = 0; d < D; d++) s += q[qh + (size_t)i * D + d] * k[kh + (size_t)j * D + d];
          p[j] = s * scale;
          m = std::max(m, p[j]);
        }
        double sum = 0;
        for (int j = 0; j <= i; j++) sum += (p[j] = std::exp(p[j] - m));
        for (int j = 0; j <= i; j++)
          for (int d = 0; d < D; d++) out[qh + (size_t)i * D + d] += p[j] / sum * v[kh + (size_t)j * D + d];
        if (lse) (*lse)[((size_t)b * H + h) * T + i] = m + std::log(sum);
      }
    }
  return out;
}

// Gradients of L = sum(attention(q, k, v) * dout), written out from the definition:
// P = softmax(scale q k^T) over causal keys, dV = P^T dO, dP = dO V^T,
// dS = P * (dP - rowsum(P * dP)), dQ = scale dS K, dK = scale dS^T Q (GQA heads summed).
inline void attention_backward(Vec& dq, Vec& dk, Vec& dv, const Vec& dout, const Vec& q, const Vec& k, const Vec& v,
                               int B, int H, int Hkv, int T, int D) {
  dq.assign(q.size(), 0.0);
  dk.assign(k.size(), 0.0);
  dv.assign(v.size(), 0.0);
  const double scale = 1.0 / std::sqrt((double)D);
  const int group = H / Hkv;
  Vec p(T), dp(T);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const size_t qh = ((size_t)b * H + h) * T * D, kh = ((size_t)b * Hkv + h / group) * T * D;
      for (int i = 0; i < T; i++) {
        double m = -INFINITY;
        for (int j = 0; j <= i; j++) {
          double s = 0;
          for (int d = 0; d < D; d++) s += q[qh + (size_t)i * D + d] * k[kh + (size_t)j * D + d];
          p[j] = s * scale;
          m = std::max(m, p[j]);
        }
        double sum = 0;
        for (int j = 0; j <= i; j++) sum += (p[j] = std::exp(p[j] - m));
        double pdp = 0;
        for (int j = 0; j <= i; j++) {
          p[j] /= sum;
          double g = 0;
          for (int d = 0; d < D; d++) g += dout[qh + (size_t)i * D + d] * v[kh + (size_t)j * D + d];
          dp[j] = g;
          pdp += p[j] * g;
        }
        for (int j = 0; j <= i; j++) {
          const double ds = p[j] * (dp[j] - pdp) * scale;
          for (int d = 0; d < D; d++) {
            dq[qh + (size_t)i * D + d] += ds * k[kh + (size_t)j * D + d];
            dk[kh + (size_t)j * D + d] += ds * q[qh + (size_t)i * D + d];
            dv[kh + (size_t)j * D + d] += p[j] * dout[qh + (size_t)i * D + d];
          }
        }
      }
    }
}

// ---------------------------------------------------------------------------- cross entropy

// Mean over valid rows (target >= 0) of -log softmax(logits[n])[target[n]]; 0 when none are valid.
inline double cross_entropy(const Vec& logits, const std::vector<int>& targets, int N, int V) {
  double total = 0;
  int valid = 0;
  for (int n = 0; n < N; n++) {
    if (targets[n] < 0) continue;
    const double* row = logits.data() + (size_t)n * V;
    double m = -INFINITY;
    for (int i = 0; i < V; i++) m = std::max(m, row[i]);
    double s = 0;
    for (int i = 0; i < V; i++) s += std::exp(row[i] - m);
    total += m + std::log(s) - row[targets[n]];
    valid++;
  }
  return valid ? total / valid : 0.0;
}

}  // namespace ref
