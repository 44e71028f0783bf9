// Rotary position embedding, HF rotate-half layout, with LongRoPE (MiniCPM 4.1 / Phi-3) scaling.
// Shapes: B batch, T tokens, H heads, D head dim; x (B, T, H, D); tables (max_seq, D).
// The tables follow HF's float32 arithmetic (inv_freq and position * inv_freq rounded to float,
// then cos/sin), so positions far into a long context land on the same angles as in PyTorch.
#include <cmath>
#include <stdexcept>
#include <string>

#include "op_checks.h"
#include "ops.h"
#include "parallel.h"

namespace engine {

namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument("rope: " + message);
}

// The factor list LongRoPE divides the inverse frequencies by, or nullptr for plain RoPE.
const std::vector<float>* longrope_factors(const RopeScaling& s, int head_dim, int max_seq) {
  if (s.kind != RopeScaling::longrope) return nullptr;
  require(s.original_max_position_embeddings > 0,
          "rope_scaling.original_max_position_embeddings must be positive for longrope");
  const int select = s.select_seq > 0 ? s.select_seq : max_seq;
  const bool use_long = select > s.original_max_position_embeddings;
  const std::vector<float>& f = use_long ? s.long_factor : s.short_factor;
  const char* name = use_long ? "long_factor" : "short_factor";
  require((int)f.size() == head_dim / 2, std::string("rope_scaling.") + name + " has " + std::to_string(f.size()) +
                                             " entries, expected head_dim / 2 = " + std::to_string(head_dim / 2));
  for (float x : f) require(x > 0 && std::isfinite(x), std::string("rope_scaling.") + name + " entries must be positive");
  return &f;
}

// HF: attention_factor if given, else sqrt(1 + log(s) / log(original)) with s = max / original (1 if s <= 1).
double longrope_attention_factor(const RopeScaling& s) {
  if (s.attention_factor > 0) return s.attention_factor;
  if (s.max_position_embeddings <= 0) return 1.0;
  const double scale = (double)s.max_position_embeddings / s.original_max_position_embeddings;
  if (scale <= 1.0) return 1.0;
  return std::sqrt(1.0 + std::log(scale) / std::log((double)s.original_max_position_embeddings));
}

}  // namespace

RopeTable rope_table(int head_dim, int max_seq, double theta, const RopeScaling& scaling) {
  require(head_dim > 0 && head_dim % 2 == 0, "head_dim must be a positive even number, got " + std::to_string(head_dim));
  require(max_seq >= 0, "max_seq must not be negative, got " + std::to_string(max_seq));
  require(theta > 0 && std::isfinite(theta), "rope_theta must be positive, got " + std::to_string(theta));
  const int half = head_dim / 2;
  const std::vector<float>* factors = longrope_factors(scaling, head_dim, max_seq);
  const double attention = factors ? longrope_attention_factor(scaling) : 1.0;

  // inv_freq[i] = 1 / (factor[i] * theta^(2i / D)), in float32 like torch.
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; i++) {
    const float exponent = (float)(2 * i) / (float)head_dim;
    float denom = std::pow((float)theta, exponent);
    if (factors) denom = (*factors)[i] * denom;
    inv_freq[i] = 1.0f / denom;
  }
  RopeTable t;
  t.head_dim = head_dim;
  t.max_seq = max_seq;
  t.cos.resize((size_t)max_seq * head_dim);
  t.sin.resize((size_t)max_seq * head_dim);
  for (int p = 0; p < max_seq; p++) {
    for (int i = 0; i < half; i++) {
      const float angle = (float)p * inv_freq[i];
      const float c = (float)(std::cos((double)angle) * attention), s = (float)(std::sin((double)angle) * attention);
      t.cos[(size_t)p * head_dim + i] = t.cos[(size_t)p * head_dim + i + half] = c;
      t.sin[(size_t)p * head_dim + i] = t.sin[(size_t)p * head_dim + i + half] = s;
    }
  }
  return t;
}

namespace {

// Rotates every head of every (b, t) row by the table at position t; sign = +1 forward, -1 backward
// (the transpose of a rotation is the rotation by the negated angle).
void rotate(float* x, int B, int T, int H, int D, const RopeTable& t, float sign) {
  const int half = D / 2;
  parallel_for((int64_t)B * T, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int pos = (int)(r % T);
      const float* c = t.cos.data() + (size_t)pos * D;
      const float* s = t.sin.data() + (size_t)pos * D;
      for (int h = 0; h < H; h++) {
        float* v = x + (r * H + h) * D;
        for (int i = 0; i < half; i++) {
          const float x1 = v[i], x2 = v[i + half], sn = sign * s[i];
          v[i] = x1 * c[i] - x2 * sn;
          v[i + half] = x2 * c[i + half] + x1 * sn;
        }
      }
    }
  });
}

}  // namespace

// x (B, T, H, D) in place
void rope_forward(float* x, int B, int T, int H, int D, const RopeTable& t) {
  check_rope_shape(T, D, t, "rope_forward");
  rotate(x, B, T, H, D, t, 1.0f);
}

// dx (B, T, H, D) in place: dL/dx = R^T dL/dout
void rope_backward(float* dx, int B, int T, int H, int D, const RopeTable& t) {
  check_rope_shape(T, D, t, "rope_backward");
  rotate(dx, B, T, H, D, t, -1.0f);
}

}  // namespace engine
