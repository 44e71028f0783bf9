// Llama-family decoder (features per family: QK-norm, embedding / residual / logit scales):
// forward, backward, training step with optional distillation from the frozen dense teacher,
// and evaluation. Design choices:
// - Parameters are named and shaped as in Hugging Face checkpoints and grouped by kind
//   (q, k, v, o, mlp, norms, embeddings) so pipelines freeze and unfreeze them by name.
// - The teacher is the same weights, read densely: a tensor gets its own teacher copy only when
//   it is unfrozen (setTrainable(.., true)), so frozen weights are stored once.
// - Frozen tensors have no grad or moment buffers and are never written by a step; backward
//   stops below the lowest layer that holds a trainable tensor.
// - The LM head runs over row chunks (logits are N x V, which is large for real vocabularies):
//   cross-entropy, logit KL and their gradients are computed chunk by chunk.
// - Every op runs on a Backend (backend.h): the CPU one (ops.h, deterministic static partition,
//   so a step is bit-identical for the same inputs and thread count) or the CUDA one. The host
//   Param vectors are the weights' home; a non-host backend mirrors them and the model copies
//   them back lazily, when the host reads them (params(), param()). Selector scores and metric
//   sums come back to the host, where the masks are built and the results reported.
// - fp16 precision (CUDA) adds dynamic loss scaling: gradients are computed at loss * scale (a
//   power of two, so unscaling is exact), a step with a non-finite gradient is skipped and halves
//   the scale, and 2000 good steps in a row double it. The precision may change between steps
//   (set_precision); each step scales by the precision it runs at.
// Shape letters: B batch, T tokens, N = B*T rows, C hidden, F intermediate, H heads, Hkv kv heads,
// D head dim, V vocab, L layers.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "block_mask.h"
#include "block_selector.h"
#include "backend.h"
#include "device_array.h"
#include "ops.h"

namespace engine {

enum class MlpKind { swiglu };

// Mirrors native/engine-api.ts ModelConfig plus the family's features, which
// native/checkpoint/families.ts resolves from config.json; the model asks features, never
// model_type (a label, written back on save).
struct ModelConfig {
  std::string model_type = "llama";
  int vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_layers = 0;
  int num_heads = 0, num_kv_heads = 0, head_dim = 0;
  float rms_norm_eps = 1e-6f;
  double rope_theta = 10000;
  int max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  RopeScaling rope_scaling;

  bool qk_norm = false;  // RMSNorm over each head of q and k before RoPE
  MlpKind mlp = MlpKind::swiglu;
  float embedding_scale = 1;  // multiplies the embeddings
  float residual_scale = 1;   // multiplies each residual branch
  float logit_divisor = 1;    // divides the final hidden state before the LM head

  // Mixture of experts (qwen3_moe; num_experts 0 = every layer dense). Field meanings as in
  // transformers' Qwen3MoeConfig; a layer is MoE per is_moe_layer.
  int num_experts = 0, num_experts_per_tok = 0, moe_intermediate_size = 0;
  bool norm_topk_prob = false;
  int decoder_sparse_step = 1;
  std::vector<int> mlp_only_layers;  // these keep the dense MLP of intermediate_size
  float router_aux_loss_coef = 0.001f;

  // transformers' rule: num_experts > 0, l not in mlp_only_layers, (l + 1) % decoder_sparse_step == 0.
  bool is_moe_layer(int l) const;
  // Throws std::invalid_argument naming the first bad field.
  void validate() const;
};

// Kinds are appended, never reordered: core/schema.ts PARAM_KINDS mirrors this order.
enum class ParamKind { q, k, v, o, mlp, norms, embeddings, selector, router, experts };
constexpr int kParamKinds = 10;
const char* param_kind_name(ParamKind kind);
// Throws std::invalid_argument for an unknown name.
ParamKind param_kind_from_name(const std::string& name);

// What a tensor is for inside its layer (or globally), so the model finds it without names.
enum class TensorRole {
  embed, final_norm, lm_head, ln1, q, k, v, q_norm, k_norm, o, ln2, gate, up, down,
  router, expert_gate, expert_up, expert_down
};

struct TensorSpec {
  std::string name;  // Hugging Face checkpoint name
  ParamKind kind;
  int layer = -1;    // -1 for embeddings, final norm and LM head
  std::vector<int64_t> shape;
  TensorRole role;
  int expert = -1;   // the expert of an expert_* tensor
};

// Every tensor of a Hugging Face checkpoint of this config, in checkpoint order: the one
// definition of the layout (the Model constructor, expectedTensors and preflight's parameter
// count all read it, the latter two through the binding's tensorLayout).
std::vector<TensorSpec> tensor_layout(const ModelConfig& config);

struct Param {
  std::string name;
  ParamKind kind;
  int layer = -1;  // -1 for embeddings, final norm and LM head
  std::vector<int64_t> shape;
  std::vector<float> data;     // the student's weights
  std::vector<float> teacher;  // empty: the teacher reads `data`
  bool trainable = false;          // the Model constructor makes every tensor trainable
  std::vector<float> grad, m, v;  // allocated lazily (first gradient), only while trainable
  int64_t adam_step = 0;

  int64_t numel() const;
  const float* teacher_data() const { return teacher.empty() ? data.data() : teacher.data(); }
};

struct DistillWeights {
  float task = 1, attn_kl = 0, logit_kl = 0, hidden_mse = 0, temperature = 1;
};

// The load-balancing term a step adds for MoE models (docs/metrics.md "Mixture of experts"):
// seed = weight * mean over MoE layers of (Var(u) + mean |u - 1/E|), u the soft usage (mean router
// probability per expert); switch = weight * transformers' load_balancing_loss_func.
struct LoadBalance {
  enum Kind { none, seed, switch_aux } kind = none;
  float weight = -1;  // < 0: the kind's default (seed 0.01, switch the config's router_aux_loss_coef)
};

struct StepOptions {
  float lr = 1e-3f, weight_decay = 0, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float grad_clip = 0;  // 0 = off
  // Per parameter kind, a multiplier of lr (the Train node's per-kind learning rates).
  std::array<float, kParamKinds> lr_scale = filled_lr_scale();
  static std::array<float, kParamKinds> filled_lr_scale() { std::array<float, kParamKinds> a; a.fill(1.0f); return a; }
  bool distill = false;
  DistillWeights weights;
  LoadBalance load_balance;
  // > 0: adds this weight times the mean entropy of the model's own attention (attention_entropy.h;
  // docs/metrics.md attn_entropy) to the loss. 0 = off. The cpu backend only.
  float attn_entropy_weight = 0;
};

// Routing statistics of the student's forward (MoE models only; `present` false otherwise).
struct MoeStats {
  bool present = false;
  double aux_loss = 0;           // transformers' load_balancing_loss_func over every MoE layer
  double load_balance_loss = 0;  // the step's load-balancing term as added to the loss (weight included)
  std::vector<int> layers;       // the MoE layers (0-based), in order
  std::vector<std::vector<double>> usage;  // per MoE layer: routed token-slots per expert / (N * k)
  std::vector<double> entropy;   // per MoE layer: mean over tokens of the router softmax's entropy (nats)
};

struct StepResult {
  double loss = 0, task_loss = 0, attn_kl_loss = 0, logit_kl_loss = 0, hidden_mse_loss = 0;
  double grad_norm = 0, density = 1;
  bool skipped = false;    // fp16: a non-finite gradient skipped the update (loss scale halved)
  double loss_scale = 1;   // the scale the gradients were computed at (1 unless fp16)
  MoeStats moe;
  // The trainable indexers' KL (mean over the layers whose indexer trains; inside `loss`) and per
  // layer which KL that was: 0 no trained indexer, 1 warm-up, 2 selected set (block_selector.h).
  double indexer_loss = 0;
  std::vector<int8_t> indexer_phase;
  // With attn_entropy_weight > 0: the mean attention entropy (nats) the term weighs (inside `loss`).
  std::optional<double> attn_entropy;
};

struct EvalResult {
  double loss = 0, loss_teacher = 0;
  // Per layer; NaN marks a dense layer (null in JS). flops_saved: share of the layer's causal
  // token-pair dot products its masks skip (BlockMask::flops_saved, 1 - density per token).
  std::vector<double> attn_kl, attn_recall, density, flops_saved;
  double logit_kl = 0, out_cos = 0, hidden_mse = 0;
  MoeStats moe;  // load_balance_loss stays 0
};

// The dense teacher's attention profile (attention_profile.h), per layer: the pooled mass map
// (H, nb, nb) averaged over the sequences, and the oracle's nested masks at the asked densities
// with their actual density, attention-KL floor and recall (means over every row).
struct AttentionProfile {
  int block = 0, n_blocks = 0, mask_heads = 0;
  struct Layer { std::vector<double> mass, density, floor, recall; };
  std::vector<Layer> layers;
};

struct Activations;  // model_acts.h

class Model {
 public:
  explicit Model(const ModelConfig& config, std::shared_ptr<Backend> backend = cpu_backend());
  ~Model();

  const ModelConfig& config() const { return config_; }
  Backend& backend() const { return *backend_; }
  // Host views of the tensors (copied back from the backend first); the non-const one also marks
  // the backend's copy stale, so host edits reach the next step.
  std::vector<Param>& params();
  const std::vector<Param>& params() const;
  int64_t num_params() const;
  // Throws std::invalid_argument for an unknown name.
  Param& param(const std::string& name);

  // Deterministic init: normal(0, 0.02), o_proj/down_proj scaled by 1/sqrt(2L), norms 1.
  void init_random(uint64_t seed);
  // Copies n floats into the named tensor (and its teacher copy if any); throws on size mismatch.
  void set_tensor(const std::string& name, const float* values, int64_t n);
  // Copies n floats into the student's tensor only: the teacher keeps the weights it has (the
  // tensor gets its own teacher copy first when the values differ). Restores a checkpoint's
  // trained weights onto a fresh base without changing the teacher.
  void set_student_tensor(const std::string& name, const float* values, int64_t n);

  // 0-based layer; nullptr restores dense attention. A trainable-indexer spec adds that layer's
  // selector tensors (kind selector) the first time, initialised from the spec's random_seed.
  void set_attention(int layer, const MaskSpec* spec);
  const std::optional<MaskSpec>& attention(int layer) const { return attention_[layer]; }

  // layers empty = all (including the global tensors: embeddings, final norm, LM head).
  // Unfreezing gives the tensor its own teacher copy first (once).
  void set_trainable(const std::vector<int>& layers, const std::vector<ParamKind>& kinds, bool trainable);

  // tokens (B, T+1): inputs [:, :T], targets [:, 1:]. Throws on a token outside the vocabulary.
  StepResult train_step(const int32_t* tokens, int B, int T, const StepOptions& options);
  EvalResult evaluate(const int32_t* tokens, int B, int T);
  // Prefill (forward only, no LM head) of the student over tokens (B, T+1), timed `reps` times
  // with its masks and `reps` times with every layer dense, interleaved; best seconds of each.
  struct PrefillTimes { double dense_s = 0, sparse_s = 0; };
  PrefillTimes time_prefill(const int32_t* tokens, int B, int T, int reps);
  // tokens (S, T+1), run `batch` sequences at a time through the teacher (twice: the map, then
  // the floors of the masks built from it). Mask heads: Hkv when share_gqa, else H.
  AttentionProfile attention_profile(const int32_t* tokens, int S, int T, int batch, int block, bool share_gqa,
                                     const std::vector<double>& densities);
  // Mean next-token cross-entropy of the student (dense forward, no grads).
  double loss(const int32_t* tokens, int B, int T);
  // Loss and gradients of every trainable tensor (left in Param::grad), no update. For tests and
  // tools; `options.distill` selects the distillation loss.
  StepResult compute_gradients(const int32_t* tokens, int B, int T, const StepOptions& options);

  // Approximate FLOPs of one training step (forward + backward) over B x T tokens.
  double train_flops(int B, int T) const;

  // The compute precision from the next call on (the backend's, shared with any model on the same
  // backend). Weights, gradients and optimiser state stay fp32, so a switch between steps changes
  // only how the products are computed; fp16 steps scale the loss (below), the others do not. The
  // CPU backend computes in fp32 whatever is asked.
  void set_precision(Precision p) { backend_->set_precision(p); }

  // fp16 dynamic loss scale (unused at other precisions): the scale (a power of two >= 1) and the
  // number of good steps after which it doubles. It carries over a switch away from fp16 and back.
  double loss_scale() const { return loss_scale_; }
  void set_loss_scale(double scale, int growth_interval = 2000);

 private:
  // ---- weights in backend memory (mirrors only when the backend is not host-resident)
  struct Mirror {
    DeviceArray<float> data, teacher, grad, m, v;
  };
  float* dev_data(size_t i);
  const float* dev_weights(size_t i, bool teacher) const;
  // Gradient buffer of tensor i (nullptr when frozen), zero-filled first when this step has not
  // written the tensor's gradient yet.
  float* dev_grad(size_t i);
  // dinp (N, C) += dout (N, OC) weight (OC, C), and tensor i's gradient += dout^T inp, or = when
  // it is the tensor's first gradient of the step (no zero-fill pass over it). dinp nullable;
  // i == SIZE_MAX or a frozen tensor: no weight gradient.
  void linear_backward(float* dinp, size_t i, const float* dout, const float* inp, const float* weight, int N, int C,
                       int OC);
  void sync_host() const;     // copies trained tensors back when the backend holds newer ones
  void host_access();         // sync_host, then the backend's copy is stale
  void sync_device();         // uploads every tensor when the backend's copy is stale
  void make_teacher_copy(size_t i);
  // Host pointer to n floats of backend memory (the memory itself when host-resident).
  const float* host_view(const float* dev, int64_t n, std::vector<float>& staging) const;
  double grad_scale_for_step() const;  // the loss scale at fp16, else 1

  std::shared_ptr<Backend> backend_;
  mutable std::vector<Mirror> mirrors_;
  mutable bool host_fresh_ = true;   // host vectors equal the backend's copy
  // Per tensor: its gradient buffer holds no gradient of the current step yet (it counts as zero;
  // zero_grads sets it, the first write clears it, and compute_gradients leaves none set).
  std::vector<char> grad_unwritten_;
  bool device_fresh_ = false;        // the backend's copy equals the host vectors
  DeviceArray<float> rope_cos_, rope_sin_;
  double loss_scale_ = 65536;
  int good_steps_ = 0, growth_interval_ = 2000;

  void check_tokens(const int32_t* tokens, int B, int T) const;
  // param(name), after checking it holds n values (throws std::invalid_argument naming it).
  Param& param_of_size(const std::string& name, int64_t n);
  // Forward over inputs (B, T); `teacher` selects the teacher weights. Fills acts.
  void forward(Activations& acts, const int32_t* tokens, int B, int T, bool teacher) const;
  void backward(Activations& acts, const float* dhidden, const int32_t* tokens, int B, int T);
  // One branch of layer l each (model_pass.cpp): out = x + residual_scale * branch(norm(x)).
  // Backward turns the gradient w.r.t. out (grads.dres) into the gradient w.r.t. x in place.
  void attention_forward(Activations& acts, int l, const float* x, float* out, bool teacher) const;
  void mlp_forward(Activations& acts, int l, const float* x, float* out, bool teacher) const;
  void attention_backward(Activations& acts, int l, struct BackwardBuffers& grads);
  void mlp_backward(Activations& acts, int l, struct BackwardBuffers& grads);
  // The MoE branch of layer l (moe.cpp), called by mlp_forward / mlp_backward on MoE layers.
  void moe_forward(Activations& acts, int l, const float* x, float* out, bool teacher) const;
  void moe_backward(Activations& acts, int l, struct BackwardBuffers& grads);
  // Routing statistics of the student's last forward, and the load-balancing term: its value goes
  // to stats.load_balance_loss and, when grad_scale != 0, its gradient w.r.t. each MoE layer's
  // router logits is kept for moe_backward. No-op (present false) for dense models.
  MoeStats moe_stats(const LoadBalance& lb, float grad_scale);
  // Runs the LM head chunk by chunk: CE (and logit KL vs teacher hidden when given), fills
  // dhidden (N, C) unless null. Returns {ce, logit_kl}.
  // targets in backend memory; gradients scaled by grad_scale (the fp16 loss scale).
  std::pair<double, double> lm_head_loss(const float* hidden, const float* teacher_hidden, const int32_t* targets, int B,
                                         int T, float* dhidden, const DistillWeights* w, bool teacher_weights,
                                         float grad_scale = 1);
  // Mean squared difference of the student's and teacher's final hidden states; adds its
  // gradient (weight * grad_scale) to dhidden when weight != 0.
  double hidden_mse(float* dhidden, float weight, float grad_scale);
  void zero_grads();
  const Param& embed() const { return params_[embed_index_]; }
  const Param& lm_head() const;
  int lowest_trainable_layer() const;  // num_layers when none below the head; -1 when embeddings train

  ModelConfig config_;
  std::vector<Param> params_;
  size_t embed_index_ = 0, final_norm_index_ = 0, lm_head_index_ = 0;
  struct LayerParams {
    size_t ln1, q, k, v, q_norm, k_norm, o, ln2, gate, up, down;  // gate/up/down: dense layers
    size_t router = SIZE_MAX;  // MoE layers: the router and every expert's gate, up, down
    std::vector<size_t> expert_gate, expert_up, expert_down;
    size_t idx_q = SIZE_MAX, idx_k = SIZE_MAX, idx_h = SIZE_MAX;  // indexer selector, when added
  };
  std::vector<LayerParams> layers_;  // indices into params_; q_norm/k_norm only with qk_norm
  RopeTable rope_;  // built for the longest sequence seen so far
  void ensure_rope(int T);
  std::vector<std::optional<MaskSpec>> attention_;  // per layer; empty = dense
  IndexerShape indexer_shape_;
  // Builds the layer's masks (one shared, or one per sequence for top-k) from forward values.
  void build_masks(struct LayerActs& la, int l, int B, int T, bool teacher) const;
  RopeArrays rope_arrays() const;
  // Attention KL (student || teacher) over the sparse layers: mean over layers; writes per-layer
  // q/k gradients (scaled by `weight`) into the student's activations when weight != 0.
  double attention_kl(float weight);
  // Indexer KL over the layers whose selector trains (warm-up or selected set, by the mask's
  // indexer_warmup_steps); adds selector grads, writes each layer's phase. Returns its mean.
  double indexer_loss(float grad_scale, std::vector<int8_t>& phase);
  // Mean over layers (dense and block-sparse; not infllm_v2's per-token ones) of the mean entropy
  // of the student's attention under the layer's mask; writes per-layer q/k gradients (scaled by
  // `weight`) into the activations of the layers backward reaches, when weight != 0.
  double attention_entropy(float weight);
  std::unique_ptr<Activations> acts_, teacher_acts_;
};

}  // namespace engine
