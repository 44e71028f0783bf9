// Model tests: gradients against central finite differences (double-accumulated loss, float32
// weights), training behaviour (overfitting, freezing, determinism), the shared-weights teacher,
// and block-sparse layers. The float64 reference forward lives in native/model.test.ts.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "check.h"
#include "model.h"
#include "model_fixtures.h"

using namespace engine;

namespace {

ModelConfig tiny(const std::string& type, bool tied) {
  ModelConfig c = fixtures::tiny_config(type, 23, 2, type == "qwen3" ? 8 : 4, tied);
  if (type == "minicpm") {
    // scale_emb 2, scale_depth 1.4, dim_model_base 8
    c.embedding_scale = 2.0f;
    c.residual_scale = 1.4f / std::sqrt((float)c.num_layers);
    c.logit_divisor = (float)c.hidden_size / 8;
  }
  return c;
}

using fixtures::tokens;

// Scales up the init so the tiny model has non-trivial activations and gradients.
void spread(Model& m, uint64_t seed) {
  m.init_random(seed);
  for (auto& p : m.params()) {
    if (p.kind == ParamKind::norms) {
      for (size_t i = 0; i < p.data.size(); i++) p.data[i] = 1.0f + 0.1f * (float)((i * 7919) % 13) / 13.0f;
    } else {
      for (auto& x : p.data) x *= 12.0f;
    }
  }
}

StepOptions adam(float lr) {
  StepOptions o;
  o.lr = lr;
  o.beta1 = 0.9f;
  o.beta2 = 0.99f;
  o.eps = 1e-8f;
  o.weight_decay = 0.0f;
  o.grad_clip = 1.0f;
  return o;
}

// Central differences of the loss for a few entries of every tensor, against the analytic grads.
void gradient_check(const std::string& type, bool tied, const StepOptions& options, const MaskSpec* mask, int T = 9) {
  Model m(tiny(type, tied));
  spread(m, 3);
  if (mask) m.set_attention(1, mask);
  const int B = 2;
  auto tok = tokens(B, T, m.config().vocab_size, 11);
  if (options.distill) {  // make student and teacher differ: unfreeze everything, then nudge the student
    m.set_trainable({}, {ParamKind::q, ParamKind::k, ParamKind::v, ParamKind::o, ParamKind::mlp, ParamKind::norms,
                         ParamKind::embeddings}, true);
    for (auto& p : m.params())
      for (size_t i = 0; i < p.data.size(); i++) p.data[i] += 0.05f * (float)((int)((i * 31 + p.name.size()) % 7) - 3) / 3.0f;
  }
  m.compute_gradients(tok.data(), B, T, options);
  std::vector<std::vector<float>> grads;
  for (auto& p : m.params()) grads.push_back(p.grad);
  auto loss_at = [&]() { return m.compute_gradients(tok.data(), B, T, options).loss; };
  for (size_t pi = 0; pi < m.params().size(); pi++) {
    Param& p = m.params()[pi];
    for (int probe = 0; probe < 3; probe++) {
      const size_t i = (size_t)(probe * 7919 + 13) % p.data.size();
      const float saved = p.data[i];
      const float h = 1e-2f * std::max(1.0f, std::fabs(saved));
      p.data[i] = saved + h;
      const double up = loss_at();
      p.data[i] = saved - h;
      const double down = loss_at();
      p.data[i] = saved;
      const double fd = (up - down) / (2.0 * h);
      const double got = grads[pi][i];
      EXPECT_MSG(std::fabs(got - fd) <= 2e-3 + 5e-2 * std::fabs(fd),
                 type << (tied ? " tied " : " untied ") << p.name << "[" << i << "]: analytic " << got << " vs finite "
                      << fd);
    }
  }
}

MaskSpec sparse_mask() {
  MaskSpec s;
  s.block_size = 16;
  s.global_blocks = 1;
  s.window_blocks = 0;
  s.random_blocks = 0;
  s.topk_blocks = 0;
  s.selector = MaskSpec::None;
  s.dense_below = 0;
  return s;
}

}  // namespace

TEST(model_gradients_llama_untied) { gradient_check("llama", false, adam(0), nullptr); }
TEST(model_gradients_qwen3_tied) { gradient_check("qwen3", true, adam(0), nullptr); }
TEST(model_gradients_minicpm_tied) { gradient_check("minicpm", true, adam(0), nullptr); }

TEST(model_gradients_distillation_logit_kl_hidden_mse) {
  StepOptions o = adam(0);
  o.distill = true;
  o.weights = DistillWeights{0.5f, 0.0f, 0.7f, 3.0f, 2.0f};
  gradient_check("qwen3", false, o, nullptr);
}

TEST(model_gradients_block_sparse_with_attention_kl) {
  StepOptions o = adam(0);
  o.distill = true;
  o.weights = DistillWeights{1.0f, 2.0f, 0.5f, 0.0f, 1.0f};
  MaskSpec s = sparse_mask();
  gradient_check("llama", false, o, &s, 40);
}

TEST(model_gradients_attention_entropy_alone_dense_and_block_sparse) {
  // Every other term weighs 0 (distillation with zero weights), so the loss is the entropy term
  // alone: layer 0 dense (two 64-token blocks of its dense mask), layer 1 block-sparse.
  StepOptions o = adam(0);
  o.distill = true;
  o.weights = DistillWeights{0.0f, 0.0f, 0.0f, 0.0f, 1.0f};
  o.attn_entropy_weight = 3.0f;
  MaskSpec s = sparse_mask();
  gradient_check("qwen3", false, o, &s, 70);
}

TEST(model_gradients_task_plus_attention_entropy) {
  StepOptions o = adam(0);
  o.attn_entropy_weight = 0.5f;
  gradient_check("llama", false, o, nullptr, 20);
}

TEST(model_attention_entropy_is_reported_deterministic_and_checked) {
  auto run = [](float weight, std::vector<double>& values) {
    Model m(tiny("llama", false));
    m.init_random(9);
    auto tok = tokens(2, 24, m.config().vocab_size, 4);
    StepOptions o = adam(1e-2f);
    o.attn_entropy_weight = weight;
    for (int s = 0; s < 3; s++) {
      StepResult r = m.train_step(tok.data(), 2, 24, o);
      EXPECT(r.attn_entropy.has_value() == (weight > 0));
      // The loss is the task loss plus the weighted entropy; the entropy lies in [0, log T].
      const double ent = r.attn_entropy.value_or(0);
      EXPECT_MSG(std::fabs(r.loss - (r.task_loss + weight * ent)) < 1e-12, "loss " << r.loss);
      EXPECT(weight == 0 || (ent > 0 && ent < std::log(24.0)));
      values.insert(values.end(), {r.loss, ent});
    }
  };
  std::vector<double> a, b, off;
  run(0.7f, a);
  run(0.7f, b);
  run(0.0f, off);
  EXPECT(std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
  Model m(tiny("llama", false));
  auto tok = tokens(1, 8, m.config().vocab_size, 1);
  StepOptions bad = adam(1e-2f);
  bad.attn_entropy_weight = -1.0f;
  EXPECT_THROWS_MSG(m.train_step(tok.data(), 1, 8, bad), "options.attn_entropy_weight: must be a finite number >= 0");
}

TEST(model_overfits_a_short_sequence) {
  Model m(tiny("llama", false));
  m.init_random(1);
  const int B = 1, T = 16;
  auto tok = tokens(B, T, m.config().vocab_size, 5);
  double first = 0, last = 0;
  for (int s = 0; s < 60; s++) {
    StepResult r = m.train_step(tok.data(), B, T, adam(3e-2f));
    if (s == 0) first = r.loss;
    last = r.loss;
  }
  EXPECT_MSG(first > 2.5, "initial loss " << first << " should be near log(23) = 3.14");
  EXPECT_MSG(last < 0.2, "loss after 60 steps " << last << " should be < 0.2");
}

TEST(model_frozen_tensors_stay_bit_identical) {
  Model m(tiny("qwen3", false));
  m.init_random(2);
  m.set_trainable({}, {ParamKind::q, ParamKind::k, ParamKind::v, ParamKind::o, ParamKind::mlp, ParamKind::norms,
                       ParamKind::embeddings}, false);
  m.set_trainable({1}, {ParamKind::q, ParamKind::v}, true);
  std::vector<std::vector<float>> before;
  for (auto& p : m.params()) before.push_back(p.data);
  auto tok = tokens(2, 12, m.config().vocab_size, 9);
  for (int s = 0; s < 3; s++) m.train_step(tok.data(), 2, 12, adam(1e-2f));
  for (size_t i = 0; i < m.params().size(); i++) {
    const Param& p = m.params()[i];
    const bool should_train = p.layer == 1 && (p.kind == ParamKind::q || p.kind == ParamKind::v);
    const bool same = std::memcmp(p.data.data(), before[i].data(), p.data.size() * sizeof(float)) == 0;
    EXPECT_MSG(same != should_train, p.name << (should_train ? " did not change" : " changed while frozen"));
    EXPECT_MSG(should_train || (p.grad.empty() && p.m.empty()), p.name << " is frozen but holds optimiser buffers");
    // the teacher keeps the base weights of unfrozen tensors
    EXPECT_MSG(std::memcmp(p.teacher_data(), before[i].data(), p.data.size() * sizeof(float)) == 0,
               p.name << " teacher weights changed");
  }
}

TEST(model_steps_are_deterministic) {
  auto run = [](std::vector<double>& losses) {
    Model m(tiny("minicpm", true));
    m.init_random(7);
    auto tok = tokens(2, 20, m.config().vocab_size, 3);
    for (int s = 0; s < 4; s++) losses.push_back(m.train_step(tok.data(), 2, 20, adam(1e-2f)).loss);
  };
  std::vector<double> a, b;
  run(a);
  run(b);
  EXPECT(std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
  EXPECT(a.back() < a.front());
}

// A step's gradients are its own: a tensor's gradient buffer is not zero-filled before the step
// but overwritten by its first write (or zero-filled then), so whatever it held (an earlier
// step's gradients, even NaN) must not leak in. Untied and tied heads, and a mixture of experts
// with 3 tokens over 8 experts (the experts no token reaches get no write and must read zero).
TEST(model_gradients_ignore_what_the_buffers_held) {
  ModelConfig moe = fixtures::tiny_config("qwen3_moe", 23, 2, 8, false);
  moe.qk_norm = true;
  moe.num_experts = 8;
  moe.num_experts_per_tok = 1;
  moe.moe_intermediate_size = 12;
  for (const ModelConfig& c : {tiny("llama", false), tiny("qwen3", true), moe}) {
    const int B = 1, T = 3;
    auto first = tokens(B, T, c.vocab_size, 20), second = tokens(B, T, c.vocab_size, 21);
    Model fresh(c);
    spread(fresh, 5);
    const StepResult want = fresh.compute_gradients(second.data(), B, T, adam(0));
    Model m(c);
    spread(m, 5);
    m.compute_gradients(first.data(), B, T, adam(0));
    for (auto& p : m.params()) std::fill(p.grad.begin(), p.grad.end(), std::numeric_limits<float>::quiet_NaN());
    const StepResult got = m.compute_gradients(second.data(), B, T, adam(0));
    EXPECT_MSG(got.grad_norm == want.grad_norm, c.model_type << ": " << got.grad_norm << " vs " << want.grad_norm);
    for (size_t i = 0; i < m.params().size(); i++)
      EXPECT_MSG(m.params()[i].grad == fresh.params()[i].grad, c.model_type << " " << m.params()[i].name);
  }
}

TEST(model_teacher_is_the_dense_base) {
  Model m(tiny("llama", true));
  m.init_random(4);
  auto tok = tokens(2, 16, m.config().vocab_size, 8);
  const double base = m.loss(tok.data(), 2, 16);
  m.set_trainable({}, {ParamKind::q, ParamKind::k, ParamKind::v, ParamKind::o, ParamKind::mlp, ParamKind::norms,
                       ParamKind::embeddings}, false);
  m.set_trainable({0}, {ParamKind::mlp}, true);
  StepOptions o = adam(2e-2f);
  o.distill = true;
  o.weights = DistillWeights{1.0f, 0.0f, 0.5f, 0.5f, 1.0f};
  for (int s = 0; s < 5; s++) m.train_step(tok.data(), 2, 16, o);
  EvalResult e = m.evaluate(tok.data(), 2, 16);
  EXPECT_MSG(std::fabs(e.loss_teacher - base) < 1e-6, "teacher loss " << e.loss_teacher << " vs base " << base);
  EXPECT_MSG(e.loss < base, "student loss " << e.loss << " should fall below the base " << base);
  EXPECT(e.logit_kl > 0 && e.hidden_mse > 0 && e.out_cos < 1 && e.out_cos > 0.5);
  for (int l = 0; l < 2; l++) EXPECT(std::isnan(e.attn_kl[l]) && std::isnan(e.density[l]));
}

TEST(model_rejects_bad_tokens_and_lengths) {
  Model m(tiny("llama", false));
  auto tok = tokens(1, 4, 23, 1);
  tok[3] = 23;
  bool threw = false;
  try {
    m.loss(tok.data(), 1, 4);
  } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("batch.tokens[3] = 23") != std::string::npos;
  }
  EXPECT(threw);
  threw = false;
  std::vector<int32_t> long_batch(200, 1);
  try {
    m.loss(long_batch.data(), 1, 199);
  } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("max_position_embeddings") != std::string::npos;
  }
  EXPECT(threw);
}

TEST(model_block_sparse_layer_trains_and_reports_density) {
  Model m(tiny("llama", false));
  m.init_random(5);
  MaskSpec s = sparse_mask();
  m.set_attention(1, &s);
  auto tok = tokens(2, 64, m.config().vocab_size, 2);
  StepResult r = m.train_step(tok.data(), 2, 64, adam(1e-2f));
  // 4 blocks: causal pairs 10 per head; kept = diagonal 4 + global 3 = 7
  EXPECT_MSG(std::fabs(r.density - 0.7) < 1e-9, "density " << r.density);
  EXPECT(std::isfinite(r.loss));
}

TEST(model_evaluate_reports_attention_metrics_of_sparse_layers) {
  Model m(tiny("qwen3", true));
  spread(m, 6);
  MaskSpec s = sparse_mask();
  m.set_attention(1, &s);
  auto tok = tokens(2, 64, m.config().vocab_size, 4);
  EvalResult e = m.evaluate(tok.data(), 2, 64);
  EXPECT(std::isnan(e.attn_kl[0]) && std::isnan(e.attn_recall[0]) && std::isnan(e.density[0]));
  EXPECT_MSG(e.attn_kl[1] > 0 && e.attn_recall[1] > 0 && e.attn_recall[1] < 1, "kl " << e.attn_kl[1] << " recall " << e.attn_recall[1]);
  EXPECT_MSG(e.attn_kl[1] >= -std::log(e.attn_recall[1]) - 1e-9, "Jensen: kl " << e.attn_kl[1] << " recall " << e.attn_recall[1]);
  EXPECT(std::fabs(e.density[1] - 0.7) < 1e-9);
  // pure masking: the layer-1 output differs from the teacher's, but layer 0 is shared
  EXPECT(e.out_cos < 1 && e.out_cos > 0 && e.hidden_mse > 0 && e.logit_kl > 0);
  m.set_attention(1, nullptr);
  EvalResult dense = m.evaluate(tok.data(), 2, 64);
  EXPECT(std::isnan(dense.attn_kl[1]) && dense.logit_kl < 1e-9 && std::fabs(dense.loss - dense.loss_teacher) < 1e-9);
}

TEST(model_indexer_warms_up_with_the_base_frozen) {
  Model m(tiny("llama", false));
  m.init_random(8);
  MaskSpec s = sparse_mask();
  s.topk_blocks = 1;
  s.selector = MaskSpec::Indexer;
  m.set_attention(0, &s);
  m.set_trainable({}, {ParamKind::q, ParamKind::k, ParamKind::v, ParamKind::o, ParamKind::mlp, ParamKind::norms,
                       ParamKind::embeddings}, false);
  const Param& wq = m.param("model.layers.0.self_attn.indexer.wq.weight");
  EXPECT(wq.kind == ParamKind::selector && wq.trainable);
  const std::vector<float> before = wq.data;
  const std::vector<float> embed = m.param("model.embed_tokens.weight").data;
  auto tok = tokens(2, 64, m.config().vocab_size, 12);
  StepOptions o = adam(1e-2f);
  o.distill = true;
  o.weights = DistillWeights{0.0f, 1.0f, 0.0f, 0.0f, 1.0f};
  double first = 0, last = 0;
  for (int i = 0; i < 8; i++) {
    StepResult r = m.train_step(tok.data(), 2, 64, o);
    if (i == 0) first = r.loss;
    last = r.loss;
    EXPECT(std::isfinite(r.loss) && r.density < 1);
  }
  EXPECT_MSG(last < first, "indexer warm-up loss " << first << " -> " << last);
  EXPECT(m.param("model.layers.0.self_attn.indexer.wq.weight").data != before);
  EXPECT(m.param("model.embed_tokens.weight").data == embed);
}

TEST(model_pooled_topk_layer_runs_per_sequence_masks) {
  Model m(tiny("minicpm", true));
  m.init_random(9);
  MaskSpec s = sparse_mask();
  s.topk_blocks = 1;
  s.selector = MaskSpec::Pooled;
  m.set_attention(1, &s);
  auto tok = tokens(3, 80, m.config().vocab_size, 1);
  StepResult r = m.train_step(tok.data(), 3, 80, adam(1e-2f));
  EXPECT(std::isfinite(r.loss) && r.density < 1 && r.density > 0.5);
  EvalResult e = m.evaluate(tok.data(), 3, 80);
  EXPECT(std::isfinite(e.attn_kl[1]) && e.attn_recall[1] > 0);
}

TEST(model_optimizer_buffers_are_lazy) {
  Model m(tiny("llama", true));
  m.init_random(1);
  auto tok = tokens(1, 8, m.config().vocab_size, 1);
  m.evaluate(tok.data(), 1, 8);
  for (auto& p : m.params()) EXPECT_MSG(p.trainable && p.grad.empty() && p.m.empty(), p.name << " has buffers before training");
  m.set_trainable({}, {ParamKind::mlp}, false);
  m.train_step(tok.data(), 1, 8, adam(1e-3f));
  for (auto& p : m.params())
    EXPECT_MSG((p.kind == ParamKind::mlp) == p.grad.empty() && p.m.size() == (p.kind == ParamKind::mlp ? 0 : p.data.size()),
               p.name << " buffers do not follow trainability");
}
