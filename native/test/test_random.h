// Seeded random inputs for the native tests: one generator (the engine's splitmix64) so every
// test's data is the same on every machine and thread count.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>
#include "block_mask.h"

struct Rng {
  uint64_t s;
  double uniform() { return (double)(engine::splitmix64(s) >> 11) * (1.0 / 9007199254740992.0); }
  int below(int n) { return (int)(engine::splitmix64(s) % (uint64_t)n); }
  // Box-Muller: a standard normal from two uniforms.
  float normal() { return (float)(std::sqrt(-2.0 * std::log(uniform() + 1e-300)) * std::cos(6.283185307179586 * uniform())); }
};

inline std::vector<float> randn(size_t n, Rng& r, float scale = 1.0f) {
  std::vector<float> x(n);
  for (float& v : x) v = r.normal() * scale;
  return x;
}
