// Block mask rules, reproducibility and conversions (block_mask.h).
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "block_mask.h"
#include "check.h"

using namespace engine;

namespace {

MaskSpec bare() {
  MaskSpec s;
  s.block_size = 16;
  s.global_blocks = 0;
  s.window_blocks = 0;
  return s;
}

std::string error_of(const MaskSpec& s, int T = 256, int H = 4, int Hkv = 2, const float* scores = nullptr) {
  try {
    build_block_mask(s, T, H, Hkv, 0, scores);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

int row_count(const BlockMask& m, int h, int i) { return m.kv_ptr[h * m.n_blocks + i + 1] - m.kv_ptr[h * m.n_blocks + i]; }

// Every representation agrees with the bitmap; lists ascending; causal; diagonal kept.
void expect_consistent(const BlockMask& m) {
  const int nb = m.n_blocks;
  int64_t kept = 0;
  for (int h = 0; h < m.n_mask_heads; h++)
    for (int i = 0; i < nb; i++) {
      EXPECT(m.test(h, i, i));
      std::vector<int> want;
      for (int j = 0; j < nb; j++) {
        const bool bit = m.test(h, i, j);
        if (j > i) EXPECT_MSG(!bit, "non-causal bit at " << h << "," << i << "," << j);
        if (bit) want.push_back(j);
        const uint8_t src = m.source[((size_t)h * nb + i) * nb + j];
        EXPECT_MSG((src != (uint8_t)BlockSource::Skipped) == bit, "source disagrees with bits at " << i << "," << j);
      }
      std::vector<int> got(m.kv_idx.begin() + m.kv_ptr[h * nb + i], m.kv_idx.begin() + m.kv_ptr[h * nb + i + 1]);
      EXPECT(got == want);
      kept += (int64_t)want.size();
      for (int j = 0; j < nb; j++) {
        const int c = h * nb + j;
        std::vector<int> col(m.q_idx.begin() + m.q_ptr[c], m.q_idx.begin() + m.q_ptr[c + 1]);
        EXPECT(std::is_sorted(col.begin(), col.end()));
        EXPECT((std::find(col.begin(), col.end(), i) != col.end()) == m.test(h, i, j));
      }
    }
  EXPECT(kept == m.kept_pairs());
}

}  // namespace

TEST(block_mask_rejects_bad_specs_with_field_names) {
  MaskSpec s = bare();
  s.block_size = 48;
  EXPECT(error_of(s).find("mask.block_size") == 0);
  s.block_size = 512;
  EXPECT(error_of(s).find("mask.block_size") == 0);
  s = bare();
  s.window_blocks = -1;
  EXPECT(error_of(s).find("mask.window_blocks: must be >= 0") == 0);
  s = bare();
  s.topk_blocks = 2;
  s.selector = MaskSpec::Pooled;
  EXPECT(error_of(s).find("mask.topk_blocks") == 0);  // scores missing
  EXPECT(error_of(bare(), 0).find("seq_len") != std::string::npos);
  EXPECT(error_of(bare(), 64, 6, 4).find("multiple") != std::string::npos);
  EXPECT(error_of(bare()).empty());
}

TEST(block_mask_static_rules_count_per_row) {
  // Row i keeps diagonal + global + global rows + window, then `random` extras among the rest.
  MaskSpec s = bare();
  s.global_blocks = 2;
  s.global_rows = 3;
  s.window_blocks = 2;
  s.random_blocks = 3;
  s.random_seed = 11;
  const int T = 16 * 40 - 5;  // tail block of 11 tokens
  BlockMask m = build_block_mask(s, T, 8, 2, 3, nullptr);
  EXPECT(m.n_blocks == 40 && m.n_mask_heads == 2 && m.block_len(39) == 11);
  expect_consistent(m);
  for (int h = 0; h < 2; h++)
    for (int i = 0; i < 40; i++) {
      int stat = 0;
      for (int j = 0; j <= i; j++) stat += (j == i || j < 2 || i < 3 || j >= i - 2);
      EXPECT_MSG(row_count(m, h, i) == std::min(i + 1, stat + 3), "row " << i << " keeps " << row_count(m, h, i));
      const uint8_t* src = &m.source[((size_t)h * 40 + i) * 40];
      EXPECT(src[i] == (uint8_t)BlockSource::Diagonal);
      if (i >= 3) {
        EXPECT(src[0] == (uint8_t)BlockSource::Global);
        EXPECT(src[i - 1] == (uint8_t)BlockSource::Window);
      }
      if (i >= 8) EXPECT(std::count(src, src + 40, (uint8_t)BlockSource::Random) == 3);
    }
  EXPECT(m.test(0, 2, 0) && m.test(0, 2, 1));  // a global row sees everything before it
}

TEST(block_mask_random_blocks_reproducible_and_prefix_stable) {
  MaskSpec s = bare();
  s.random_blocks = 4;
  s.random_seed = 1234;
  BlockMask a = build_block_mask(s, 16 * 64, 4, 4, 5, nullptr);
  BlockMask b = build_block_mask(s, 16 * 64, 4, 4, 5, nullptr);
  EXPECT(a.bits == b.bits);
  BlockMask shorter = build_block_mask(s, 16 * 20, 4, 4, 5, nullptr);
  for (int h = 0; h < 4; h++)
    for (int i = 0; i < 20; i++)
      for (int j = 0; j <= i; j++) EXPECT(shorter.test(h, i, j) == a.test(h, i, j));
  BlockMask other_layer = build_block_mask(s, 16 * 64, 4, 4, 6, nullptr);
  EXPECT(other_layer.bits != a.bits);
  s.random_seed = 1235;
  EXPECT(build_block_mask(s, 16 * 64, 4, 4, 5, nullptr).bits != a.bits);
  // heads draw independently
  bool heads_differ = false;
  for (int i = 0; i < 64; i++)
    for (int j = 0; j < 64; j++) heads_differ |= a.test(0, i, j) != a.test(1, i, j);
  EXPECT(heads_differ);
  // splitmix64 reference outputs from state 0 (Vigna's splitmix64.c)
  uint64_t st = 0;
  EXPECT(splitmix64(st) == 0xE220A8397B1DCDAFull);
  EXPECT(splitmix64(st) == 0x6E789E6AA1B965F4ull);
}

TEST(block_mask_topk_picks_highest_scores_ties_to_lower_block) {
  MaskSpec s = bare();
  s.global_blocks = 1;
  s.topk_blocks = 2;
  s.selector = MaskSpec::Pooled;
  const int nb = 8;
  std::vector<float> scores((size_t)nb * nb, 0.0f);
  float* row7 = &scores[7 * nb];
  // block 0 is global already; 3 and 5 tie at the top, 2 next; 4 is NaN (ranks last)
  row7[0] = 100;
  row7[3] = 5;
  row7[5] = 5;
  row7[2] = 4;
  row7[4] = std::nanf("");
  BlockMask m = build_block_mask(s, 16 * nb, 2, 1, 0, scores.data());
  std::vector<int> got(m.kv_idx.begin() + m.kv_ptr[7], m.kv_idx.begin() + m.kv_ptr[8]);
  EXPECT((got == std::vector<int>{0, 3, 5, 7}));
  EXPECT(m.source[7 * nb + 3] == (uint8_t)BlockSource::TopK);
  row7[5] = 4;  // now 3 then the tie 2 vs 5 at 4 goes to block 2
  m = build_block_mask(s, 16 * nb, 2, 1, 0, scores.data());
  got.assign(m.kv_idx.begin() + m.kv_ptr[7], m.kv_idx.begin() + m.kv_ptr[8]);
  EXPECT((got == std::vector<int>{0, 2, 3, 7}));
  // all-zero rows: ties everywhere, lowest free blocks win
  EXPECT(m.test(0, 5, 1) && m.test(0, 5, 2) && !m.test(0, 5, 3));
  expect_consistent(m);
  // selector none: top-k is off, no scores needed
  s.selector = MaskSpec::None;
  EXPECT(build_block_mask(s, 16 * nb, 2, 1, 0, nullptr).kept_pairs() == (int64_t)(nb + (nb - 1)));
}

TEST(block_mask_dense_below_and_gqa_sharing) {
  MaskSpec s = bare();
  s.dense_below = 1000;
  s.topk_blocks = 3;
  s.selector = MaskSpec::Indexer;  // dense: no scores needed
  BlockMask d = build_block_mask(s, 999, 8, 2, 0, nullptr);
  EXPECT(d.dense && d.density() == 1.0 && d.flops_saved() == 0.0 && d.n_mask_heads == 2);
  EXPECT(d.source[62 * 63 + 5] == (uint8_t)BlockSource::Dense && d.source[5 * 63 + 62] == (uint8_t)BlockSource::Skipped);
  s.dense_below = 0;
  s.topk_blocks = 0;
  s.share_gqa_group = false;
  BlockMask p = build_block_mask(s, 999, 8, 2, 0, nullptr);
  EXPECT(!p.dense && p.n_mask_heads == 8 && p.mask_head(5, 8) == 5);
  s.share_gqa_group = true;
  BlockMask g = build_block_mask(s, 999, 8, 2, 0, nullptr);
  EXPECT(g.n_mask_heads == 2 && g.mask_head(5, 8) == 1 && g.mask_head(3, 8) == 0);
  // diagonal only: density n / (n (n+1) / 2)
  EXPECT(std::fabs(g.density() - 63.0 / (63.0 * 64 / 2)) < 1e-12);
}

TEST(block_mask_flops_saved_counts_token_pairs) {
  MaskSpec s = bare();
  s.global_blocks = 1;
  s.random_blocks = 2;
  const int T = 16 * 9 + 7;
  BlockMask m = build_block_mask(s, T, 2, 2, 0, nullptr);
  double kept = 0, total = 0;
  for (int h = 0; h < 2; h++)
    for (int t = 0; t < T; t++)
      for (int u = 0; u <= t; u++) {
        total += 1;
        kept += m.test(h, t / 16, u / 16);
      }
  EXPECT(std::fabs(m.flops_saved() - (1 - kept / total)) < 1e-12);
}

TEST(block_mask_bitmap_lists_flex_round_trips) {
  MaskSpec s = bare();
  s.block_size = 32;
  s.global_blocks = 1;
  s.window_blocks = 1;
  s.random_blocks = 2;
  s.share_gqa_group = false;
  const int T = 32 * 70 + 3;  // 71 blocks: two bitmap words per row
  BlockMask m = build_block_mask(s, T, 4, 2, 1, nullptr);
  EXPECT(m.words == 2);
  expect_consistent(m);
  BlockMask from_bits = block_mask_from_bits(m.bits, T, 32, 4);
  EXPECT(from_bits.kv_idx == m.kv_idx && from_bits.kv_ptr == m.kv_ptr && from_bits.q_idx == m.q_idx && from_bits.q_ptr == m.q_ptr);

  FlexBlockMask f = to_flex_block_mask(m, 4);
  const int nb = 71;
  for (int h = 0; h < 4; h++)
    for (int i = 0; i < nb; i++) {
      const int n = f.kv_num_blocks[h * nb + i];
      const int32_t* row = &f.kv_indices[((size_t)h * nb + i) * nb];
      // kept blocks ascending first, then every other block ascending (a permutation)
      std::vector<int> perm(row, row + nb);
      std::sort(perm.begin(), perm.end());
      for (int j = 0; j < nb; j++) EXPECT(perm[j] == j);
      for (int p = 0; p < nb; p++) EXPECT(m.test(h, i, row[p]) == (p < n));
      EXPECT(std::is_sorted(row, row + n) && std::is_sorted(row + n, row + nb));
      const int nq = f.q_num_blocks[h * nb + i];
      for (int p = 0; p < nq; p++) EXPECT(m.test(h, f.q_indices[((size_t)h * nb + i) * nb + p], i));
    }
  BlockMask back = from_flex_block_mask(f);
  EXPECT(back.bits == m.bits);

  // A GQA-shared mask expands to the query heads.
  s.share_gqa_group = true;
  BlockMask shared = build_block_mask(s, T, 4, 2, 1, nullptr);
  FlexBlockMask fs = to_flex_block_mask(shared, 4);
  EXPECT(fs.H == 4);
  EXPECT(std::equal(fs.kv_indices.begin(), fs.kv_indices.begin() + nb * nb, fs.kv_indices.begin() + nb * nb));

  // Inconsistent flex arrays and non-causal bits are rejected with a message.
  f.q_num_blocks[5] += 1;
  bool threw = false;
  try { from_flex_block_mask(f); } catch (const std::invalid_argument& e) { threw = std::string(e.what()).find("flex.q_num_blocks") == 0; }
  EXPECT(threw);
  std::vector<uint64_t> bad(m.bits.size(), 0);
  bad[0] = 2;  // query block 0 keeps key block 1
  threw = false;
  try { block_mask_from_bits(bad, T, 32, 4); } catch (const std::invalid_argument& e) { threw = std::string(e.what()).find("not causal") != std::string::npos; }
  EXPECT(threw);
}

TEST(block_mask_infllm_v2_template_density_at_32k) {
  // MiniCPM 4.1 sparse_config: block 64, init_blocks 1, window 2048 tokens = 32 blocks before the
  // diagonal, top-k 64 extra blocks, dense below 8192 tokens. At T = 32768 there are n = 512
  // blocks. Row i keeps its diagonal, block 0 and blocks i-32..i-1 (34 blocks once i >= 34, and
  // all i+1 causal blocks before that), plus 64 top-k blocks among the rest, so it keeps
  // min(i + 1, 98) blocks. density = (sum_{i<98} (i+1) + (512 - 98) * 98) / (512 * 513 / 2)
  //                                = (98 * 99 / 2 + 414 * 98) / 131328 = 45423 / 131328.
  MaskSpec s;
  s.block_size = 64;
  s.global_blocks = 1;
  s.window_blocks = 32;
  s.topk_blocks = 64;
  s.selector = MaskSpec::Pooled;
  s.dense_below = 8192;
  const int nb = 512;
  std::vector<float> scores((size_t)nb * nb);
  uint64_t st = 99;
  for (float& x : scores) x = (float)(splitmix64(st) >> 40);
  BlockMask m = build_block_mask(s, 32768, 1, 1, 0, scores.data());
  const double want = (98.0 * 99 / 2 + 414.0 * 98) / (512.0 * 513 / 2);
  EXPECT_MSG(std::fabs(m.density() - want) < 1e-12, "density " << m.density() << " want " << want);
  EXPECT(std::fabs(want - 45423.0 / 131328.0) < 1e-15);
  // below 8192 tokens the short/long switch makes it dense
  EXPECT(build_block_mask(s, 8191, 1, 1, 0, nullptr).density() == 1.0);
}
