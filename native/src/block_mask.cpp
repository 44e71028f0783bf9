// Block mask construction and conversions (see block_mask.h for the rules).
// renderer/src/mask-preview.ts mirrors the static rules, the seeding and the random draw below;
// change both together.
#include "block_mask.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace engine {

namespace {

bool is_pow2(int x) { return x > 0 && (x & (x - 1)) == 0; }

// Seed of the random draw of one mask row: chained splitmix64 over (seed, layer, head, row).
uint64_t row_seed(uint64_t seed, int layer, int head, int row) {
  uint64_t state = seed;
  for (uint64_t part : {(uint64_t)(int64_t)layer, (uint64_t)(int64_t)head, (uint64_t)(int64_t)row}) {
    state ^= part;
    state = splitmix64(state);
  }
  return state;
}

// Fills the CSR lists (both directions) from the bitmap.
void build_lists(BlockMask& m) {
  const int nb = m.n_blocks, rows = m.n_mask_heads * nb;
  m.kv_ptr.assign(rows + 1, 0);
  m.q_ptr.assign(rows + 1, 0);
  m.kv_idx.clear();
  std::vector<int32_t> col_count(rows, 0);
  for (int h = 0; h < m.n_mask_heads; h++)
    for (int i = 0; i < nb; i++) {
      for (int j = 0; j <= i; j++)
        if (m.test(h, i, j)) {
          m.kv_idx.push_back(j);
          col_count[h * nb + j]++;
        }
      m.kv_ptr[h * nb + i + 1] = (int32_t)m.kv_idx.size();
    }
  for (int r = 0; r < rows; r++) m.q_ptr[r + 1] = m.q_ptr[r] + col_count[r];
  m.q_idx.assign(m.kv_idx.size(), 0);
  std::vector<int32_t> fill(m.q_ptr.begin(), m.q_ptr.end() - 1);
  // Rows visited in ascending order, so each column's query blocks come out ascending.
  for (int h = 0; h < m.n_mask_heads; h++)
    for (int i = 0; i < nb; i++)
      for (int p = m.kv_ptr[h * nb + i]; p < m.kv_ptr[h * nb + i + 1]; p++) m.q_idx[fill[h * nb + m.kv_idx[p]]++] = i;
}

BlockMask empty_mask(int T, int block_size, int n_mask_heads) {
  BlockMask m;
  m.T = T;
  m.block_size = block_size;
  m.n_blocks = (T + block_size - 1) / block_size;
  m.n_mask_heads = n_mask_heads;
  m.words = (m.n_blocks + 63) / 64;
  m.bits.assign((size_t)n_mask_heads * m.n_blocks * m.words, 0);
  m.source.assign((size_t)n_mask_heads * m.n_blocks * m.n_blocks, (uint8_t)BlockSource::Skipped);
  return m;
}

void keep(BlockMask& m, int h, int i, int j, BlockSource why) {
  m.bits[((size_t)h * m.n_blocks + i) * m.words + j / 64] |= 1ull << (j % 64);
  m.source[((size_t)h * m.n_blocks + i) * m.n_blocks + j] = (uint8_t)why;
}

void check_shape(int T, int H, int Hkv) {
  if (T < 1) throw std::invalid_argument("mask: seq_len must be >= 1, got " + std::to_string(T));
  if (H < 1 || Hkv < 1 || H % Hkv != 0)
    throw std::invalid_argument("mask: heads must be a multiple of kv heads (>= 1), got " + std::to_string(H) + " and " +
                                std::to_string(Hkv));
}

}  // namespace

std::string validate_mask_spec(const MaskSpec& s) {
  auto nonneg = [](int v, const char* name) -> std::string {
    return v < 0 ? std::string("mask.") + name + ": must be >= 0, got " + std::to_string(v) : "";
  };
  if (!is_pow2(s.block_size) || s.block_size < 16 || s.block_size > 256)
    return "mask.block_size: must be a power of two in [16, 256], got " + std::to_string(s.block_size);
  for (auto msg : {nonneg(s.global_blocks, "global_blocks"), nonneg(s.global_rows, "global_rows"),
                   nonneg(s.window_blocks, "window_blocks"), nonneg(s.random_blocks, "random_blocks"),
                   nonneg(s.topk_blocks, "topk_blocks"), nonneg(s.dense_below, "dense_below")})
    if (!msg.empty()) return msg;
  if (s.selector < MaskSpec::None || s.selector > MaskSpec::InfLLMv2) return "mask.selector: unknown selector";
  if (s.indexer_warmup_steps < -1)
    return "mask.indexer_warmup_steps: must be >= 0 (or left out), got " + std::to_string(s.indexer_warmup_steps);
  if (!s.seeded.empty() && (s.seeded_blocks < 1 || s.seeded.size() % ((size_t)s.seeded_blocks * s.seeded_blocks) != 0))
    return "mask.seeded: expected n_mask_heads x blocks x blocks values, got " + std::to_string(s.seeded.size()) +
           " for blocks " + std::to_string(s.seeded_blocks);
  if (s.selector == MaskSpec::InfLLMv2 && !s.share_gqa_group)
    return "mask.share_gqa_group: infllm_v2 selects per GQA group (sums the group's scores); it must be true";
  return "";
}

// Query blocks covered by the spec's seeded pairs (0 without), after checking they fit the heads.
static int s_blocks(const MaskSpec& spec, int n_heads) {
  if (spec.seeded.empty()) return 0;
  const size_t want = (size_t)n_heads * spec.seeded_blocks * spec.seeded_blocks;
  if (spec.seeded.size() != want)
    throw std::invalid_argument("mask.seeded: expected " + std::to_string(want) + " values (" + std::to_string(n_heads) +
                                " mask heads x " + std::to_string(spec.seeded_blocks) + "^2), got " +
                                std::to_string(spec.seeded.size()));
  return spec.seeded_blocks;
}

BlockMask build_block_mask(const MaskSpec& spec, int T, int H, int Hkv, int layer, const float* block_scores) {
  std::string bad = validate_mask_spec(spec);
  if (!bad.empty()) throw std::invalid_argument(bad);
  check_shape(T, H, Hkv);
  const int n_heads = spec.share_gqa_group ? Hkv : H;
  BlockMask m = empty_mask(T, spec.block_size, n_heads);
  const int nb = m.n_blocks;
  m.dense = T < spec.dense_below;
  const bool use_topk = !m.dense && spec.topk_blocks > 0 && spec.selector != MaskSpec::None;
  if (use_topk && !block_scores)
    throw std::invalid_argument("mask.topk_blocks: block scores are required when topk_blocks > 0 and a selector is set");

  const int sb = s_blocks(spec, n_heads);
  std::vector<int> free_blocks;
  free_blocks.reserve(nb);
  for (int h = 0; h < n_heads; h++) {
    for (int i = 0; i < nb; i++) {
      if (m.dense) {
        for (int j = 0; j <= i; j++) keep(m, h, i, j, BlockSource::Dense);
        continue;
      }
      free_blocks.clear();
      for (int j = 0; j <= i; j++) {
        if (j == i) keep(m, h, i, j, BlockSource::Diagonal);
        else if (j < spec.global_blocks) keep(m, h, i, j, BlockSource::Global);
        else if (i < spec.global_rows) keep(m, h, i, j, BlockSource::GlobalRow);
        else if (j >= i - spec.window_blocks) keep(m, h, i, j, BlockSource::Window);
        else if (i < sb && spec.seeded[((size_t)h * sb + i) * sb + j]) keep(m, h, i, j, BlockSource::Seeded);
        else free_blocks.push_back(j);
      }
      // Random extras: partial Fisher-Yates over the free blocks (ascending list).
      const int draws = std::min<int>(spec.random_blocks, (int)free_blocks.size());
      uint64_t state = row_seed(spec.random_seed, layer, h, i);
      for (int d = 0; d < draws; d++) {
        uint64_t r = splitmix64(state);
        int pick = d + (int)(r % (uint64_t)(free_blocks.size() - d));
        std::swap(free_blocks[d], free_blocks[pick]);
        keep(m, h, i, free_blocks[d], BlockSource::Random);
      }
      if (!use_topk) continue;
      // Top-k extras among the blocks still free: highest score first, ties to the lower block.
      std::vector<int> rest(free_blocks.begin() + draws, free_blocks.end());
      const int k = std::min<int>(spec.topk_blocks, (int)rest.size());
      const float* score = block_scores + ((size_t)h * nb + i) * nb;
      std::partial_sort(rest.begin(), rest.begin() + k, rest.end(), [&](int a, int b) {
        float sa = score[a], sb = score[b];
        if (sa != sb && !(std::isnan(sa) && std::isnan(sb))) {
          if (std::isnan(sa)) return false;  // NaN scores rank last
          if (std::isnan(sb)) return true;
          return sa > sb;
        }
        return a < b;
      });
      for (int t = 0; t < k; t++) keep(m, h, i, rest[t], BlockSource::TopK);
    }
  }
  build_lists(m);
  return m;
}

BlockMask block_mask_from_bits(const std::vector<uint64_t>& bits, int T, int block_size, int n_mask_heads) {
  if (!is_pow2(block_size) || block_size < 16 || block_size > 256)
    throw std::invalid_argument("mask.block_size: must be a power of two in [16, 256], got " + std::to_string(block_size));
  check_shape(T, n_mask_heads, n_mask_heads);
  BlockMask m = empty_mask(T, block_size, n_mask_heads);
  if (bits.size() != m.bits.size())
    throw std::invalid_argument("mask.bits: expected " + std::to_string(m.bits.size()) + " uint64 words, got " +
                                std::to_string(bits.size()));
  const int nb = m.n_blocks;
  for (int h = 0; h < n_mask_heads; h++)
    for (int i = 0; i < nb; i++)
      for (int w = 0; w < m.words; w++) {
        uint64_t word = bits[((size_t)h * nb + i) * m.words + w];
        for (int b = 0; b < 64 && word; b++, word >>= 1) {
          if (!(word & 1)) continue;
          int j = w * 64 + b;
          if (j > i)
            throw std::invalid_argument("mask.bits: head " + std::to_string(h) + " query block " + std::to_string(i) +
                                        " keeps key block " + std::to_string(j) + " (not causal)");
          keep(m, h, i, j, j == i ? BlockSource::Diagonal : BlockSource::TopK);
        }
      }
  for (int h = 0; h < n_mask_heads; h++)
    for (int i = 0; i < nb; i++) keep(m, h, i, i, BlockSource::Diagonal);
  build_lists(m);
  return m;
}

FlexBlockMask to_flex_block_mask(const BlockMask& m, int H) {
  if (H < 1 || H % m.n_mask_heads != 0)
    throw std::invalid_argument("flex: heads (" + std::to_string(H) + ") must be a multiple of mask heads (" +
                                std::to_string(m.n_mask_heads) + ")");
  const int nb = m.n_blocks;
  FlexBlockMask f;
  f.H = H;
  f.q_blocks = f.kv_blocks = nb;
  f.block_size = m.block_size;
  f.seq_len = m.T;
  f.kv_num_blocks.resize((size_t)H * nb);
  f.kv_indices.resize((size_t)H * nb * nb);
  f.q_num_blocks.resize((size_t)H * nb);
  f.q_indices.resize((size_t)H * nb * nb);
  // Row layout as torch pads it: kept blocks ascending, then skipped blocks ascending.
  auto write_row = [nb](int32_t* row, const int32_t* kept, int n_kept) {
    std::vector<char> is_kept(nb, 0);
    for (int p = 0; p < n_kept; p++) { row[p] = kept[p]; is_kept[kept[p]] = 1; }
    int w = n_kept;
    for (int j = 0; j < nb; j++) if (!is_kept[j]) row[w++] = j;
  };
  for (int h = 0; h < H; h++) {
    const int mh = m.mask_head(h, H);
    for (int i = 0; i < nb; i++) {
      const int r = mh * nb + i;
      const int nk = m.kv_ptr[r + 1] - m.kv_ptr[r], nq = m.q_ptr[r + 1] - m.q_ptr[r];
      f.kv_num_blocks[(size_t)h * nb + i] = nk;
      write_row(&f.kv_indices[((size_t)h * nb + i) * nb], &m.kv_idx[m.kv_ptr[r]], nk);
      f.q_num_blocks[(size_t)h * nb + i] = nq;
      write_row(&f.q_indices[((size_t)h * nb + i) * nb], &m.q_idx[m.q_ptr[r]], nq);
    }
  }
  return f;
}

BlockMask from_flex_block_mask(const FlexBlockMask& f) {
  const int nb = f.q_blocks;
  if (f.kv_blocks != nb) throw std::invalid_argument("flex: q_blocks and kv_blocks differ");
  if (f.seq_len < 1 || (f.seq_len + f.block_size - 1) / std::max(1, f.block_size) != nb)
    throw std::invalid_argument("flex: seq_len " + std::to_string(f.seq_len) + " does not match " +
                                std::to_string(nb) + " blocks of " + std::to_string(f.block_size));
  const size_t rows = (size_t)f.H * nb;
  if (f.kv_num_blocks.size() != rows || f.kv_indices.size() != rows * nb || f.q_num_blocks.size() != rows ||
      f.q_indices.size() != rows * nb)
    throw std::invalid_argument("flex: array sizes do not match (1, H, blocks[, blocks])");
  BlockMask probe = empty_mask(f.seq_len, f.block_size, f.H);
  std::vector<uint64_t> bits(probe.bits.size(), 0);
  for (int h = 0; h < f.H; h++)
    for (int i = 0; i < nb; i++) {
      const int n = f.kv_num_blocks[(size_t)h * nb + i];
      if (n < 0 || n > nb) throw std::invalid_argument("flex.kv_num_blocks: out of range at head " + std::to_string(h));
      for (int p = 0; p < n; p++) {
        int j = f.kv_indices[((size_t)h * nb + i) * nb + p];
        if (j < 0 || j >= nb) throw std::invalid_argument("flex.kv_indices: block index out of range at head " + std::to_string(h));
        bits[((size_t)h * nb + i) * probe.words + j / 64] |= 1ull << (j % 64);
      }
    }
  BlockMask m = block_mask_from_bits(bits, f.seq_len, f.block_size, f.H);
  // The transposed arrays must describe the same mask.
  for (int h = 0; h < f.H; h++)
    for (int j = 0; j < nb; j++) {
      const int r = h * nb + j;
      const int n = f.q_num_blocks[r];
      if (n != m.q_ptr[r + 1] - m.q_ptr[r])
        throw std::invalid_argument("flex.q_num_blocks: disagrees with kv_indices at head " + std::to_string(h) +
                                    " key block " + std::to_string(j));
      for (int p = 0; p < n; p++)
        if (f.q_indices[(size_t)r * nb + p] != m.q_idx[m.q_ptr[r] + p])
          throw std::invalid_argument("flex.q_indices: disagrees with kv_indices at head " + std::to_string(h) +
                                      " key block " + std::to_string(j));
    }
  return m;
}

std::vector<int64_t> BlockMask::query_block_costs(int B, int H) const {
  std::vector<int64_t> cost((size_t)B * H * n_blocks);
  for (int64_t t = 0; t < (int64_t)cost.size(); t++) {
    const int i = (int)(t % n_blocks), h = (int)(t / n_blocks % H);
    const int r = mask_head(h, H) * n_blocks + i;
    cost[t] = (int64_t)(kv_ptr[r + 1] - kv_ptr[r]) * block_len(i);
  }
  return cost;
}

std::vector<int64_t> BlockMask::key_block_costs(int B, int H, int Hkv) const {
  const int group = H / Hkv;
  std::vector<int64_t> cost((size_t)B * Hkv * n_blocks);
  for (int64_t t = 0; t < (int64_t)cost.size(); t++) {
    const int j = (int)(t % n_blocks), kvh = (int)(t / n_blocks % Hkv);
    int64_t c = 0;
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
      const int col = mask_head(h, H) * n_blocks + j;
      c += q_ptr[col + 1] - q_ptr[col];
    }
    cost[t] = c * block_len(j);
  }
  return cost;
}

}  // namespace engine
