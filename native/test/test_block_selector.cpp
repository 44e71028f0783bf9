// Block selection (block_selector.h): pooled-key scores against a naive per-query scorer, the
// indexer's scores and warm-up-loss gradients (central finite differences), the teacher target.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "block_mask.h"
#include "block_selector.h"
#include "check.h"
#include "test_random.h"

using namespace engine;

namespace {

}  // namespace

TEST(block_selector_pooled_scores_match_naive_scorer) {
  Rng r{3};
  const int H = 8, Hkv = 2, T = 16 * 6 + 9, D = 32, bs = 16, nb = 7;
  auto q = randn((size_t)H * T * D, r), k = randn((size_t)Hkv * T * D, r);
  for (bool shared : {true, false}) {
    const int heads = shared ? Hkv : H;
    std::vector<float> got((size_t)heads * nb * nb);
    pooled_block_scores(got.data(), q.data(), k.data(), H, Hkv, T, D, bs, shared);
    for (int mh = 0; mh < heads; mh++)
      for (int i = 0; i < nb; i++)
        for (int j = 0; j < nb; j++) {
          const float g = got[((size_t)mh * nb + i) * nb + j];
          if (j > i) { EXPECT(g == -INFINITY); continue; }
          // naive: for every query of block i, q . (mean key of block j), averaged; summed over heads
          double want = 0;
          for (int h = 0; h < H; h++) {
            if (shared ? h / (H / Hkv) != mh : h != mh) continue;
            const int kvh = h / (H / Hkv);
            const int t0 = i * bs, t1 = std::min(T, t0 + bs), u0 = j * bs, u1 = std::min(T, u0 + bs);
            double acc = 0;
            for (int t = t0; t < t1; t++) {
              double dot = 0;
              for (int d = 0; d < D; d++) {
                double kmean = 0;
                for (int u = u0; u < u1; u++) kmean += k[((size_t)kvh * T + u) * D + d];
                dot += q[((size_t)h * T + t) * D + d] * kmean / (u1 - u0);
              }
              acc += dot;
            }
            want += acc / (t1 - t0);
          }
          EXPECT_MSG(std::fabs(g - want) < 1e-4 * (1 + std::fabs(want)), "score " << mh << "," << i << "," << j << ": " << g << " vs " << want);
        }
  }
}

TEST(block_selector_pooled_topk_finds_planted_blocks) {
  // Keys of block 3 point along the queries of the last block: top-1 must pick block 3.
  Rng r{8};
  const int H = 2, Hkv = 1, T = 16 * 10, D = 16, bs = 16, nb = 10;
  auto q = randn((size_t)H * T * D, r, 0.1f), k = randn((size_t)Hkv * T * D, r, 0.1f);
  for (int h = 0; h < H; h++)
    for (int t = 9 * bs; t < T; t++) q[((size_t)h * T + t) * D + 0] += 3.0f;
  for (int u = 3 * bs; u < 4 * bs; u++) k[(size_t)u * D + 0] += 3.0f;
  std::vector<float> scores((size_t)nb * nb);
  pooled_block_scores(scores.data(), q.data(), k.data(), H, Hkv, T, D, bs, true);
  MaskSpec s;
  s.block_size = bs;
  s.global_blocks = 0;
  s.window_blocks = 0;
  s.topk_blocks = 1;
  s.selector = MaskSpec::Pooled;
  BlockMask m = build_block_mask(s, T, H, Hkv, 0, scores.data());
  EXPECT(m.test(0, 9, 3) && m.source[9 * nb + 3] == (uint8_t)BlockSource::TopK);
  EXPECT(m.kv_ptr[10] - m.kv_ptr[9] == 2);
}

TEST(block_selector_indexer_scores_and_gradients) {
  Rng r{12};
  IndexerShape s;
  s.C = 24;
  s.Hi = 3;
  s.Di = 8;
  const int T = 16 * 5 + 7, bs = 16, nb = 6;
  auto x = randn((size_t)T * s.C, r);
  std::vector<float> wq((size_t)s.Hi * s.Di * s.C), wk((size_t)s.Di * s.C), wh(s.Hi);
  indexer_init(wq.data(), wk.data(), wh.data(), s, 42);
  for (int h = 0; h < s.Hi; h++) wh[h] = 0.5f + 0.3f * h;
  // Scale up so the relu is active on most pairs and the scores spread.
  for (float& w : wq) w *= 4;
  // scores against a naive evaluation of the definition
  std::vector<float> scores((size_t)2 * nb * nb);
  indexer_block_scores(scores.data(), x.data(), wq.data(), wk.data(), wh.data(), s, T, bs, 2);
  for (int i = 0; i < nb; i++)
    for (int j = 0; j <= i; j++) {
      auto pooled = [&](int b, int c) {
        const int t0 = b * bs, t1 = std::min(T, t0 + bs);
        double m = 0;
        for (int t = t0; t < t1; t++) m += x[(size_t)t * s.C + c];
        return m / (t1 - t0);
      };
      std::vector<double> kj(s.Di, 0);
      for (int o = 0; o < s.Di; o++)
        for (int c = 0; c < s.C; c++) kj[o] += wk[(size_t)o * s.C + c] * pooled(j, c);
      double want = 0;
      for (int h = 0; h < s.Hi; h++) {
        double a = 0;
        for (int o = 0; o < s.Di; o++) {
          double qi = 0;
          for (int c = 0; c < s.C; c++) qi += wq[((size_t)h * s.Di + o) * s.C + c] * pooled(i, c);
          a += qi * kj[o];
        }
        want += wh[h] * std::max(0.0, a / std::sqrt((double)s.Di));
      }
      EXPECT(std::fabs(scores[(size_t)i * nb + j] - want) < 1e-5 * (1 + std::fabs(want)));
      EXPECT(scores[(size_t)nb * nb + i * nb + j] == scores[(size_t)i * nb + j]);  // copied to every mask head
    }
  // target: random L1-normalised causal rows
  std::vector<float> target((size_t)nb * nb, 0.0f);
  for (int i = 0; i < nb; i++) {
    double sum = 0;
    for (int j = 0; j <= i; j++) sum += target[(size_t)i * nb + j] = (float)r.uniform();
    for (int j = 0; j <= i; j++) target[(size_t)i * nb + j] /= (float)sum;
  }
  std::vector<float> gq(wq.size(), 0.0f), gk(wk.size(), 0.0f), gh(wh.size(), 0.0f);
  const double loss = indexer_kl_loss(gq.data(), gk.data(), gh.data(), x.data(), wq.data(), wk.data(), wh.data(),
                                      target.data(), s, T, bs);
  EXPECT(loss > 0);
  auto loss_at = [&] { return indexer_kl_loss(nullptr, nullptr, nullptr, x.data(), wq.data(), wk.data(), wh.data(), target.data(), s, T, bs); };
  EXPECT(loss_at() == loss);
  // central differences on every parameter (float params, float64 loss)
  double err = 0, mag = 0;
  for (auto [w, g] : {std::pair<std::vector<float>*, std::vector<float>*>{&wq, &gq}, {&wk, &gk}, {&wh, &gh}})
    for (size_t i = 0; i < w->size(); i++) {
      const float keep = (*w)[i];
      const float eps = 1e-3f * std::max(1.0f, std::fabs(keep));
      (*w)[i] = keep + eps;
      const double up = loss_at();
      (*w)[i] = keep - eps;
      const double down = loss_at();
      (*w)[i] = keep;
      const double fd = (up - down) / ((double)(keep + eps) - (double)(keep - eps));
      err = std::max(err, std::fabs(fd - (*g)[i]));
      mag = std::max(mag, std::fabs(fd));
    }
  EXPECT_MSG(mag > 1e-3 && err / mag < 2e-3, "max |grad - fd| / max |fd| = " << err / mag << " (max fd " << mag << ")");
}

TEST(block_selector_teacher_block_attention_is_head_summed_block_mass) {
  Rng r{4};
  const int H = 4, Hkv = 2, T = 16 * 4 + 5, D = 16, bs = 16, nb = 5;
  auto q = randn((size_t)H * T * D, r), k = randn((size_t)Hkv * T * D, r);
  // naive float64: per head dense causal softmax, summed into (query block, key block) cells
  std::vector<double> want((size_t)nb * nb, 0.0);
  std::vector<float> lse((size_t)H * T);
  for (int h = 0; h < H; h++)
    for (int t = 0; t < T; t++) {
      std::vector<double> s(t + 1);
      double mx = -INFINITY;
      for (int u = 0; u <= t; u++) {
        double dot = 0;
        for (int d = 0; d < D; d++) dot += (double)q[((size_t)h * T + t) * D + d] * k[((size_t)(h / 2) * T + u) * D + d];
        mx = std::max(mx, s[u] = dot / std::sqrt((double)D));
      }
      double z = 0;
      for (double v : s) z += std::exp(v - mx);
      lse[(size_t)h * T + t] = (float)(mx + std::log(z));
      for (int u = 0; u <= t; u++) want[(size_t)(t / bs) * nb + u / bs] += std::exp(s[u] - mx) / z;
    }
  for (int i = 0; i < nb; i++) {
    double row = 0;
    for (int j = 0; j < nb; j++) row += want[(size_t)i * nb + j];
    for (int j = 0; j < nb; j++) want[(size_t)i * nb + j] /= row;
  }
  std::vector<float> got((size_t)nb * nb), got_lse((size_t)nb * nb);
  teacher_block_attention(got.data(), q.data(), k.data(), nullptr, H, Hkv, T, D, bs);
  teacher_block_attention(got_lse.data(), q.data(), k.data(), lse.data(), H, Hkv, T, D, bs);
  EXPECT_CLOSE(got.data(), want.data(), want.size(), 1e-6, 1e-5);
  EXPECT_CLOSE(got_lse.data(), want.data(), want.size(), 1e-6, 1e-5);
  for (int i = 0; i < nb; i++)
    for (int j = i + 1; j < nb; j++) EXPECT(got[(size_t)i * nb + j] == 0.0f);
}
