// The model's side of the Backend interface, proved on the CPU. A copying backend (the CPU ops
// behind memory of its own, not host-resident, as the CUDA backend is) must give bit-identical
// steps, gradients, weights and metrics to the CPU backend: that proves the weight mirroring,
// the lazy copies back to the host and the host-side losses without a GPU. The same backend,
// reporting fp16, proves the loss scaling (exact at power-of-two scales) and the skipped step on
// an overflowed gradient, and switched between precisions step by step (a pipeline's stages),
// that each step scales by the precision it runs at.
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

// CPU ops on memory the model must copy to and from, like a GPU's.
class CopyingBackend final : public Backend {
 public:
  explicit CopyingBackend(Precision precision) : precision_(precision) {}
  int uploads = 0, downloads = 0;
  bool overflow_next_weight_grad = false;  // writes +inf into the next matmul weight gradient

  std::string name() const override { return "copying"; }
  std::string device() const override { return "test"; }
  Precision precision() const override { return precision_; }
  void set_precision(Precision p) override { precision_ = p; }
  bool host_resident() const override { return false; }
  float* alloc(int64_t n) override { return cpu_->alloc(n); }
  int32_t* alloc_i32(int64_t n) override { return cpu_->alloc_i32(n); }
  void release(void* p) override { cpu_->release(p); }
  void upload(void* dst, const void* src, int64_t bytes) override { uploads++; std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, int64_t bytes) override { downloads++; std::memcpy(dst, src, bytes); }
  void copy(float* dst, const float* src, int64_t n) override { cpu_->copy(dst, src, n); }
  void fill(float* x, float value, int64_t n) override { cpu_->fill(x, value, n); }
  void embedding_forward(float* out, const int32_t* tokens, const float* table, int N, int C) override {
    cpu_->embedding_forward(out, tokens, table, N, C);
  }
  void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int N, int C) override {
    cpu_->embedding_backward(dtable, dout, tokens, N, C);
  }
  void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                       float eps) override {
    cpu_->rmsnorm_forward(out, rstd, inp, weight, N, C, eps);
  }
  void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                        const float* rstd, int N, int C) override {
    cpu_->rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N, C);
  }
  void matmul_forward(float* out, const float* inp, const float* weight, int N, int C, int OC) override {
    cpu_->matmul_forward(out, inp, weight, N, C, OC);
  }
  void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, int N,
                       int C, int OC) override {
    cpu_->matmul_backward(dinp, dweight, dout, inp, weight, N, C, OC);
    if (dweight && overflow_next_weight_grad) {
      dweight[0] = std::numeric_limits<float>::infinity();
      overflow_next_weight_grad = false;
    }
  }
  void rope_forward(float* x, int B, int T, int H, int D, const RopeArrays& rope) override {
    check_rope(rope, T, D);
    cpu_->rope_forward(x, B, T, H, D, rope);
  }
  void rope_backward(float* dx, int B, int T, int H, int D, const RopeArrays& rope) override {
    check_rope(rope, T, D);
    cpu_->rope_backward(dx, B, T, H, D, rope);
  }
  void to_heads(float* out, const float* x, int B, int T, int H, int D) override { cpu_->to_heads(out, x, B, T, H, D); }
  void from_heads(float* out, const float* x, int B, int T, int H, int D) override {
    cpu_->from_heads(out, x, B, T, H, D);
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B, int H,
                         int Hkv, int T, int D, const BlockMask* mask) override {
    cpu_->attention_forward(out, lse, q, k, v, B, H, Hkv, T, D, mask);
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse, int B, int H, int Hkv, int T, int D,
                          const BlockMask* mask) override {
    cpu_->attention_backward(dq, dk, dv, dout, q, k, v, out, lse, B, H, Hkv, T, D, mask);
  }
  void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) override {
    cpu_->swiglu_forward(out, gate, up, n);
  }
  void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                       int64_t n) override {
    cpu_->swiglu_backward(dgate, dup, dout, gate, up, n);
  }
  void moe_gather_rows(float* out, const float* x, const int32_t* rows, int64_t M, int C) override {
    cpu_->moe_gather_rows(out, x, rows, M, C);
  }
  void moe_combine(float* out, const float* y, const int32_t* pos, const float* weight, int N, int K,
                   int C) override {
    cpu_->moe_combine(out, y, pos, weight, N, K, C);
  }
  void moe_combine_backward(float* dy, float* dweight, const float* dout, const float* y, const int32_t* pos,
                            const float* weight, int N, int K, int C) override {
    cpu_->moe_combine_backward(dy, dweight, dout, y, pos, weight, N, K, C);
  }
  void add_scaled(float* out, const float* a, const float* b, float s, int64_t n) override {
    cpu_->add_scaled(out, a, b, s, n);
  }
  void scale(float* out, const float* x, float s, int64_t n) override { cpu_->scale(out, x, s, n); }
  double cross_entropy(float* dlogits, const float* logits, const int32_t* targets, int N, int V,
                       float dscale) override {
    return cpu_->cross_entropy(dlogits, logits, targets, N, V, dscale);
  }
  double logit_kl(float* dlogits, const float* zs, const float* zt, int N, int V, float temp,
                  float gscale) override {
    return cpu_->logit_kl(dlogits, zs, zt, N, V, temp, gscale);
  }
  double attn_kl_loss(float* dq_s, float* dk_s, float grad_scale, const float* q_s, const float* k_s, const float* q_t,
                      const float* k_t, const float* lse_t, int B, int H, int Hkv, int T, int D,
                      const BlockMask& mask) override {
    return cpu_->attn_kl_loss(dq_s, dk_s, grad_scale, q_s, k_s, q_t, k_t, lse_t, B, H, Hkv, T, D, mask);
  }
  AttentionMetrics attention_metrics(const float* q_s, const float* k_s, const float* q_t, const float* k_t,
                                     const float* lse_t, int B, int H, int Hkv, int T, int D,
                                     const BlockMask& mask) override {
    return cpu_->attention_metrics(q_s, k_s, q_t, k_t, lse_t, B, H, Hkv, T, D, mask);
  }
  void pooled_block_scores(float* scores_host, const float* q, const float* k, int H, int Hkv, int T, int D,
                           int block_size, bool share_gqa_group) override {
    // q and k are this backend's memory: copy them down as a GPU backend would.
    std::vector<float> hq((size_t)H * T * D), hk((size_t)Hkv * T * D);
    download(hq.data(), q, (int64_t)sizeof(float) * hq.size());
    download(hk.data(), k, (int64_t)sizeof(float) * hk.size());
    cpu_->pooled_block_scores(scores_host, hq.data(), hk.data(), H, Hkv, T, D, block_size, share_gqa_group);
  }
  void indexer_block_scores(float* scores_host, const float* x, const float* w_q, const float* w_k, const float* w_h,
                            const IndexerShape& shape, int T, int block_size, int n_mask_heads) override {
    cpu_->indexer_block_scores(scores_host, x, w_q, w_k, w_h, shape, T, block_size, n_mask_heads);
  }
  double indexer_loss(float* dw_q, float* dw_k, float* dw_h, float grad_scale, const float* x, const float* w_q,
                      const float* w_k, const float* w_h, const float* q_t, const float* k_t, const float* lse_t,
                      const IndexerShape& shape, int B, int H, int Hkv, int T, int D, int block_size,
                      const std::vector<BlockMask>* selected) override {
    return cpu_->indexer_loss(dw_q, dw_k, dw_h, grad_scale, x, w_q, w_k, w_h, q_t, k_t, lse_t, shape, B, H, Hkv, T, D,
                              block_size, selected);
  }
  double sum_squares(const float* x, int64_t n) override { return cpu_->sum_squares(x, n); }
  void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                    float beta2, float eps, float weight_decay, int step, float grad_scale) override {
    cpu_->adamw_update(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale);
  }

 private:
  // The model must hand the backend's own copy of the table, not the host one.
  static void check_rope(const RopeArrays& rope, int T, int D) {
    if (rope.cos == rope.table->cos.data() || rope.sin == rope.table->sin.data())
      check::fail(__FILE__, __LINE__, "rope: the model passed the host table to a non-host backend");
    if (std::memcmp(rope.cos, rope.table->cos.data(), sizeof(float) * T * D) != 0)
      check::fail(__FILE__, __LINE__, "rope: the backend's cos table differs from the host's");
  }
  Precision precision_;
  std::shared_ptr<Backend> cpu_ = cpu_backend();
};

// qwen3_moe: MoE layers 0 and 2 (4 experts, top-2), layer 1 dense.
ModelConfig small(const std::string& type) {
  ModelConfig c = fixtures::tiny_config(type, 37, 3, 8, false);
  if (type == "qwen3_moe") {
    c.qk_norm = true;
    c.num_experts = 4;
    c.num_experts_per_tok = 2;
    c.moe_intermediate_size = 12;
    c.norm_topk_prob = true;
    c.mlp_only_layers = {1};
  }
  return c;
}

using fixtures::tokens;

StepOptions distill_options() {
  StepOptions o;
  o.lr = 3e-3f;
  o.weight_decay = 0.01f;
  o.grad_clip = 1.0f;
  o.distill = true;
  o.weights.task = 0.5f;
  o.weights.attn_kl = 1.0f;
  o.weights.logit_kl = 0.5f;
  o.weights.hidden_mse = 0.25f;
  o.weights.temperature = 2.0f;
  return o;
}

// A conversion in miniature on both models: a static sparse layer, a pooled top-k layer and an
// indexer layer; distillation with every loss; host reads and writes between steps.
void convert(Model& m) {
  m.init_random(7);
  MaskSpec fixed;
  fixed.block_size = 16;
  fixed.global_blocks = 1;
  fixed.window_blocks = 0;
  fixed.random_blocks = 1;
  fixed.random_seed = 3;
  MaskSpec pooled = fixed;
  pooled.random_blocks = 0;
  pooled.topk_blocks = 1;
  pooled.selector = MaskSpec::Pooled;
  MaskSpec indexer = pooled;
  indexer.selector = MaskSpec::Indexer;
  m.set_attention(0, &fixed);
  m.set_attention(1, &pooled);
  m.set_attention(2, &indexer);
  m.set_trainable({}, {ParamKind::q, ParamKind::k, ParamKind::v, ParamKind::o, ParamKind::mlp, ParamKind::norms,
                       ParamKind::embeddings},
                  false);
  m.set_trainable({1, 2}, {ParamKind::q, ParamKind::k, ParamKind::norms}, true);
  if (m.config().num_experts > 0) m.set_trainable({0, 2}, {ParamKind::router, ParamKind::experts}, true);
}

void add_moe_stats(std::vector<double>& numbers, const MoeStats& s) {
  numbers.insert(numbers.end(), {s.aux_loss, s.load_balance_loss});
  for (auto& u : s.usage) numbers.insert(numbers.end(), u.begin(), u.end());
  numbers.insert(numbers.end(), s.entropy.begin(), s.entropy.end());
}

struct Trace {
  std::vector<double> numbers;
  std::vector<std::vector<float>> tensors;
};

Trace run(Model& m) {
  Trace t;
  convert(m);
  const int B = 2, T = 64;
  StepOptions o = distill_options();
  if (m.config().num_experts > 0) o.load_balance = {LoadBalance::seed, 0.1f};
  for (int step = 0; step < 3; step++) {
    auto batch = tokens(B, T, m.config().vocab_size, 100 + step);
    StepResult r = m.train_step(batch.data(), B, T, o);
    t.numbers.insert(t.numbers.end(), {r.loss, r.task_loss, r.attn_kl_loss, r.logit_kl_loss, r.hidden_mse_loss,
                                       r.grad_norm, r.density});
    add_moe_stats(t.numbers, r.moe);
    if (step == 1) {
      // A host read and write between steps, as checkpoints and the pipeline do.
      std::vector<float> w = m.param("model.layers.1.self_attn.q_proj.weight").data;
      w[5] += 0.01f;
      m.set_tensor("model.layers.1.self_attn.q_proj.weight", w.data(), (int64_t)w.size());
      m.set_trainable({2}, {ParamKind::mlp}, true);  // unfrozen mid-run: gets its teacher copy
    }
  }
  auto batch = tokens(B, T, m.config().vocab_size, 999);
  EvalResult e = m.evaluate(batch.data(), B, T);
  t.numbers.insert(t.numbers.end(), {e.loss, e.loss_teacher, e.logit_kl, e.out_cos, e.hidden_mse});
  for (int l = 0; l < 3; l++) t.numbers.insert(t.numbers.end(), {e.attn_kl[l], e.attn_recall[l], e.density[l]});
  add_moe_stats(t.numbers, e.moe);
  StepResult g = m.compute_gradients(batch.data(), B, T, distill_options());
  t.numbers.push_back(g.grad_norm);
  for (const Param& p : m.params()) {
    t.tensors.push_back(p.data);
    t.tensors.push_back(p.grad);
    t.tensors.push_back(p.m);
    t.tensors.push_back(p.v);
  }
  return t;
}

void expect_identical(const Trace& got, const Trace& want) {
  EXPECT(got.numbers.size() == want.numbers.size());
  for (size_t i = 0; i < want.numbers.size(); i++)
    if (!(got.numbers[i] == want.numbers[i] || (std::isnan(got.numbers[i]) && std::isnan(want.numbers[i]))))
      check::fail(__FILE__, __LINE__, "number " + std::to_string(i) + ": " + std::to_string(got.numbers[i]) +
                                          " != " + std::to_string(want.numbers[i]));
  EXPECT(got.tensors.size() == want.tensors.size());
  for (size_t i = 0; i < want.tensors.size(); i++) {
    EXPECT(got.tensors[i].size() == want.tensors[i].size());
    if (!want.tensors[i].empty() &&
        std::memcmp(got.tensors[i].data(), want.tensors[i].data(), sizeof(float) * want.tensors[i].size()) != 0)
      check::fail(__FILE__, __LINE__, "tensor " + std::to_string(i / 4) + " field " + std::to_string(i % 4) +
                                          " differs from the CPU backend's");
  }
}

}  // namespace

TEST(backend_copying_model_matches_the_cpu_backend_bit_for_bit) {
  for (const char* type : {"llama", "qwen3", "qwen3_moe"}) {
    Model cpu(small(type));
    auto copying = std::make_shared<CopyingBackend>(Precision::fp32);
    Model mirrored(small(type), copying);
    expect_identical(run(mirrored), run(cpu));
    EXPECT(copying->uploads > 0 && copying->downloads > 0);
  }
}

TEST(backend_weights_are_copied_back_only_when_the_host_reads_them) {
  auto copying = std::make_shared<CopyingBackend>(Precision::fp32);
  Model m(small("llama"), copying);
  m.init_random(1);
  auto batch = tokens(2, 32, 37, 5);
  StepOptions o;
  o.lr = 1e-2f;
  m.train_step(batch.data(), 2, 32, o);
  const int after_first = copying->uploads;
  m.train_step(batch.data(), 2, 32, o);
  // The second step uploads only its tokens: the weights stayed on the backend.
  EXPECT(copying->uploads - after_first == 2);
  const int downloads = copying->downloads;
  const std::vector<float> w = m.param("model.norm.weight").data;
  EXPECT(copying->downloads > downloads);
  Model reference(small("llama"));
  reference.init_random(1);
  reference.train_step(batch.data(), 2, 32, o);
  reference.train_step(batch.data(), 2, 32, o);
  EXPECT(w == reference.param("model.norm.weight").data);
}

TEST(backend_fp16_loss_scaling_is_exact_at_power_of_two_scales) {
  Model cpu(small("qwen3"));
  auto fp16 = std::make_shared<CopyingBackend>(Precision::fp16);
  Model scaled(small("qwen3"), fp16);
  EXPECT(scaled.loss_scale() == 65536);
  const Trace got = run(scaled), want = run(cpu);
  expect_identical(got, want);
}

TEST(backend_fp16_overflow_skips_the_step_and_halves_the_scale) {
  auto fp16 = std::make_shared<CopyingBackend>(Precision::fp16);
  Model m(small("llama"), fp16);
  m.init_random(2);
  m.set_loss_scale(1024, 2);
  auto batch = tokens(2, 32, 37, 9);
  StepOptions o;
  o.lr = 1e-2f;
  const std::vector<float> before = m.param("model.layers.0.mlp.up_proj.weight").data;
  fp16->overflow_next_weight_grad = true;
  StepResult r = m.train_step(batch.data(), 2, 32, o);
  EXPECT(r.skipped);
  EXPECT(r.loss_scale == 1024);
  EXPECT(std::isfinite(r.loss));
  EXPECT(m.loss_scale() == 512);
  EXPECT(m.param("model.layers.0.mlp.up_proj.weight").data == before);  // weights untouched
  for (int i = 0; i < 2; i++) EXPECT(!m.train_step(batch.data(), 2, 32, o).skipped);
  EXPECT(m.loss_scale() == 1024);  // two good steps in a row doubled it again
  EXPECT(m.param("model.layers.0.mlp.up_proj.weight").data != before);
}

// fp32 -> fp16 -> fp32 -> fp16 between steps: only the fp16 steps scale the loss (exactly, so
// every step equals the CPU's bit for bit), and the scale and its good-step count carry over.
TEST(backend_precision_switch_between_steps_scales_only_fp16_steps) {
  auto copying = std::make_shared<CopyingBackend>(Precision::fp32);
  Model m(small("llama"), copying), cpu(small("llama"));
  m.init_random(3);
  cpu.init_random(3);
  m.set_loss_scale(1024, 2);
  StepOptions o;
  o.lr = 1e-2f;
  const Precision plan[] = {Precision::fp32, Precision::fp16, Precision::fp32, Precision::fp16};
  const double scale_used[] = {1, 1024, 1, 1024};
  for (int step = 0; step < 4; step++) {
    m.set_precision(plan[step]);
    EXPECT(m.backend().precision() == plan[step]);
    auto batch = tokens(2, 32, 37, 40 + step);
    const StepResult got = m.train_step(batch.data(), 2, 32, o), want = cpu.train_step(batch.data(), 2, 32, o);
    EXPECT_MSG(got.loss_scale == scale_used[step], "step " << step << ": loss scale " << got.loss_scale);
    EXPECT_MSG(got.loss == want.loss && got.grad_norm == want.grad_norm, "step " << step << " differs from the cpu's");
  }
  EXPECT(m.loss_scale() == 2048);  // the two fp16 steps were two good steps in a row at growth interval 2
  EXPECT(m.param("model.layers.0.mlp.up_proj.weight").data == cpu.param("model.layers.0.mlp.up_proj.weight").data);
}

TEST(backend_cpu_computes_in_fp32_whatever_precision_is_asked) {
  Model m(small("llama")), reference(small("llama"));
  m.init_random(5);
  reference.init_random(5);
  m.set_precision(Precision::bf16);
  EXPECT(m.backend().precision() == Precision::fp32);
  auto batch = tokens(2, 16, 37, 6);
  StepOptions o;
  const StepResult got = m.train_step(batch.data(), 2, 16, o), want = reference.train_step(batch.data(), 2, 16, o);
  EXPECT(got.loss == want.loss && got.grad_norm == want.grad_norm && got.loss_scale == 1);
  m.set_precision(Precision::fp16);
  EXPECT(m.backend().precision() == Precision::fp32 && m.train_step(batch.data(), 2, 16, o).loss_scale == 1);
}

TEST(backend_fp32_overflow_is_a_divergence_error) {
  auto fp32 = std::make_shared<CopyingBackend>(Precision::fp32);
  Model m(small("llama"), fp32);
  m.init_random(2);
  auto batch = tokens(1, 16, 37, 9);
  fp32->overflow_next_weight_grad = true;
  StepOptions o;
  EXPECT_THROWS_MSG(m.train_step(batch.data(), 1, 16, o), "training diverged");
}

TEST(backend_loss_scale_and_precision_reject_bad_values) {
  Model m(small("llama"));
  EXPECT_THROWS_MSG(m.set_loss_scale(3), "loss_scale: must be a power of two");
  EXPECT_THROWS_MSG(m.set_loss_scale(0.5), "loss_scale: must be a power of two");
  EXPECT_THROWS_MSG(m.set_loss_scale(1024, 0), "growth interval");
  EXPECT_THROWS_MSG(precision_from_name("fp8"), "precision: must be fp32, bf16 or fp16, got 'fp8'");
  EXPECT(precision_from_name("bf16") == Precision::bf16);
  EXPECT(std::string(precision_name(Precision::fp16)) == "fp16");
  EXPECT(cpu_backend()->name() == "cpu" && cpu_backend()->host_resident());
}

TEST(backend_cuda_loader_explains_a_missing_module) {
  EXPECT_THROWS_MSG(load_cuda_backend("/nonexistent/sparse_cuda.node", Precision::bf16),
                   "the CUDA module does not load (/nonexistent/sparse_cuda.node)");
  // A library that loads but is no CUDA module.
  EXPECT_THROWS_MSG(load_cuda_backend("libm.so.6", Precision::bf16), "the CUDA module libm.so.6 has no backend (rebuild it");
}

TEST(backend_student_tensor_restore_keeps_the_teacher) {
  for (bool copying : {false, true}) {
    auto be = copying ? std::shared_ptr<Backend>(std::make_shared<CopyingBackend>(Precision::fp32)) : cpu_backend();
    Model m(small("llama"), be);
    m.init_random(4);
    const std::string name = "model.layers.0.mlp.down_proj.weight";
    const std::vector<float> base = m.param(name).data;
    m.set_student_tensor(name, base.data(), (int64_t)base.size());
    EXPECT(m.param(name).teacher.empty());  // equal to the base: still shared
    std::vector<float> trained = base;
    for (auto& x : trained) x *= 1.5f;
    m.set_student_tensor(name, trained.data(), (int64_t)trained.size());
    EXPECT(m.param(name).data == trained);
    EXPECT(m.param(name).teacher == base);
    EXPECT_THROWS_MSG(m.set_student_tensor(name, trained.data(), 3), "got 3 values");
    // The teacher's forward reads the base: the student's loss moved, the teacher's did not.
    auto batch = tokens(1, 16, 37, 3);
    Model reference(small("llama"));
    reference.init_random(4);
    const EvalResult e = m.evaluate(batch.data(), 1, 16);
    EXPECT(e.loss_teacher == reference.evaluate(batch.data(), 1, 16).loss);
    EXPECT(e.loss != e.loss_teacher);
  }
}
