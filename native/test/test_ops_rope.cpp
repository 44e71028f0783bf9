// RoPE tables (plain and LongRoPE as MiniCPM 4.1 / HF configure it) against closed-form float64
// values, rotate-half forward against the reference, backward against finite differences, and
// one-line errors for bad scaling configs.
#include <cmath>
#include <stdexcept>
#include <string>

#include "check.h"
#include "ops.h"
#include "reference.h"

using namespace engine;

namespace {

// cos/sin (T, D) in float64: angle p / (factor_i * theta^(2i/D)), times the attention factor.
void closed_form(int D, int T, double theta, const std::vector<float>* factors, double attention, ref::Vec& cos,
                 ref::Vec& sin) {
  cos.assign((size_t)T * D, 0.0);
  sin.assign((size_t)T * D, 0.0);
  for (int p = 0; p < T; p++)
    for (int i = 0; i < D / 2; i++) {
      const double f = factors ? (*factors)[i] : 1.0;
      const double angle = p / (f * std::pow(theta, 2.0 * i / D));
      cos[(size_t)p * D + i] = cos[(size_t)p * D + i + D / 2] = std::cos(angle) * attention;
      sin[(size_t)p * D + i] = sin[(size_t)p * D + i + D / 2] = std::sin(angle) * attention;
    }
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

RopeScaling longrope_config() {
  RopeScaling s;
  s.kind = RopeScaling::longrope;
  s.short_factor = {1.0f, 1.5f, 2.0f, 4.0f};
  s.long_factor = {1.0f, 3.0f, 8.0f, 20.0f};
  s.original_max_position_embeddings = 16;
  s.max_position_embeddings = 64;  // scale 4 -> attention factor sqrt(1 + ln 4 / ln 16) = sqrt(1.5)
  return s;
}

}  // namespace

TEST(rope_table_plain_matches_closed_form) {
  const int D = 16, T = 50;
  RopeTable t = rope_table(D, T, 10000.0, RopeScaling{});
  EXPECT(t.head_dim == D && t.max_seq == T);
  ref::Vec c, s;
  closed_form(D, T, 10000.0, nullptr, 1.0, c, s);
  // float32 rounding of inv_freq and p * inv_freq (as torch does): ~1e-7 relative angle error.
  EXPECT_CLOSE(t.cos.data(), c.data(), c.size(), 2e-5, 0.0);
  EXPECT_CLOSE(t.sin.data(), s.data(), s.size(), 2e-5, 0.0);
}

TEST(rope_table_longrope_short_and_long_factors_with_attention_factor) {
  const int D = 8;
  RopeScaling cfg = longrope_config();
  const double attention = std::sqrt(1.5);  // sqrt(1 + log(64/16) / log(16))
  ref::Vec c, s;
  // Table no longer than the original context: short factors.
  RopeTable short_t = rope_table(D, 16, 10000.0, cfg);
  closed_form(D, 16, 10000.0, &cfg.short_factor, attention, c, s);
  EXPECT_CLOSE(short_t.cos.data(), c.data(), c.size(), 1e-5, 0.0);
  EXPECT_CLOSE(short_t.sin.data(), s.data(), s.size(), 1e-5, 0.0);
  // Longer than the original: long factors.
  RopeTable long_t = rope_table(D, 40, 10000.0, cfg);
  closed_form(D, 40, 10000.0, &cfg.long_factor, attention, c, s);
  EXPECT_CLOSE(long_t.cos.data(), c.data(), c.size(), 1e-5, 0.0);
  EXPECT_CLOSE(long_t.sin.data(), s.data(), s.size(), 1e-5, 0.0);
  // MiniCPM's remote code picks by max_position_embeddings: select_seq forces long on a short table.
  cfg.select_seq = 64;
  RopeTable forced = rope_table(D, 16, 10000.0, cfg);
  closed_form(D, 16, 10000.0, &cfg.long_factor, attention, c, s);
  EXPECT_CLOSE(forced.cos.data(), c.data(), c.size(), 1e-5, 0.0);
  // An explicit attention_factor wins; no extension (max <= original) means factor 1.
  cfg.select_seq = 0;
  cfg.attention_factor = 0.5;
  RopeTable explicit_t = rope_table(D, 8, 10000.0, cfg);
  closed_form(D, 8, 10000.0, &cfg.short_factor, 0.5, c, s);
  EXPECT_CLOSE(explicit_t.cos.data(), c.data(), c.size(), 1e-5, 0.0);
  cfg.attention_factor = 0;
  cfg.max_position_embeddings = 16;
  RopeTable unscaled = rope_table(D, 8, 10000.0, cfg);
  closed_form(D, 8, 10000.0, &cfg.short_factor, 1.0, c, s);
  EXPECT_CLOSE(unscaled.sin.data(), s.data(), s.size(), 1e-5, 0.0);
}

TEST(rope_table_rejects_bad_configs_naming_the_field) {
  RopeScaling cfg = longrope_config();
  cfg.long_factor.pop_back();
  std::string e = error_of([&] { rope_table(8, 32, 10000.0, cfg); });
  EXPECT_MSG(e.find("long_factor") != std::string::npos && e.find("expected head_dim / 2 = 4") != std::string::npos, e);
  EXPECT(error_of([&] { rope_table(8, 8, 10000.0, cfg); }).empty());  // short table: long list unused
  cfg = longrope_config();
  cfg.short_factor[1] = -1.0f;
  e = error_of([&] { rope_table(8, 8, 10000.0, cfg); });
  EXPECT_MSG(e.find("short_factor") != std::string::npos, e);
  cfg = longrope_config();
  cfg.original_max_position_embeddings = 0;
  e = error_of([&] { rope_table(8, 8, 10000.0, cfg); });
  EXPECT_MSG(e.find("original_max_position_embeddings") != std::string::npos, e);
  e = error_of([&] { rope_table(7, 8, 10000.0, RopeScaling{}); });
  EXPECT_MSG(e.find("head_dim") != std::string::npos, e);
  e = error_of([&] { rope_table(8, 8, -1.0, RopeScaling{}); });
  EXPECT_MSG(e.find("rope_theta") != std::string::npos, e);
}

TEST(rope_forward_matches_reference_rotate_half) {
  const int B = 2, T = 9, H = 3, D = 8;
  RopeTable t = rope_table(D, 12, 10000.0, longrope_config());
  auto x = ref::random_floats((size_t)B * T * H * D, 1);
  auto want = ref::rope(ref::to_double(x), B, T, H, D, ref::to_double(t.cos), ref::to_double(t.sin));
  rope_forward(x.data(), B, T, H, D, t);
  EXPECT_CLOSE(x.data(), want.data(), x.size(), 1e-6, 1e-6);
}

TEST(rope_backward_matches_finite_differences) {
  const int B = 1, T = 5, H = 2, D = 6;
  RopeTable t = rope_table(D, T, 500.0, RopeScaling{});
  auto x = ref::random_floats((size_t)B * T * H * D, 2), dout = ref::random_floats(x.size(), 3);
  const auto cd = ref::to_double(t.cos), sd = ref::to_double(t.sin), dd = ref::to_double(dout);
  auto want = ref::numeric_grad([&](const ref::Vec& v) { return ref::dot(ref::rope(v, B, T, H, D, cd, sd), dd); },
                                ref::to_double(x));
  rope_backward(dout.data(), B, T, H, D, t);
  EXPECT_CLOSE(dout.data(), want.data(), dout.size(), 1e-6, 1e-5);
}

TEST(rope_rejects_sequences_longer_than_the_table) {
  RopeTable t = rope_table(8, 4, 10000.0, RopeScaling{});
  std::vector<float> x(5 * 8);
  std::string e = error_of([&] { rope_forward(x.data(), 1, 5, 1, 8, t); });
  EXPECT_MSG(e.find("max_seq = 4") != std::string::npos, e);
  e = error_of([&] { rope_backward(x.data(), 1, 4, 1, 10, t); });
  EXPECT_MSG(e.find("head_dim = 8") != std::string::npos, e);
}
