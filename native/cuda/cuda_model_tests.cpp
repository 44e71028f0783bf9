// Whole-model tests: the same engine::Model code on the CPU backend and on the CUDA backend,
// same config, same init_random(1), same tokens and options, compared after one step.
// Small llama and qwen3 (QK-norm) models: vocab 512, hidden 256, intermediate 512, 4 layers,
// 4 heads, 2 kv heads, head_dim 64; B 2, T 256; layer 1 block-sparse (blocks of 64) where stated.
// Tolerances, CUDA bf16 (matrix products and attention in bf16, fp32 accumulate):
//   loss 1e-2 relative, grad_norm 5e-2 relative, each tensor's gradient 5e-2 in relative L2;
//   CUDA fp32 (attention still bf16): loss 2e-3, grad_norm 2e-2, gradients 2e-2; CUDA fp16 (products
//   in fp16 with dynamic loss scaling): the bf16 ones.
//   Weights after one AdamW step: at step 1 the update is lr * g / (|g| + eps), about lr * sign(g),
//   so elements whose gradient is below the bf16 noise may move the other way; we require every
//   weight within 2.5 lr of the CPU's and at most 5% of each tensor's elements more than lr / 2
//   away (same direction of travel for the rest).
// Part of the cuda_tests binary: without a device every test is skipped (see cuda_tests.cpp).
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend.h"
#include "check.h"
#include "cuda_test_util.h"
#include "model.h"
#include "model_shapes.h"
#include "ops_cuda.h"

namespace {
using cuda_test::near_scalar;
using cuda_test::small_config;
using cuda_test::tokens_for;
using engine::Model;
using engine::Precision;

constexpr int kB = 2, kT = 256;

// Layer 1 block-sparse: global block 0 and the diagonal (rows 2, 3 of the 4 blocks skip a block).
engine::MaskSpec sparse_spec() {
  engine::MaskSpec spec;
  spec.block_size = 64;
  spec.global_blocks = 1;
  spec.window_blocks = 0;
  spec.random_blocks = 0;
  return spec;
}

struct Pair {
  std::unique_ptr<Model> cpu, gpu;
  Pair(const engine::ModelConfig& config, Precision p, bool sparse) {
    cpu = std::make_unique<Model>(config);
    gpu = std::make_unique<Model>(config, cuda_test::cuda_backend_at(p));
    EXPECT(gpu->backend().name() == "cuda");
    cpu->init_random(1);
    gpu->init_random(1);
    if (sparse) {
      const engine::MaskSpec spec = sparse_spec();
      cpu->set_attention(1, &spec);
      gpu->set_attention(1, &spec);
    }
  }
};

double l2(const std::vector<float>& a) {
  double s = 0;
  for (float x : a) s += (double)x * x;
  return std::sqrt(s);
}

void gradients_close(Model& cpu, Model& gpu, double tol, const std::string& what) {
  const auto& pc = cpu.params();
  const auto& pg = gpu.params();
  EXPECT(pc.size() == pg.size());
  for (size_t i = 0; i < pc.size(); i++) {
    if (!pc[i].trainable) continue;
    const auto& gc = pc[i].grad;
    const auto& gg = pg[i].grad;
    EXPECT_MSG(gc.size() == gg.size() && !gc.empty(), what << ": " << pc[i].name << " has no gradient on one side");
    std::vector<float> diff(gc.size());
    for (size_t j = 0; j < gc.size(); j++) diff[j] = gg[j] - gc[j];
    const double ref = l2(gc), err = l2(diff);
    EXPECT_MSG(err <= tol * ref + 1e-12, what << ": " << pc[i].name << " gradient relative L2 error " << err / ref << " > " << tol);
  }
}

void weights_close(Model& cpu, Model& gpu, float lr, const std::string& what) {
  const auto& pc = cpu.params();
  const auto& pg = gpu.params();
  for (size_t i = 0; i < pc.size(); i++) {
    const auto& a = pc[i].data;
    const auto& b = pg[i].data;
    EXPECT(a.size() == b.size());
    size_t far = 0;
    double worst = 0;
    for (size_t j = 0; j < a.size(); j++) {
      const double d = std::fabs((double)b[j] - a[j]);
      worst = std::isnan(d) ? INFINITY : std::max(worst, d);
      far += d > 0.5 * lr;
    }
    EXPECT_MSG(worst <= 2.5 * lr, what << ": " << pc[i].name << " weight differs by " << worst << " (> 2.5 lr)");
    EXPECT_MSG(far <= a.size() / 20 + 1, what << ": " << pc[i].name << ": " << far << " of " << a.size() << " weights moved differently (> 5%)");
  }
}

// A distillation step at lr 1e-3 with these loss weights.
engine::StepOptions distill_options(float task, float attn_kl, float logit_kl, float temperature) {
  engine::StepOptions opt;
  opt.lr = 1e-3f;
  opt.distill = true;
  opt.weights.task = task;
  opt.weights.attn_kl = attn_kl;
  opt.weights.logit_kl = logit_kl;
  opt.weights.temperature = temperature;
  return opt;
}

struct Tolerances { double loss, grad_norm, grads; };
Tolerances tolerances(Precision p) { return p == Precision::fp32 ? Tolerances{2e-3, 2e-2, 2e-2} : Tolerances{1e-2, 5e-2, 5e-2}; }

void train_step_case(const std::string& type, Precision p, bool sparse) {
  const std::string what = type + (p == Precision::fp32 ? " fp32" : " bf16") + (sparse ? " sparse" : " dense");
  const Tolerances tol = tolerances(p);
  Pair m(small_config(type), p, sparse);
  const auto tokens = tokens_for(kB, kT, 512, 3);
  engine::StepOptions opt;
  opt.lr = 1e-3f;
  // Gradients first (no update), then one full step from the same weights.
  const auto gc = m.cpu->compute_gradients(tokens.data(), kB, kT, opt);
  const auto gg = m.gpu->compute_gradients(tokens.data(), kB, kT, opt);
  near_scalar(gg.loss, gc.loss, tol.loss, 0, what + ": loss (compute_gradients)");
  near_scalar(gg.grad_norm, gc.grad_norm, tol.grad_norm, 0, what + ": grad_norm (compute_gradients)");
  gradients_close(*m.cpu, *m.gpu, tol.grads, what);
  const auto rc = m.cpu->train_step(tokens.data(), kB, kT, opt);
  const auto rg = m.gpu->train_step(tokens.data(), kB, kT, opt);
  near_scalar(rg.loss, rc.loss, tol.loss, 0, what + ": loss");
  near_scalar(rg.grad_norm, rc.grad_norm, tol.grad_norm, 0, what + ": grad_norm");
  near_scalar(rg.density, rc.density, 0, 1e-12, what + ": density");
  EXPECT(!rg.skipped);
  weights_close(*m.cpu, *m.gpu, opt.lr, what);
  // The step moved the loss the same way on both.
  near_scalar(m.gpu->loss(tokens.data(), kB, kT), m.cpu->loss(tokens.data(), kB, kT), tol.loss, 0, what + ": loss after the step");
}
}  // namespace

TEST(cuda_model_llama_train_step_matches_cpu) {
  train_step_case("llama", Precision::bf16, false);
  train_step_case("llama", Precision::bf16, true);
}

TEST(cuda_model_qwen3_train_step_matches_cpu) {
  train_step_case("qwen3", Precision::bf16, false);
  train_step_case("qwen3", Precision::bf16, true);
}

TEST(cuda_model_fp32_train_step_matches_cpu) {
  train_step_case("llama", Precision::fp32, true);
  train_step_case("qwen3", Precision::fp32, false);
}

std::vector<std::vector<float>> weights_of(Model& m) {
  std::vector<std::vector<float>> w;
  for (const auto& p : m.params()) w.push_back(p.data);
  return w;
}
void weights_unchanged(Model& m, const std::vector<std::vector<float>>& before, const std::string& what) {
  const auto& ps = m.params();
  for (size_t i = 0; i < ps.size(); i++) EXPECT_MSG(ps[i].data == before[i], what << ": " << ps[i].name << " moved on a skipped step");
}

// fp16 end to end: matrix products at fp16 compute (cuBLAS _32F_FAST_16F) with dynamic loss
// scaling, against the CPU's fp32 step. (1) At a scale far past fp16's range (2^40) the LM head's
// backward overflows: the step is skipped, the scale halves, no weight moves. (2) From the
// initial scale (65536), each skipped step halving it as in training, the first step taken
// matches the CPU's at the bf16 tolerances (fp16 keeps more mantissa bits than bf16), and one
// good step does not grow the scale (growth interval 2000).
TEST(cuda_model_fp16_loss_scaling_step_matches_cpu) {
  for (const char* type : {"llama", "qwen3"}) {
    const std::string what = std::string(type) + " fp16";
    const Tolerances tol = tolerances(Precision::fp16);
    Pair m(small_config(type), Precision::fp16, true);
    EXPECT(m.gpu->backend().precision() == Precision::fp16);
    EXPECT_MSG(m.gpu->loss_scale() == 65536, what << ": initial loss scale " << m.gpu->loss_scale());
    const auto tokens = tokens_for(kB, kT, 512, 8);
    engine::StepOptions opt;
    opt.lr = 1e-3f;
    const auto initial = weights_of(*m.gpu);

    // Without cuBLAS the products run in fp32 (the fallback, see gemm_path), which 2^40 does not overflow.
    if (cuda_backend::cublas_available()) {
      m.gpu->set_loss_scale(0x1p40);
      const auto over = m.gpu->train_step(tokens.data(), kB, kT, opt);
      EXPECT_MSG(over.skipped, what << ": a step at loss scale 2^40 should overflow fp16 and be skipped (grad_norm " << over.grad_norm << ")");
      EXPECT_MSG(over.loss_scale == 0x1p40 && m.gpu->loss_scale() == 0x1p39, what << ": scale " << over.loss_scale << " -> " << m.gpu->loss_scale());
      EXPECT_MSG(std::isfinite(over.loss), what << ": the forward pass should not overflow (loss " << over.loss << ")");
      weights_unchanged(*m.gpu, initial, what + " at 2^40");
    } else {
      std::printf("note: %s: the overflow step needs cuBLAS's fp16 products; %s\n", what.c_str(), cuda_backend::gemm_path().c_str());
    }

    m.gpu->set_loss_scale(65536);
    double scale = 65536;
    engine::StepResult rg;
    for (int tries = 0; tries < 8; tries++) {
      rg = m.gpu->train_step(tokens.data(), kB, kT, opt);
      EXPECT_MSG(rg.loss_scale == scale, what << ": step at scale " << rg.loss_scale << ", want " << scale);
      if (!rg.skipped) break;
      scale /= 2;
      EXPECT_MSG(m.gpu->loss_scale() == scale, what << ": a skipped step should halve the scale to " << scale);
      weights_unchanged(*m.gpu, initial, what + " at a skipped step");
    }
    EXPECT_MSG(!rg.skipped, what << ": every step from 65536 down to " << scale << " was skipped");
    EXPECT_MSG(m.gpu->loss_scale() == scale, what << ": one good step changed the scale to " << m.gpu->loss_scale());
    const auto rc = m.cpu->train_step(tokens.data(), kB, kT, opt);
    near_scalar(rg.loss, rc.loss, tol.loss, 0, what + ": loss");
    near_scalar(rg.grad_norm, rc.grad_norm, tol.grad_norm, 0, what + ": grad_norm (unscaled)");
    weights_close(*m.cpu, *m.gpu, opt.lr, what);
  }
}

TEST(cuda_model_distill_step_matches_cpu) {
  for (const char* type : {"llama", "qwen3"}) {
    const std::string what = std::string(type) + " distill";
    Pair m(small_config(type), Precision::bf16, true);
    const auto tokens = tokens_for(kB, kT, 512, 4);
    const engine::StepOptions opt = distill_options(1, 1, 0.5f, 2);
    const auto rc = m.cpu->train_step(tokens.data(), kB, kT, opt);
    const auto rg = m.gpu->train_step(tokens.data(), kB, kT, opt);
    EXPECT_MSG(rc.attn_kl_loss > 0, what << ": the sparse layer should differ from the dense teacher");
    near_scalar(rg.loss, rc.loss, 1e-2, 0, what + ": loss");
    near_scalar(rg.task_loss, rc.task_loss, 1e-2, 0, what + ": task loss");
    near_scalar(rg.attn_kl_loss, rc.attn_kl_loss, 5e-2, 1e-5, what + ": attention KL");
    near_scalar(rg.logit_kl_loss, rc.logit_kl_loss, 5e-2, 1e-6, what + ": logit KL");
    near_scalar(rg.grad_norm, rc.grad_norm, 5e-2, 0, what + ": grad_norm");
    weights_close(*m.cpu, *m.gpu, opt.lr, what);
  }
}

// Attention distillation alone (task and logit weights 0), so every gradient is the
// attention-KL loss's, computed by CudaBackend::attn_kl_loss on the device. Layer 1 is sparse as
// elsewhere; at init the student equals the teacher up to there, where P_student is P_teacher
// renormalised over the kept keys: KL = -log(kept mass) but its gradient is zero (the minimum).
// So layer 2 is sparse too, with per-head masks and a random block: its inputs differ (layer 1
// was sparse), and the gradient flows from its KL into layers 0 to 2. Layers above and the LM
// head get exactly zero on both backends. Tolerances: the bf16 whole-model ones (loss and the
// attention KL at 5e-2 as in the distill step above).
TEST(cuda_model_attention_distill_matches_cpu) {
  for (const char* type : {"llama", "qwen3"}) {
    const std::string what = std::string(type) + " attention distill";
    const Tolerances tol = tolerances(Precision::bf16);
    Pair m(small_config(type), Precision::bf16, true);
    engine::MaskSpec per_head = sparse_spec();
    per_head.share_gqa_group = false;
    per_head.random_blocks = 1;
    per_head.random_seed = 11;
    m.cpu->set_attention(2, &per_head);
    m.gpu->set_attention(2, &per_head);
    const auto tokens = tokens_for(kB, kT, 512, 6);
    const engine::StepOptions opt = distill_options(0, 1, 0, 1);
    const auto gc = m.cpu->compute_gradients(tokens.data(), kB, kT, opt);
    const auto gg = m.gpu->compute_gradients(tokens.data(), kB, kT, opt);
    EXPECT_MSG(gc.attn_kl_loss > 0 && gc.grad_norm > 0, what << ": the sparse layers should differ from the dense teacher");
    near_scalar(gg.attn_kl_loss, gc.attn_kl_loss, 5e-2, 1e-5, what + ": attention KL");
    near_scalar(gg.loss, gc.loss, 5e-2, 1e-5, what + ": loss");
    near_scalar(gg.grad_norm, gc.grad_norm, tol.grad_norm, 0, what + ": grad_norm");
    near_scalar(gg.density, gc.density, 0, 1e-12, what + ": density");
    gradients_close(*m.cpu, *m.gpu, tol.grads, what);
  }
}

TEST(cuda_model_evaluate_matches_cpu) {
  for (const char* type : {"llama", "qwen3"}) {
    const std::string what = std::string(type) + " evaluate";
    Pair m(small_config(type), Precision::bf16, true);
    const auto tokens = tokens_for(kB, kT, 512, 5);
    const engine::EvalResult c = m.cpu->evaluate(tokens.data(), kB, kT);
    const engine::EvalResult g = m.gpu->evaluate(tokens.data(), kB, kT);
    near_scalar(g.loss, c.loss, 1e-2, 0, what + ": loss");
    near_scalar(g.loss_teacher, c.loss_teacher, 1e-2, 0, what + ": teacher loss");
    near_scalar(g.logit_kl, c.logit_kl, 5e-2, 1e-6, what + ": logit KL");
    near_scalar(g.out_cos, c.out_cos, 0, 1e-3, what + ": output cosine");
    near_scalar(g.hidden_mse, c.hidden_mse, 5e-2, 1e-7, what + ": hidden MSE");
    EXPECT(g.attn_kl.size() == c.attn_kl.size() && g.attn_recall.size() == c.attn_recall.size() && g.density.size() == c.density.size());
    for (size_t l = 0; l < c.attn_kl.size(); l++) {
      const std::string layer = what + " layer " + std::to_string(l);
      EXPECT_MSG(std::isnan(g.attn_kl[l]) == std::isnan(c.attn_kl[l]), layer << ": dense on one side only");
      if (std::isnan(c.attn_kl[l])) continue;
      near_scalar(g.attn_kl[l], c.attn_kl[l], 5e-2, 1e-5, layer + ": attention KL");
      near_scalar(g.attn_recall[l], c.attn_recall[l], 0, 1e-2, layer + ": attention recall");
      near_scalar(g.density[l], c.density[l], 0, 1e-12, layer + ": density");
    }
  }
}

// The trainable block indexer warming up, as a user runs it: layer 1 sparse with the 'indexer'
// selector and top-1 extra block at block 64 (T 256: 4 blocks), the base frozen so only the
// selector's three tensors train, distillation on with every other loss weight 0 — so the
// step's loss is the indexer's warm-up KL (CudaBackend::indexer_loss on the device) and every
// gradient is the selector's. Masks come from CudaBackend::indexer_block_scores on the GPU side.
// That KL does not depend on the masks (model.cpp indexer_loss: its input is layer 1's ln1, before
// layer 1's attention, with layer 0 dense; its target the teacher's dense q, k and lse), so bf16
// noise flipping a top-k choice cannot move it; the density is a count and matches either way.
// Tolerances: the bf16 whole-model ones.
TEST(cuda_model_indexer_warmup_matches_cpu) {
  for (const char* type : {"llama", "qwen3"}) {
    const std::string what = std::string(type) + " indexer warm-up";
    const Tolerances tol = tolerances(Precision::bf16);
    Pair m(small_config(type), Precision::bf16, false);
    engine::MaskSpec spec = sparse_spec();
    spec.topk_blocks = 1;
    spec.selector = engine::MaskSpec::Indexer;
    spec.random_seed = 5;
    const std::vector<engine::ParamKind> base = {engine::ParamKind::q,   engine::ParamKind::k,     engine::ParamKind::v,
                                                 engine::ParamKind::o,   engine::ParamKind::mlp,   engine::ParamKind::norms,
                                                 engine::ParamKind::embeddings};
    for (Model* model : {m.cpu.get(), m.gpu.get()}) {
      model->set_attention(1, &spec);
      model->set_trainable({}, base, false);
    }
    int trainable = 0;
    for (const auto& p : m.gpu->params()) trainable += p.trainable;
    EXPECT_MSG(trainable == 3, what << ": only the selector's w_q, w_k, w_h should train, got " << trainable << " tensors");
    const auto tokens = tokens_for(kB, kT, 512, 7);
    const engine::StepOptions opt = distill_options(0, 0, 0, 1);
    const auto gc = m.cpu->compute_gradients(tokens.data(), kB, kT, opt);
    const auto gg = m.gpu->compute_gradients(tokens.data(), kB, kT, opt);
    EXPECT_MSG(gc.loss > 0 && gc.grad_norm > 0, what << ": the indexer should start away from its target");
    near_scalar(gg.loss, gc.loss, tol.loss, 0, what + ": loss");
    near_scalar(gg.grad_norm, gc.grad_norm, tol.grad_norm, 0, what + ": grad_norm");
    near_scalar(gg.density, gc.density, 0, 1e-12, what + ": density");
    EXPECT_MSG(gc.density < 1, what << ": layer 1 should skip blocks");
    gradients_close(*m.cpu, *m.gpu, tol.grads, what);
    // One step from the same weights: the selector moves the same way (frozen tensors do not move).
    const auto rc = m.cpu->train_step(tokens.data(), kB, kT, opt);
    const auto rg = m.gpu->train_step(tokens.data(), kB, kT, opt);
    near_scalar(rg.loss, rc.loss, tol.loss, 0, what + ": loss (train_step)");
    EXPECT(!rg.skipped);
    weights_close(*m.cpu, *m.gpu, opt.lr, what);
  }
}
