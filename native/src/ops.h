// The CPU op interface of the engine: every dense op the model needs, forward and backward.
// Design choices:
// - float32, row-major, Hugging Face conventions (Linear weight is (out, in); RoPE is rotate-half).
// - All ops live in namespace engine and run on the ThreadPool (parallel.h) with a static
//   partition, never splitting a reduction across threads: same inputs and thread count give
//   bit-identical results.
// - Hot kernels have AVX-512 / AVX2+FMA / scalar variants picked at run time (simd.h).
// - Backward functions say whether they accumulate (+=) or overwrite; callers zero grads once
//   per step and let the accumulating ones add into them.
// Shape letters: B batch, T tokens, H query heads, Hkv key/value heads, D head dim,
// N rows (B*T), C channels, OC output channels, V vocab.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace engine {

// ---------------------------------------------------------------------------- matmul / GEMM
// Linear, HF layout: out (N, OC) = inp (N, C) @ weight (OC, C)^T [+ bias (OC)]; bias may be nullptr.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC);
// Accumulates (+=) into dinp (N, C) and dweight (OC, C); either may be nullptr to skip.
// accumulate_dweight false overwrites dweight instead (its old contents, even NaN, ignored).
// dout (N, OC), inp (N, C), weight (OC, C). (No bias gradient: the supported models have none.)
void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, int N,
                     int C, int OC, bool accumulate_dweight = true);
// General row-major SGEMM: C (M, N) = alpha * op(A) op(B) + beta * C, op(A) (M, K), op(B) (K, N).
// trans_a: A is stored (K, M); trans_b: B is stored (N, K). beta == 0 ignores C's old contents (NaN-safe).
void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
           int ldb, float beta, float* C, int ldc);

// ---------------------------------------------------------------------------- embedding
// out (N, C) = table[tokens[n]]; table (V, C). Token ids are trusted (the model checks them).
void embedding_forward(float* out, const int* tokens, const float* table, int N, int C);
// dtable (V, C) += dout (N, C) scattered by tokens; deterministic (rows added in token order).
void embedding_backward(float* dtable, const float* dout, const int* tokens, int N, int C);

// ---------------------------------------------------------------------------- rmsnorm
// out (N, C) = inp * rstd * weight, rstd (N) = 1 / sqrt(mean(inp^2) + eps) (saved for backward).
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps);
// Accumulates (+=) into dinp (N, C) and dweight (C); dweight may be nullptr (frozen norm).
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C);

// ---------------------------------------------------------------------------- rope
// rope_scaling from a HF config.json, computed as transformers' modeling_rope_utils does
// (_compute_<kind>_parameters): inverse frequencies per dimension pair, and an attention factor that
// multiplies cos/sin.
// - linear: inv_freq / factor.
// - dynamic (NTK): base * (factor * L / M - (factor - 1))^(D / (D - 2)), L = the current length,
//   M = max_position_embeddings; L <= M leaves plain RoPE.
// - yarn: interpolated (/ factor) and extrapolated frequencies blended by a linear ramp between the
//   correction dims of beta_fast and beta_slow over original_max_position_embeddings (floor/ceil when
//   truncate; original defaults to max_position_embeddings); attention factor given, else mscale(factor, mscale) / mscale(factor, mscale_all_dim) when both
//   are set, else 0.1 ln(factor) + 1.
// - llama3 (Llama 3.1+): wavelengths above original / low_freq_factor divided by factor, below
//   original / high_freq_factor kept, smoothed in between.
// - longrope (MiniCPM 4.1, Phi-3): divided by long_factor when the length is above
//   original_max_position_embeddings, else by short_factor; attention factor given, else
//   sqrt(1 + log(s) / log(original)), s = max_position_embeddings / original, 1 when s <= 1.
struct RopeScaling {
  enum Kind { none, linear, dynamic, yarn, llama3, longrope } kind = none;
  double factor = 1;                                  // linear, dynamic, yarn, llama3
  double low_freq_factor = 1, high_freq_factor = 4;   // llama3
  double beta_fast = 32, beta_slow = 1;               // yarn
  double mscale = 0, mscale_all_dim = 0;              // yarn; 0 = unset
  bool truncate = true;                               // yarn
  std::vector<float> short_factor, long_factor;  // longrope: head_dim / 2 entries each
  int original_max_position_embeddings = 0;      // yarn (0 = max_position_embeddings), llama3, longrope
  int max_position_embeddings = 0;  // the model's (extended) context length
  double attention_factor = 0;      // yarn, longrope; <= 0: derive it (see above)
  // Length that selects long vs short factors (longrope) instead of the current one; 0 = the
  // current length. MiniCPM's remote code builds its cache for max_position_embeddings (so always
  // long); HF's generic LongRoPE uses the input length.
  int select_seq = 0;
};
// Inverse frequencies (head_dim / 2, float as torch computes them) and the cos/sin attention factor
// for a sequence of `seq_len` tokens (the current length of dynamic and longrope; rope_table passes
// its max_seq). Throws std::invalid_argument naming rope_scaling.<field>.
struct RopeFrequencies {
  std::vector<float> inv_freq;
  double attention_factor = 1;
};
RopeFrequencies rope_frequencies(int head_dim, double theta, const RopeScaling& scaling, int seq_len);
// cos/sin tables (max_seq, head_dim), rotate-half layout: entry [p][i] and [p][i + D/2] share frequency i.
struct RopeTable {
  int head_dim = 0, max_seq = 0;
  std::vector<float> cos, sin;
};
// Throws std::invalid_argument with a one-line message on a bad head_dim, theta or factor list.
RopeTable rope_table(int head_dim, int max_seq, double theta, const RopeScaling& scaling);
// In place, x (B, T, H, D), HF rotate-half, positions 0..T-1 (T <= t.max_seq, D == t.head_dim).
void rope_forward(float* x, int B, int T, int H, int D, const RopeTable& t);
// In place: dx (B, T, H, D) becomes the gradient w.r.t. the pre-rotation input (the inverse rotation).
void rope_backward(float* dx, int B, int T, int H, int D, const RopeTable& t);

// ---------------------------------------------------------------------------- attention
// Causal grouped-query flash attention, scale 1/sqrt(D), query head h reads kv head h / (H / Hkv).
// q (B, H, T, D), k, v (B, Hkv, T, D), out (B, H, T, D), lse (B, H, T) = log sum_j exp(scale * q.k_j)
// (natural log, of the scaled scores, saved for backward).
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B, int H, int Hkv,
                       int T, int D);
// Overwrites dq (B, H, T, D), dk, dv (B, Hkv, T, D). dout, out (B, H, T, D), lse (B, H, T) from forward.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, int B, int H, int Hkv, int T, int D);

// ---------------------------------------------------------------------------- swiglu
// out (n) = silu(gate) * up, silu(x) = x * sigmoid(x).
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);
// Overwrites dgate (n) and dup (n).
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);


// ---------------------------------------------------------------------------- mixture of experts
// Rows of a grouped-by-expert layout (moe.h): pos (N, K) names the grouped row of each (token, slot).
// out (M, C)[i] = x[rows[i]] (overwritten).
void moe_gather_rows(float* out, const float* x, const int32_t* rows, int64_t M, int C);
// out (N, C)[n] += sum over j < K of weight[n, j] * y[pos[n, j]] (weight nullptr: 1), slots in
// order: the experts' weighted sum per token, and (weight 1) the gathered rows' gradient back.
void moe_combine(float* out, const float* y, const int32_t* pos, const float* weight, int N, int K, int C);
// Backward of moe_combine, overwriting: dy[pos[n, j]] = weight[n, j] * dout[n] and
// dweight (N, K)[n, j] = dot(dout[n], y[pos[n, j]]) (accumulated in double).
void moe_combine_backward(float* dy, float* dweight, const float* dout, const float* y, const int32_t* pos,
                          const float* weight, int N, int K, int C);
// ---------------------------------------------------------------------------- cross entropy
// Fused softmax + cross-entropy over logits (N, V), targets (N) with target < 0 = ignored.
// Returns the mean loss over valid targets (0 when none); writes dlogits (N, V) =
// (softmax - onehot) * dscale / valid_count, zero rows for ignored targets. dlogits may alias logits.
float cross_entropy_forward_backward(float* dlogits, const float* logits, const int* targets, int N, int V,
                                     float dscale);
// Mean loss only (same definition).
float cross_entropy_forward(const float* logits, const int* targets, int N, int V);

// ---------------------------------------------------------------------------- adamw
// PyTorch AdamW: p -= lr*wd*p; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
// p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps), with g = grad * grad_scale.
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, int step /*1-based*/, float grad_scale /*clip factor*/);
// Sum of squares in double, deterministic (fixed blocking independent of thread count), for the global norm.
double sum_squares(const float* x, int64_t n);

// ---------------------------------------------------------------------------- simd
// "avx512" | "avx2" | "scalar": the level the kernels use (run-time detected, or forced for tests).
const char* simd_level();
// Forces a level ("scalar", "avx2", "avx512") no higher than the CPU supports, or "auto" to re-detect.
// Returns false (and changes nothing) for an unknown or unsupported level.
bool set_simd_level_for_testing(const std::string& level);

}  // namespace engine
