// Rotary position embedding, HF rotate-half layout, with the rope_scaling kinds of transformers
// (linear, dynamic NTK, YaRN, Llama 3, LongRoPE; see ops.h).
// Shapes: B batch, T tokens, H heads, D head dim; x (B, T, H, D); tables (max_seq, D).
// The tables follow HF's float32 arithmetic (inv_freq and position * inv_freq rounded to float,
// then cos/sin), so positions far into a long context land on the same angles as in PyTorch.
#include <algorithm>
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

bool finite_positive(double x) { return x > 0 && std::isfinite(x); }

// The factor list LongRoPE divides the inverse frequencies by.
const std::vector<float>& longrope_factors(const RopeScaling& s, int head_dim, int seq_len) {
  require(s.original_max_position_embeddings > 0,
          "rope_scaling.original_max_position_embeddings must be positive for longrope");
  const int select = s.select_seq > 0 ? s.select_seq : seq_len;
  const bool use_long = select > s.original_max_position_embeddings;
  const std::vector<float>& f = use_long ? s.long_factor : s.short_factor;
  const char* name = use_long ? "long_factor" : "short_factor";
  require((int)f.size() == head_dim / 2, std::string("rope_scaling.") + name + " has " + std::to_string(f.size()) +
                                             " entries, expected head_dim / 2 = " + std::to_string(head_dim / 2));
  for (float x : f) require(x > 0 && std::isfinite(x), std::string("rope_scaling.") + name + " entries must be positive");
  return f;
}

// HF: attention_factor if given, else sqrt(1 + log(s) / log(original)) with s = max / original (1 if s <= 1).
double longrope_attention_factor(const RopeScaling& s) {
  if (s.attention_factor > 0) return s.attention_factor;
  if (s.max_position_embeddings <= 0) return 1.0;
  const double scale = (double)s.max_position_embeddings / s.original_max_position_embeddings;
  if (scale <= 1.0) return 1.0;
  return std::sqrt(1.0 + std::log(scale) / std::log((double)s.original_max_position_embeddings));
}

double yarn_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

// theta^(2i / D) in float32, as torch computes base ** (arange(0, D, 2).float() / D).
std::vector<float> plain_denominators(int head_dim, double theta) {
  std::vector<float> out(head_dim / 2);
  for (int i = 0; i < head_dim / 2; i++) out[i] = std::pow((float)theta, (float)(2 * i) / (float)head_dim);
  return out;
}

void require_factor(const RopeScaling& s, const char* kind) {
  require(finite_positive(s.factor) && s.factor >= 1,
          std::string("rope_scaling.factor must be a number >= 1 for ") + kind + ", got " + std::to_string(s.factor));
}

}  // namespace

RopeFrequencies rope_frequencies(int head_dim, double theta, const RopeScaling& s, int seq_len) {
  require(head_dim > 0 && head_dim % 2 == 0, "head_dim must be a positive even number, got " + std::to_string(head_dim));
  require(finite_positive(theta), "rope_theta must be positive, got " + std::to_string(theta));
  const int half = head_dim / 2;
  RopeFrequencies out;
  out.inv_freq.resize(half);
  std::vector<float> denom = plain_denominators(head_dim, theta);
  switch (s.kind) {
    case RopeScaling::none:
      for (int i = 0; i < half; i++) out.inv_freq[i] = 1.0f / denom[i];
      break;
    case RopeScaling::linear:
      require_factor(s, "linear");
      for (int i = 0; i < half; i++) out.inv_freq[i] = (1.0f / denom[i]) / (float)s.factor;
      break;
    case RopeScaling::dynamic: {
      require_factor(s, "dynamic");
      require(s.max_position_embeddings > 0, "max_position_embeddings must be positive for dynamic rope_scaling");
      const double M = s.max_position_embeddings, L = std::max<double>(seq_len, M), D = head_dim;
      const double base = theta * std::pow(s.factor * L / M - (s.factor - 1), D / (D - 2));
      denom = plain_denominators(head_dim, base);
      for (int i = 0; i < half; i++) out.inv_freq[i] = 1.0f / denom[i];
      break;
    }
    case RopeScaling::yarn: {
      require(s.max_position_embeddings > 0, "max_position_embeddings must be positive for yarn rope_scaling");
      const double original = s.original_max_position_embeddings > 0 ? s.original_max_position_embeddings
                                                                      : s.max_position_embeddings;
      const double factor = s.factor;  // config.ts: rope_scaling.factor, else max / original (HF)
      require_factor(s, "yarn");
      require(finite_positive(s.beta_fast) && finite_positive(s.beta_slow),
              "rope_scaling.beta_fast and beta_slow must be positive for yarn");
      const double D = head_dim;
      auto correction_dim = [&](double rotations) {
        return D * std::log(original / (rotations * 2 * M_PI)) / (2 * std::log(theta));
      };
      double low = correction_dim(s.beta_fast), high = correction_dim(s.beta_slow);
      if (s.truncate) low = std::floor(low), high = std::ceil(high);
      low = std::max(low, 0.0);
      high = std::min(high, D - 1);
      if (low == high) high += 0.001;  // HF: prevents a singular ramp
      for (int i = 0; i < half; i++) {
        const float ramp = (float)std::min(1.0, std::max(0.0, ((double)i - low) / (high - low)));
        const float extrapolation = 1.0f - ramp;
        const float inv_extra = 1.0f / denom[i], inv_inter = 1.0f / ((float)factor * denom[i]);
        out.inv_freq[i] = inv_inter * (1.0f - extrapolation) + inv_extra * extrapolation;
      }
      if (s.attention_factor > 0) out.attention_factor = s.attention_factor;
      else if (s.mscale > 0 && s.mscale_all_dim > 0)
        out.attention_factor = yarn_mscale(factor, s.mscale) / yarn_mscale(factor, s.mscale_all_dim);
      else out.attention_factor = yarn_mscale(factor, 1.0);
      break;
    }
    case RopeScaling::llama3: {
      require_factor(s, "llama3");
      require(s.original_max_position_embeddings > 0,
              "rope_scaling.original_max_position_embeddings must be positive for llama3");
      require(finite_positive(s.low_freq_factor) && finite_positive(s.high_freq_factor) &&
                  s.high_freq_factor > s.low_freq_factor,
              "rope_scaling.high_freq_factor must exceed low_freq_factor (both positive) for llama3");
      const double old_context = s.original_max_position_embeddings;
      const double low_wavelen = old_context / s.low_freq_factor, high_wavelen = old_context / s.high_freq_factor;
      for (int i = 0; i < half; i++) {
        const double inv = 1.0f / denom[i];
        const double wavelen = 2 * M_PI / inv;
        double v = wavelen > low_wavelen ? inv / s.factor : inv;
        if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
          const double smooth = (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
          v = (1 - smooth) * v / s.factor + smooth * v;
        }
        out.inv_freq[i] = (float)v;
      }
      break;
    }
    case RopeScaling::longrope: {
      const std::vector<float>& f = longrope_factors(s, head_dim, seq_len);
      for (int i = 0; i < half; i++) out.inv_freq[i] = 1.0f / (f[i] * denom[i]);
      out.attention_factor = longrope_attention_factor(s);
      break;
    }
  }
  require(finite_positive(out.attention_factor), "rope_scaling.attention_factor must be positive");
  for (float x : out.inv_freq) require(finite_positive(x), "rope_scaling gives a non-finite or zero inverse frequency");
  return out;
}

RopeTable rope_table(int head_dim, int max_seq, double theta, const RopeScaling& scaling) {
  require(head_dim > 0 && head_dim % 2 == 0, "head_dim must be a positive even number, got " + std::to_string(head_dim));
  require(max_seq >= 0, "max_seq must not be negative, got " + std::to_string(max_seq));
  const int half = head_dim / 2;
  const RopeFrequencies freq =
      rope_frequencies(head_dim, theta, scaling, max_seq);
  const std::vector<float>& inv_freq = freq.inv_freq;
  const double attention = freq.attention_factor;
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
