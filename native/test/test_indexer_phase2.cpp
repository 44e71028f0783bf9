// The indexer's second phase (block_selector.h (b), phase 2): the KL over the blocks the mask keeps,
// against an independent float64 reference (renormalisation over the kept set, one-block rows,
// GQA mask heads), its gradients against central finite differences, its agreement with the
// warm-up KL when every block is kept, determinism, and the model's switch at the warm-up step.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend.h"
#include "block_mask.h"
#include "block_selector.h"
#include "check.h"
#include "test_random.h"
#include "model.h"
#include "model_fixtures.h"

using namespace engine;

namespace {

// One sequence's indexer inputs, teacher target and a layer mask (GQA: 4 query heads, 2 KV heads).
struct Case {
  static constexpr int H = 4, Hkv = 2, D = 8, bs = 16;
  int T = bs * 6 + 5, nb = 7;
  IndexerShape s;
  std::vector<float> x, wq, wk, wh, target;
  explicit Case(uint64_t seed) {
    Rng r{seed};
    s.C = 12;
    s.Hi = 3;
    s.Di = 6;
    x = randn((size_t)T * s.C, r);
    wq.resize((size_t)s.Hi * s.Di * s.C);
    wk.resize((size_t)s.Di * s.C);
    wh.resize(s.Hi);
    indexer_init(wq.data(), wk.data(), wh.data(), s, seed + 1);
    for (int h = 0; h < s.Hi; h++) wh[h] = 0.4f + 0.3f * h;
    for (float& w : wq) w *= 4;  // the relu active on most pairs, scores spread
    auto q = randn((size_t)H * T * D, r), k = randn((size_t)Hkv * T * D, r);
    target.resize((size_t)nb * nb);
    teacher_block_attention(target.data(), q.data(), k.data(), nullptr, H, Hkv, T, D, bs);
  }
  // The layer's mask as the model builds it: static + random blocks, top-1 by the indexer.
  BlockMask mask(bool share_gqa_group, int random_blocks = 2, int dense_below = 0) const {
    MaskSpec m;
    m.block_size = bs;
    m.global_blocks = 1;
    m.window_blocks = 0;
    m.random_blocks = random_blocks;
    m.random_seed = 7;
    m.topk_blocks = 1;
    m.selector = MaskSpec::Indexer;
    m.share_gqa_group = share_gqa_group;
    m.dense_below = dense_below;
    const int heads = share_gqa_group ? Hkv : H;
    std::vector<float> scores((size_t)heads * nb * nb);
    indexer_block_scores(scores.data(), x.data(), wq.data(), wk.data(), wh.data(), s, T, bs, heads);
    return build_block_mask(m, T, H, Hkv, 0, scores.data());
  }
  double loss(std::vector<float>* gq, std::vector<float>* gk, std::vector<float>* gh, const BlockMask* sel) const {
    return indexer_kl_loss(gq ? gq->data() : nullptr, gk ? gk->data() : nullptr, gh ? gh->data() : nullptr, x.data(),
                           wq.data(), wk.data(), wh.data(), target.data(), s, T, bs, sel);
  }
};

// float64 from the definitions: block means, projections, score = sum_h w_h relu(q.k / sqrt(Di)).
std::vector<double> reference_scores(const Case& c) {
  const IndexerShape& s = c.s;
  std::vector<double> xbar((size_t)c.nb * s.C, 0.0);
  for (int b = 0; b < c.nb; b++) {
    const int t0 = b * c.bs, t1 = std::min(c.T, t0 + c.bs);
    for (int ch = 0; ch < s.C; ch++) {
      double m = 0;
      for (int t = t0; t < t1; t++) m += c.x[(size_t)t * s.C + ch];
      xbar[(size_t)b * s.C + ch] = m / (t1 - t0);
    }
  }
  auto project = [&](const std::vector<float>& w, int row, int b) {
    double acc = 0;
    for (int ch = 0; ch < s.C; ch++) acc += (double)w[(size_t)row * s.C + ch] * xbar[(size_t)b * s.C + ch];
    return acc;
  };
  std::vector<double> score((size_t)c.nb * c.nb, 0.0);
  for (int i = 0; i < c.nb; i++)
    for (int j = 0; j <= i; j++)
      for (int h = 0; h < s.Hi; h++) {
        double a = 0;
        for (int d = 0; d < s.Di; d++) a += project(c.wq, h * s.Di + d, i) * project(c.wk, d, j);
        score[(size_t)i * c.nb + j] += c.wh[h] * std::max(0.0, a / std::sqrt((double)s.Di));
      }
  return score;
}

// float64 phase-2 loss: per mask head and query block, the kept set read from the bitmap, the
// target and the softmax renormalised over it; mean over mask heads and query blocks.
double reference_selected_kl(const Case& c, const BlockMask& mask) {
  const std::vector<double> score = reference_scores(c);
  double total = 0;
  for (int m = 0; m < mask.n_mask_heads; m++)
    for (int i = 0; i < c.nb; i++) {
      std::vector<int> kept;
      for (int j = 0; j <= i; j++)
        if (mask.test(m, i, j)) kept.push_back(j);
      double mass = 0, zmax = -INFINITY;
      for (int j : kept) {
        mass += c.target[(size_t)i * c.nb + j];
        zmax = std::max(zmax, score[(size_t)i * c.nb + j]);
      }
      if (mass <= 0) continue;
      double z = 0;
      for (int j : kept) z += std::exp(score[(size_t)i * c.nb + j] - zmax);
      for (int j : kept) {
        const double t = c.target[(size_t)i * c.nb + j] / mass;
        const double p = std::exp(score[(size_t)i * c.nb + j] - zmax) / z;
        if (t > 0) total += t * std::log(t / p);
      }
    }
  return total / ((double)mask.n_mask_heads * c.nb);
}

}  // namespace

TEST(indexer_selected_kl_matches_float64_reference_gqa) {
  const Case c(21);
  for (bool shared : {true, false}) {
    const BlockMask mask = c.mask(shared);
    EXPECT(mask.n_mask_heads == (shared ? Case::Hkv : Case::H));
    // The random blocks differ between mask heads, so each head renormalises over its own set,
    // and the first query block keeps only its diagonal (a one-block row).
    bool heads_differ = false;
    for (int i = 0; i < c.nb; i++)
      for (int j = 0; j < c.nb; j++) heads_differ |= mask.test(0, i, j) != mask.test(1, i, j);
    EXPECT(heads_differ);
    EXPECT(mask.kv_ptr[1] - mask.kv_ptr[0] == 1);
    const double got = c.loss(nullptr, nullptr, nullptr, &mask), want = reference_selected_kl(c, mask);
    EXPECT_MSG(want > 1e-3 && std::fabs(got - want) <= 1e-10 * want, "shared " << shared << ": " << got << " vs " << want);
    // Not the warm-up KL: the kept set changes the value.
    EXPECT(std::fabs(got - c.loss(nullptr, nullptr, nullptr, nullptr)) > 1e-3);
  }
}

TEST(indexer_selected_kl_is_zero_on_one_block_rows) {
  // Every row keeps only its diagonal: both distributions are a single 1, so loss and gradient are 0.
  const Case c(5);
  MaskSpec m;
  m.block_size = Case::bs;
  m.global_blocks = 0;
  m.window_blocks = 0;
  const BlockMask diag = build_block_mask(m, c.T, Case::H, Case::Hkv, 0, nullptr);
  EXPECT(diag.kept_pairs() == (int64_t)Case::Hkv * c.nb);
  std::vector<float> gq(c.wq.size(), 0.0f), gk(c.wk.size(), 0.0f), gh(c.wh.size(), 0.0f);
  EXPECT(c.loss(&gq, &gk, &gh, &diag) == 0.0);
  for (const auto* g : {&gq, &gk, &gh}) EXPECT(std::all_of(g->begin(), g->end(), [](float v) { return v == 0.0f; }));
}

TEST(indexer_selected_kl_equals_warmup_when_every_block_is_kept) {
  const Case c(9);
  const BlockMask dense = c.mask(true, 2, /*dense_below=*/c.T + 1);
  EXPECT(dense.dense && dense.density() == 1.0);
  std::vector<float> g1q(c.wq.size(), 0.0f), g1k(c.wk.size(), 0.0f), g1h(c.wh.size(), 0.0f);
  std::vector<float> g2q = g1q, g2k = g1k, g2h = g1h;
  const double warm = c.loss(&g1q, &g1k, &g1h, nullptr), sel = c.loss(&g2q, &g2k, &g2h, &dense);
  // The float32 target rows sum to 1 only to rounding; the selected KL renormalises exactly.
  EXPECT_MSG(std::fabs(warm - sel) <= 1e-6 * warm, warm << " vs " << sel);
  for (auto [a, b] : {std::pair{&g1q, &g2q}, {&g1k, &g2k}, {&g1h, &g2h}}) {
    std::vector<double> want(a->begin(), a->end());
    EXPECT_CLOSE(b->data(), want.data(), want.size(), 1e-7, 1e-5);
  }
}

TEST(indexer_selected_kl_gradients_match_central_differences) {
  Case c(33);
  const BlockMask mask = c.mask(true);  // fixed: the selection itself has no gradient
  std::vector<float> gq(c.wq.size(), 0.0f), gk(c.wk.size(), 0.0f), gh(c.wh.size(), 0.0f);
  c.loss(&gq, &gk, &gh, &mask);
  // Central differences of the float64-accumulated loss, step 1e-3 relative; the loss is smooth
  // away from relu kinks, so the error is O(step^2) plus float rounding of the inputs: 2e-3 of the
  // largest derivative.
  double err = 0, mag = 0;
  for (auto [w, g] : {std::pair{&c.wq, &gq}, {&c.wk, &gk}, {&c.wh, &gh}})
    for (size_t i = 0; i < w->size(); i++) {
      const float keep = (*w)[i];
      const float eps = 1e-3f * std::max(1.0f, std::fabs(keep));
      (*w)[i] = keep + eps;
      const double up = c.loss(nullptr, nullptr, nullptr, &mask);
      (*w)[i] = keep - eps;
      const double down = c.loss(nullptr, nullptr, nullptr, &mask);
      (*w)[i] = keep;
      const double fd = (up - down) / ((double)(keep + eps) - (double)(keep - eps));
      err = std::max(err, std::fabs(fd - (*g)[i]));
      mag = std::max(mag, std::fabs(fd));
    }
  EXPECT_MSG(mag > 1e-3 && err / mag < 2e-3, "max |grad - fd| / max |fd| = " << err / mag << " (max fd " << mag << ")");
}

TEST(indexer_selected_loss_per_sequence_masks_and_determinism) {
  // Backend::indexer_loss over a batch of 2 with one mask per sequence: the batch mean of each
  // sequence's own selected KL, and the same bits on a second call.
  const int B = 2, H = 4, Hkv = 2, T = 16 * 5 + 3, D = 8, bs = 16;
  Rng r{17};
  IndexerShape s;
  s.C = 12;
  s.Hi = 2;
  s.Di = 4;
  auto x = randn((size_t)B * T * s.C, r);
  std::vector<float> wq((size_t)s.Hi * s.Di * s.C), wk((size_t)s.Di * s.C), wh(s.Hi);
  indexer_init(wq.data(), wk.data(), wh.data(), s, 3);
  for (float& w : wq) w *= 4;
  auto q = randn((size_t)B * H * T * D, r), k = randn((size_t)B * Hkv * T * D, r);
  std::vector<float> lse((size_t)B * H * T);
  for (int b = 0; b < B; b++)  // the teacher's dense lse, float64
    for (int h = 0; h < H; h++)
      for (int t = 0; t < T; t++) {
        std::vector<double> sc(t + 1);
        double mx = -INFINITY;
        for (int u = 0; u <= t; u++) {
          double dot = 0;
          for (int d = 0; d < D; d++)
            dot += (double)q[(((size_t)b * H + h) * T + t) * D + d] * k[(((size_t)b * Hkv + h / 2) * T + u) * D + d];
          mx = std::max(mx, sc[u] = dot / std::sqrt((double)D));
        }
        double z = 0;
        for (double v : sc) z += std::exp(v - mx);
        lse[((size_t)b * H + h) * T + t] = (float)(mx + std::log(z));
      }
  MaskSpec m;
  m.block_size = bs;
  m.global_blocks = 1;
  m.window_blocks = 0;
  m.random_blocks = 1;
  m.topk_blocks = 1;
  m.selector = MaskSpec::Indexer;
  const int nb = (T + bs - 1) / bs;
  std::vector<BlockMask> masks;
  std::vector<float> scores((size_t)Hkv * nb * nb);
  for (int b = 0; b < B; b++) {
    indexer_block_scores(scores.data(), x.data() + (size_t)b * T * s.C, wq.data(), wk.data(), wh.data(), s, T, bs, Hkv);
    masks.push_back(build_block_mask(m, T, H, Hkv, 0, scores.data()));
  }
  EXPECT(masks[0].bits != masks[1].bits);
  auto be = cpu_backend();
  auto run = [&](std::vector<float>& gq, std::vector<float>& gk, std::vector<float>& gh) {
    gq.assign(wq.size(), 0.0f);
    gk.assign(wk.size(), 0.0f);
    gh.assign(wh.size(), 0.0f);
    return be->indexer_loss(gq.data(), gk.data(), gh.data(), 1.0f, x.data(), wq.data(), wk.data(), wh.data(), q.data(),
                            k.data(), lse.data(), s, B, H, Hkv, T, D, bs, &masks);
  };
  std::vector<float> aq, ak, ah, bq, bk, bh;
  const double first = run(aq, ak, ah), second = run(bq, bk, bh);
  EXPECT(first == second && aq == bq && ak == bk && ah == bh);
  double want = 0;
  std::vector<float> target((size_t)nb * nb);
  for (int b = 0; b < B; b++) {
    teacher_block_attention(target.data(), q.data() + (size_t)b * H * T * D, k.data() + (size_t)b * Hkv * T * D,
                            lse.data() + (size_t)b * H * T, H, Hkv, T, D, bs);
    want += indexer_kl_loss(nullptr, nullptr, nullptr, x.data() + (size_t)b * T * s.C, wq.data(), wk.data(), wh.data(),
                            target.data(), s, T, bs, &masks[b]) / B;
  }
  EXPECT_MSG(std::fabs(first - want) <= 1e-12 * want, first << " vs " << want);
  std::vector<BlockMask> three(3, masks[0]);
  bool threw = false;
  try {
    be->indexer_loss(nullptr, nullptr, nullptr, 1.0f, x.data(), wq.data(), wk.data(), wh.data(), q.data(), k.data(),
                     lse.data(), s, B, H, Hkv, T, D, bs, &three);
  } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("3 selected masks for a batch of 2") != std::string::npos;
  }
  EXPECT(threw);
}

namespace {

// A 2-layer model whose layer 0 has a trainable indexer (the base frozen), trained with the
// indexer's KL only, for `steps` steps; returns each step's result.
std::vector<StepResult> train_indexer(int warmup_steps, int steps) {
  Model m(fixtures::tiny_config("llama", 23, 2, 4, false));
  m.init_random(8);
  MaskSpec s;
  s.block_size = 16;
  s.global_blocks = 1;
  s.window_blocks = 0;
  s.random_blocks = 1;
  s.topk_blocks = 1;
  s.selector = MaskSpec::Indexer;
  s.indexer_warmup_steps = warmup_steps;
  m.set_attention(0, &s);
  m.set_trainable({}, {ParamKind::q, ParamKind::k, ParamKind::v, ParamKind::o, ParamKind::mlp, ParamKind::norms,
                       ParamKind::embeddings}, false);
  auto tok = fixtures::tokens(2, 80, m.config().vocab_size, 12);
  StepOptions o;
  o.lr = 1e-2f;
  o.distill = true;
  o.weights = DistillWeights{0.0f, 1.0f, 0.0f, 0.0f, 1.0f};
  std::vector<StepResult> out;
  for (int i = 0; i < steps; i++) out.push_back(m.train_step(tok.data(), 2, 80, o));
  return out;
}

}  // namespace

TEST(model_indexer_switches_to_selected_kl_at_the_warmup_step) {
  const int W = 3, steps = 6;
  const auto phased = train_indexer(W, steps), again = train_indexer(W, steps);
  const auto warmup_only = train_indexer(-1, steps), from_start = train_indexer(0, steps);
  for (int i = 0; i < steps; i++) {
    const StepResult& r = phased[i];
    EXPECT(r.indexer_phase.size() == 2 && r.indexer_phase[1] == 0);
    EXPECT_MSG(r.indexer_phase[0] == (i < W ? 1 : 2), "step " << i << ": phase " << (int)r.indexer_phase[0]);
    EXPECT(warmup_only[i].indexer_phase[0] == 1 && from_start[i].indexer_phase[0] == 2);
    EXPECT(std::isfinite(r.indexer_loss) && r.indexer_loss > 0);
    EXPECT(r.loss == r.attn_kl_loss + r.indexer_loss);  // weights: attn_kl 1, the rest 0
    // Deterministic: a second run gives the same bits.
    EXPECT(r.loss == again[i].loss && r.indexer_loss == again[i].indexer_loss && r.grad_norm == again[i].grad_norm);
  }
  // Identical to the warm-up-only run until the switch, different from its first phase-2 step on.
  for (int i = 0; i < W; i++) EXPECT(phased[i].indexer_loss == warmup_only[i].indexer_loss);
  EXPECT_MSG(phased[W].indexer_loss != warmup_only[W].indexer_loss, "step " << W << " still on the warm-up KL");
  // With no warm-up the first step already uses the selected-set KL.
  EXPECT(from_start[0].indexer_loss != warmup_only[0].indexer_loss);
}
