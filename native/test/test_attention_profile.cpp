// The teacher's attention profile (attention_profile.h): row block masses, the floor of a mask
// against attention_metrics of the teacher restricted to it, and the oracle's masks against
// random masks of the same density.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "attention_metrics.h"
#include "attention_profile.h"
#include "block_mask.h"
#include "check.h"
#include "test_random.h"

using namespace engine;

namespace {

// A random causal mask (diagonal kept) with `extra` off-diagonal pairs, as bits and as join level 0.
struct RandomMask { BlockMask mask; std::vector<int32_t> join; };
RandomMask random_mask(Rng& r, int M, int T, int bs, int64_t extra) {
  const int nb = profile_blocks(T, bs), words = (nb + 63) / 64;
  std::vector<std::pair<int, int>> off;  // (mask head * nb + i, j)
  for (int m = 0; m < M; m++)
    for (int i = 0; i < nb; i++)
      for (int j = 0; j < i; j++) off.push_back({m * nb + i, j});
  for (size_t a = off.size(); a > 1; a--) std::swap(off[a - 1], off[(size_t)(r.uniform() * a) % a]);
  std::vector<uint64_t> bits((size_t)M * nb * words, 0);
  std::vector<int32_t> join((size_t)M * nb * nb, -1);
  for (int m = 0; m < M; m++)
    for (int i = 0; i < nb; i++) join[((size_t)m * nb + i) * nb + i] = 0;
  for (int64_t e = 0; e < extra; e++) {
    const auto [row, j] = off[e];
    bits[(size_t)row * words + j / 64] |= 1ull << (j % 64);
    join[(size_t)row * nb + j] = 0;
  }
  return {block_mask_from_bits(bits, T, bs, M), join};
}

}  // namespace

TEST(profile_row_masses_sum_to_one_and_pool_per_query_block) {
  Rng r{11};
  const int B = 2, H = 4, Hkv = 2, T = 16 * 5 + 7, D = 16, bs = 16, nb = profile_blocks(T, bs);
  auto q = randn((size_t)B * H * T * D, r, 1.5f), k = randn((size_t)B * Hkv * T * D, r, 1.5f);
  std::vector<double> rows((size_t)B * H * T * nb);
  attention_row_block_mass(q.data(), k.data(), B, H, Hkv, T, D, bs, rows.data());
  double worst = 0;
  for (size_t row = 0; row < (size_t)B * H * T; row++) {
    double s = 0;
    for (int j = 0; j < nb; j++) s += rows[row * nb + j];
    worst = std::max(worst, std::fabs(s - 1));
    const int t = (int)(row % T);
    for (int j = t / bs + 1; j < nb; j++) EXPECT(rows[row * nb + j] == 0);  // causal
  }
  EXPECT_MSG(worst < 1e-12, "max |row mass - 1| = " << worst);
  std::vector<double> pooled((size_t)H * nb * nb, 0.0);
  pool_block_mass(rows.data(), B, H, T, bs, 1.0 / B, pooled.data());
  for (int h = 0; h < H; h++)
    for (int i = 0; i < nb; i++) {
      double s = 0;
      for (int j = 0; j < nb; j++) s += pooled[((size_t)h * nb + i) * nb + j];
      EXPECT_MSG(std::fabs(s - 1) < 1e-12, "pooled row (" << h << ", " << i << ") sums to " << s);
    }
}

TEST(profile_floor_equals_attn_kl_of_teacher_restricted_to_the_mask) {
  // The student that is the teacher restricted to the mask (renormalised) reaches the floor.
  Rng r{7};
  for (bool share : {true, false}) {
    const int B = 2, H = 4, Hkv = 2, T = 16 * 9 + 11, D = 32, bs = 16, nb = profile_blocks(T, bs);
    const int M = share ? Hkv : H;
    auto q = randn((size_t)B * H * T * D, r, 2.0f), k = randn((size_t)B * Hkv * T * D, r, 2.0f);
    std::vector<double> rows((size_t)B * H * T * nb);
    attention_row_block_mass(q.data(), k.data(), B, H, Hkv, T, D, bs, rows.data());
    for (int64_t extra : {0, 7, 20}) {
      RandomMask rm = random_mask(r, M, T, bs, extra);
      double floor_sum = 0, recall_sum = 0;
      nested_mask_floor(rows.data(), B, H, T, bs, rm.join.data(), M, 1, &floor_sum, &recall_sum);
      const double n = (double)B * H * T;
      AttentionMetrics m =
          attention_metrics(q.data(), k.data(), q.data(), k.data(), nullptr, B, H, Hkv, T, D, rm.mask);
      EXPECT_MSG(std::fabs(floor_sum / n - m.attn_kl) < 1e-6,
                 "floor " << floor_sum / n << " vs attn_kl " << m.attn_kl << " (extra " << extra << ")");
      EXPECT_MSG(std::fabs(recall_sum / n - m.attn_recall) < 1e-6,
                 "recall " << recall_sum / n << " vs attn_recall " << m.attn_recall);
      EXPECT(m.attn_kl > 0.01);
    }
  }
}

TEST(profile_oracle_floor_is_at_most_any_random_mask_of_the_same_density) {
  Rng r{3};
  const int B = 2, H = 4, Hkv = 2, T = 16 * 12, D = 16, bs = 16, nb = profile_blocks(T, bs);
  auto q = randn((size_t)B * H * T * D, r, 2.0f), k = randn((size_t)B * Hkv * T * D, r, 2.0f);
  std::vector<double> rows((size_t)B * H * T * nb), pooled((size_t)H * nb * nb, 0.0);
  attention_row_block_mass(q.data(), k.data(), B, H, Hkv, T, D, bs, rows.data());
  pool_block_mass(rows.data(), B, H, T, bs, 1.0 / B, pooled.data());
  for (bool share : {true, false}) {
    const int M = share ? Hkv : H;
    const std::vector<double> densities{0.2, 0.3, 0.5, 0.8, 1.0};
    std::vector<double> achieved;
    std::vector<int32_t> join = oracle_join_levels(pooled.data(), H, M, T, bs, densities, &achieved);
    std::vector<double> floor(densities.size(), 0.0), recall(densities.size(), 0.0);
    nested_mask_floor(rows.data(), B, H, T, bs, join.data(), M, (int)densities.size(), floor.data(), recall.data());
    const double n = (double)B * H * T;
    const int64_t total = (int64_t)M * nb * (nb + 1) / 2;
    for (size_t l = 0; l < densities.size(); l++) {
      EXPECT(achieved[l] >= densities[l] - 1e-9);
      if (l > 0) EXPECT(floor[l] <= floor[l - 1] + 1e-12);  // nested masks: the floor never rises
      const int64_t extra = std::llround(achieved[l] * total) - (int64_t)M * nb;
      for (int trial = 0; trial < 20; trial++) {
        RandomMask rm = random_mask(r, M, T, bs, extra);
        EXPECT(std::fabs(rm.mask.density() - achieved[l]) < 1e-12);
        double f = 0, rc = 0;
        nested_mask_floor(rows.data(), B, H, T, bs, rm.join.data(), M, 1, &f, &rc);
        EXPECT_MSG(floor[l] <= f + 1e-12, "level " << l << ": oracle " << floor[l] / n << " > random " << f / n);
      }
    }
    EXPECT(floor.back() / n < 1e-9 && std::fabs(recall.back() / n - 1) < 1e-9);  // density 1 keeps everything
  }
  EXPECT_THROWS_MSG(oracle_join_levels(pooled.data(), H, 3, T, bs, {0.5}, nullptr), "mask heads");
  EXPECT_THROWS_MSG(oracle_join_levels(pooled.data(), H, 2, T, bs, {0.5, 0.2}, nullptr), "ascending");
}

TEST(block_mask_keeps_seeded_pairs_after_the_static_blocks) {
  MaskSpec spec;
  spec.block_size = 16;
  spec.global_blocks = 1;
  spec.window_blocks = 0;
  spec.random_blocks = 1;
  const int T = 16 * 8, H = 4, Hkv = 2, nb = 8, sb = 6;
  const BlockMask plain = build_block_mask(spec, T, H, Hkv, 0, nullptr);
  spec.seeded.assign((size_t)Hkv * sb * sb, 0);
  auto seed = [&](int m, int i, int j) { spec.seeded[((size_t)m * sb + i) * sb + j] = 1; };
  seed(0, 3, 2);
  seed(1, 5, 1);
  seed(1, 5, 0);  // already global: stays Global
  seed(0, 2, 4);  // not causal: ignored
  spec.seeded_blocks = sb;
  const BlockMask m = build_block_mask(spec, T, H, Hkv, 0, nullptr);
  auto source = [&](const BlockMask& x, int h, int i, int j) { return (BlockSource)x.source[((size_t)h * nb + i) * nb + j]; };
  EXPECT(source(m, 0, 3, 2) == BlockSource::Seeded && m.test(0, 3, 2));
  EXPECT(source(m, 1, 5, 1) == BlockSource::Seeded && m.test(1, 5, 1));
  EXPECT(source(m, 1, 5, 0) == BlockSource::Global);
  EXPECT(!m.test(0, 2, 4));
  // Rows without seeded pairs draw the same random blocks as without a seed.
  for (int h = 0; h < Hkv; h++)
    for (int i = 0; i < nb; i++) {
      if ((h == 0 && i == 3) || (h == 1 && i == 5)) continue;
      for (int j = 0; j <= i; j++) EXPECT(m.test(h, i, j) == plain.test(h, i, j));
    }
  EXPECT(m.kept_pairs() >= plain.kept_pairs() + 1);
  spec.seeded.resize(spec.seeded.size() - 1);
  EXPECT_THROWS_MSG(build_block_mask(spec, T, H, Hkv, 0, nullptr), "mask.seeded");
  spec.seeded.assign((size_t)H * sb * sb, 0);  // per query head, but the mask is per KV head
  EXPECT_THROWS_MSG(build_block_mask(spec, T, H, Hkv, 0, nullptr), "mask.seeded: expected 72 values");
}
