#include "model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "attention_metrics.h"
#include "blocksparse_attention.h"
#include "optimizer.h"
#include "parallel.h"

namespace engine {

// ============================================================================ config and params

float ModelConfig::residual_scale() const {
  return minicpm() ? scale_depth / std::sqrt((float)num_layers) : 1.0f;
}

float ModelConfig::logit_divisor() const {
  return minicpm() ? (float)hidden_size / dim_model_base : 1.0f;
}

void ModelConfig::validate() const {
  auto bad = [](const std::string& field, const std::string& what) {
    throw std::invalid_argument("config." + field + ": " + what);
  };
  if (model_type != "llama" && model_type != "qwen3" && model_type != "minicpm")
    bad("model_type", "must be llama, qwen3 or minicpm, got '" + model_type + "'");
  if (vocab_size < 1) bad("vocab_size", "must be >= 1");
  if (hidden_size < 1) bad("hidden_size", "must be >= 1");
  if (intermediate_size < 1) bad("intermediate_size", "must be >= 1");
  if (num_layers < 1) bad("num_hidden_layers", "must be >= 1");
  if (num_heads < 1) bad("num_attention_heads", "must be >= 1");
  if (num_kv_heads < 1 || num_heads % num_kv_heads != 0) bad("num_key_value_heads", "must divide num_attention_heads");
  if (head_dim < 2 || head_dim % 2 != 0) bad("head_dim", "must be even and >= 2");
  if (!(rms_norm_eps > 0)) bad("rms_norm_eps", "must be > 0");
  if (!(rope_theta > 0)) bad("rope_theta", "must be > 0");
  if (max_position_embeddings < 1) bad("max_position_embeddings", "must be >= 1");
  if (minicpm() && !(scale_emb > 0 && scale_depth > 0 && dim_model_base > 0))
    bad("scale_emb/scale_depth/dim_model_base", "must be > 0 for minicpm");
}

static const char* const kKindNames[] = {"q", "k", "v", "o", "mlp", "norms", "embeddings", "selector"};

const char* param_kind_name(ParamKind kind) { return kKindNames[(int)kind]; }

ParamKind param_kind_from_name(const std::string& name) {
  for (int i = 0; i < 8; i++)
    if (name == kKindNames[i]) return (ParamKind)i;
  throw std::invalid_argument("unknown parameter kind '" + name + "'");
}

int64_t Param::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

// ============================================================================ activations

// Every float array lives in the backend's memory.
using Buf = DeviceArray<float>;

struct LayerActs {
  Buf ln1, ln1_rstd;           // (N, C), (N)
  Buf q_pre, k_pre;            // qwen3: (N, H*D), (N, Hkv*D) before QK-norm
  Buf qn_rstd, kn_rstd;        // qwen3: (N*H), (N*Hkv)
  Buf q, k, v;                 // (B, H, T, D), (B, Hkv, T, D) x2, after RoPE
  Buf att, lse;                // (B, H, T, D), (B, H, T)
  Buf merged;                  // (N, H*D)
  Buf resid_mid;               // (N, C) after the attention branch
  Buf ln2, ln2_rstd;           // (N, C), (N)
  Buf gate, up, act;           // (N, F)
  // Block-sparse layers of the student: one mask shared by the batch, or one per sequence (top-k).
  std::vector<BlockMask> masks;
  Buf dq_kl, dk_kl;            // attention-KL gradients w.r.t. q, k (heads layout), or empty
};

struct Activations {
  int B = 0, T = 0;
  DeviceArray<int32_t> inputs, targets;  // (N) each
  std::vector<Buf> resid;  // L+1 of (N, C): resid[0] embeddings, resid[l+1] after layer l (teacher: 2, in turn)
  std::vector<LayerActs> layers;
  Buf hidden, hidden_rstd;  // (N, C) final norm output ("last hidden state"), (N)
  Buf scratch;              // (N, max(C, H*D)) for projections
  Buf qt, kt;               // (B, T, H, D), (B, T, Hkv, D): q, k before the head transpose
};

// ============================================================================ model

Model::Model(const ModelConfig& config, std::shared_ptr<Backend> backend)
    : backend_(std::move(backend)), config_(config) {
  if (!backend_) throw std::invalid_argument("model: no backend");
  config_.validate();
  if (config_.dim_model_base <= 0) config_.dim_model_base = (float)config_.hidden_size;
  const int64_t C = config_.hidden_size, F = config_.intermediate_size, V = config_.vocab_size;
  const int64_t HD = (int64_t)config_.num_heads * config_.head_dim, KD = (int64_t)config_.num_kv_heads * config_.head_dim;
  auto add = [&](const std::string& name, ParamKind kind, int layer, std::vector<int64_t> shape, float fill) {
    Param p;
    p.name = name;
    p.kind = kind;
    p.layer = layer;
    p.shape = std::move(shape);
    p.data.assign(p.numel(), fill);
    params_.push_back(std::move(p));
    return params_.size() - 1;
  };
  embed_index_ = add("model.embed_tokens.weight", ParamKind::embeddings, -1, {V, C}, 0);
  for (int l = 0; l < config_.num_layers; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerParams lp{};
    lp.ln1 = add(p + "input_layernorm.weight", ParamKind::norms, l, {C}, 1);
    lp.q = add(p + "self_attn.q_proj.weight", ParamKind::q, l, {HD, C}, 0);
    lp.k = add(p + "self_attn.k_proj.weight", ParamKind::k, l, {KD, C}, 0);
    lp.v = add(p + "self_attn.v_proj.weight", ParamKind::v, l, {KD, C}, 0);
    if (config_.qk_norm()) {
      lp.q_norm = add(p + "self_attn.q_norm.weight", ParamKind::norms, l, {config_.head_dim}, 1);
      lp.k_norm = add(p + "self_attn.k_norm.weight", ParamKind::norms, l, {config_.head_dim}, 1);
    }
    lp.o = add(p + "self_attn.o_proj.weight", ParamKind::o, l, {C, HD}, 0);
    lp.ln2 = add(p + "post_attention_layernorm.weight", ParamKind::norms, l, {C}, 1);
    lp.gate = add(p + "mlp.gate_proj.weight", ParamKind::mlp, l, {F, C}, 0);
    lp.up = add(p + "mlp.up_proj.weight", ParamKind::mlp, l, {F, C}, 0);
    lp.down = add(p + "mlp.down_proj.weight", ParamKind::mlp, l, {C, F}, 0);
    layers_.push_back(lp);
  }
  final_norm_index_ = add("model.norm.weight", ParamKind::norms, -1, {C}, 1);
  lm_head_index_ = config_.tie_word_embeddings ? embed_index_ : add("lm_head.weight", ParamKind::embeddings, -1, {V, C}, 0);
  for (auto& p : params_) optimizer::set_trainable(p, true);
  attention_.resize(config_.num_layers);
  indexer_shape_.C = config_.hidden_size;
  acts_ = std::make_unique<Activations>();
  teacher_acts_ = std::make_unique<Activations>();
}

Model::~Model() = default;

// ---------------------------------------------------------------------------- weights on the backend

std::vector<Param>& Model::params() {
  host_access();
  return params_;
}

const std::vector<Param>& Model::params() const {
  sync_host();
  return params_;
}

float* Model::dev_data(size_t i) {
  return backend_->host_resident() ? params_[i].data.data() : mirrors_[i].data.data();
}

const float* Model::dev_weights(size_t i, bool teacher) const {
  const Param& p = params_[i];
  if (backend_->host_resident()) return teacher ? p.teacher_data() : p.data.data();
  return teacher && !p.teacher.empty() ? mirrors_[i].teacher.data() : mirrors_[i].data.data();
}

float* Model::dev_grad(size_t i) {
  if (!params_[i].trainable) return nullptr;
  return backend_->host_resident() ? params_[i].grad.data() : mirrors_[i].grad.data();
}

void Model::sync_host() const {
  if (backend_->host_resident() || host_fresh_) return;
  for (size_t i = 0; i < params_.size(); i++) {
    // const: the host vectors are a cache of the backend's copy here
    Param& p = const_cast<Param&>(params_[i]);
    if (!p.trainable) continue;  // frozen tensors are never written on the backend
    Mirror& m = mirrors_[i];
    backend_->download(p.data.data(), m.data.data(), (int64_t)sizeof(float) * p.numel());
    for (auto [host, dev] : {std::pair{&p.grad, &m.grad}, {&p.m, &m.m}, {&p.v, &m.v}})
      if (!host->empty() && dev->size() == (int64_t)host->size())
        backend_->download(host->data(), dev->data(), (int64_t)sizeof(float) * host->size());
  }
  host_fresh_ = true;
}

void Model::host_access() {
  sync_host();
  device_fresh_ = false;
}

void Model::sync_device() {
  if (backend_->host_resident() || device_fresh_) return;
  Backend* be = backend_.get();
  mirrors_.resize(params_.size());
  auto put = [&](DeviceArray<float>& dev, const std::vector<float>& host) {
    dev.resize(be, (int64_t)host.size());
    if (!host.empty()) be->upload(dev.data(), host.data(), (int64_t)sizeof(float) * host.size());
  };
  for (size_t i = 0; i < params_.size(); i++) {
    const Param& p = params_[i];
    Mirror& m = mirrors_[i];
    put(m.data, p.data);
    put(m.teacher, p.teacher);
    put(m.grad, p.grad);
    put(m.m, p.m);
    put(m.v, p.v);
  }
  device_fresh_ = true;
  host_fresh_ = true;
}

// The teacher keeps the weights as they are now (the base weights of an unfrozen tensor).
void Model::make_teacher_copy(size_t i) {
  Param& p = params_[i];
  if (backend_->host_resident()) {
    p.teacher = p.data;
    return;
  }
  p.teacher.resize(p.data.size());
  backend_->download(p.teacher.data(), mirrors_[i].data.data(), (int64_t)sizeof(float) * p.teacher.size());
  mirrors_[i].teacher.resize(backend_.get(), (int64_t)p.teacher.size());
  backend_->copy(mirrors_[i].teacher.data(), mirrors_[i].data.data(), (int64_t)p.teacher.size());
}

const float* Model::host_view(const float* dev, int64_t n, std::vector<float>& staging) const {
  if (backend_->host_resident()) return dev;
  staging.resize(n);
  backend_->download(staging.data(), dev, (int64_t)sizeof(float) * n);
  return staging.data();
}

double Model::grad_scale_for_step() const { return backend_->precision() == Precision::fp16 ? loss_scale_ : 1.0; }

void Model::set_loss_scale(double scale, int growth_interval) {
  if (!(scale >= 1 && scale <= 0x1p100) || std::log2(scale) != std::floor(std::log2(scale)))
    throw std::invalid_argument("loss_scale: must be a power of two in [1, 2^100]");
  if (growth_interval < 1) throw std::invalid_argument("loss_scale growth interval: must be >= 1");
  loss_scale_ = scale;
  growth_interval_ = growth_interval;
  good_steps_ = 0;
}

int64_t Model::num_params() const {
  int64_t n = 0;
  for (auto& p : params_) n += p.numel();
  return n;
}

Param& Model::param(const std::string& name) {
  host_access();
  for (auto& p : params_)
    if (p.name == name) return p;
  throw std::invalid_argument("no tensor named " + name + " in this model");
}

const Param& Model::lm_head() const { return params_[lm_head_index_]; }

// splitmix64 (block_mask.h) is the portable generator: std::normal_distribution differs between libraries.
void Model::init_random(uint64_t seed) {
  host_access();
  const float std_dev = 0.02f, residual_std = 0.02f / std::sqrt(2.0f * config_.num_layers);
  for (size_t i = 0; i < params_.size(); i++) {
    Param& p = params_[i];
    p.teacher.clear();
    if (p.kind == ParamKind::norms) {
      std::fill(p.data.begin(), p.data.end(), 1.0f);
      continue;
    }
    const bool residual = p.name.find("o_proj") != std::string::npos || p.name.find("down_proj") != std::string::npos;
    const float s = residual ? residual_std : std_dev;
    uint64_t state = seed * 0x100000001B3ull + i * 0x9E3779B97F4A7C15ull + 1;
    for (size_t j = 0; j < p.data.size(); j += 2) {  // Box-Muller, two normals per pair of uniforms
      double u1 = ((splitmix64(state) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
      double u2 = (splitmix64(state) >> 11) * (1.0 / 9007199254740992.0);
      double r = std::sqrt(-2.0 * std::log(u1));
      p.data[j] = (float)(s * r * std::cos(2 * M_PI * u2));
      if (j + 1 < p.data.size()) p.data[j + 1] = (float)(s * r * std::sin(2 * M_PI * u2));
    }
  }
}

Param& Model::param_of_size(const std::string& name, int64_t n) {
  Param& p = param(name);
  if (n != p.numel()) {
    std::ostringstream os;
    os << "tensor " << name << ": got " << n << " values, expected " << p.numel();
    throw std::invalid_argument(os.str());
  }
  return p;
}

void Model::set_tensor(const std::string& name, const float* values, int64_t n) {
  Param& p = param_of_size(name, n);
  std::copy(values, values + n, p.data.begin());
  p.teacher.clear();  // a freshly loaded tensor is the new base
}

void Model::set_student_tensor(const std::string& name, const float* values, int64_t n) {
  Param& p = param_of_size(name, n);
  if (std::equal(values, values + n, p.data.begin())) return;
  if (p.teacher.empty()) p.teacher = p.data;
  std::copy(values, values + n, p.data.begin());
}

void Model::set_trainable(const std::vector<int>& layers, const std::vector<ParamKind>& kinds, bool trainable) {
  for (int l : layers)
    if (l < 0 || l >= config_.num_layers)
      throw std::invalid_argument("layer " + std::to_string(l) + " out of range (model has " +
                                  std::to_string(config_.num_layers) + " layers)");
  host_access();
  for (auto& p : params_) {
    const bool layer_ok = layers.empty() || std::find(layers.begin(), layers.end(), p.layer) != layers.end();
    const bool kind_ok = std::find(kinds.begin(), kinds.end(), p.kind) != kinds.end();
    if (!layer_ok || !kind_ok) continue;
    if (trainable && p.teacher.empty()) p.teacher = p.data;  // the teacher keeps the base weights
    optimizer::set_trainable(p, trainable);
  }
}

int Model::lowest_trainable_layer() const {
  if (embed().trainable) return -1;
  int lowest = config_.num_layers;
  for (auto& p : params_)
    if (p.trainable && p.layer >= 0) lowest = std::min(lowest, p.layer);
  return lowest;
}

void Model::check_tokens(const int32_t* tokens, int B, int T) const {
  if (B < 1) throw std::invalid_argument("batch.batch must be >= 1");
  if (T < 1) throw std::invalid_argument("batch.seq must be >= 1");
  if (T > config_.max_position_embeddings)
    throw std::invalid_argument("batch.seq " + std::to_string(T) + " exceeds max_position_embeddings " +
                                std::to_string(config_.max_position_embeddings));
  const int64_t n = (int64_t)B * (T + 1);
  for (int64_t i = 0; i < n; i++)
    if (tokens[i] < 0 || tokens[i] >= config_.vocab_size) {
      std::ostringstream os;
      os << "batch.tokens[" << i << "] = " << tokens[i] << " is outside the vocabulary [0, " << config_.vocab_size << ")";
      throw std::invalid_argument(os.str());
    }
}

void Model::ensure_rope(int T) {
  if (rope_.max_seq >= T) return;
  RopeScaling scaling = config_.rope_scaling;
  scaling.max_position_embeddings = config_.max_position_embeddings;
  rope_ = rope_table(config_.head_dim, std::max(T, std::min(config_.max_position_embeddings, 64)), config_.rope_theta, scaling);
  if (backend_->host_resident()) return;
  for (auto [dev, host] : {std::pair{&rope_cos_, &rope_.cos}, {&rope_sin_, &rope_.sin}}) {
    dev->resize(backend_.get(), (int64_t)host->size());
    backend_->upload(dev->data(), host->data(), (int64_t)sizeof(float) * host->size());
  }
}

RopeArrays Model::rope_arrays() const {
  if (backend_->host_resident()) return {&rope_, rope_.cos.data(), rope_.sin.data()};
  return {&rope_, rope_cos_.data(), rope_sin_.data()};
}


// ---------------------------------------------------------------------------- forward

void Model::forward(Activations& a, const int32_t* inputs, int B, int T, bool teacher) const {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  Backend* bp = backend_.get();
  const int N = B * T, C = c.hidden_size, F = c.intermediate_size, H = c.num_heads, Hkv = c.num_kv_heads,
            D = c.head_dim, L = c.num_layers;
  const float eps = c.rms_norm_eps, rs = c.residual_scale();
  auto w = [&](size_t i) { return dev_weights(i, teacher); };
  const RopeArrays rope = rope_arrays();
  a.B = B;
  a.T = T;
  // The teacher's forward keeps only what the losses and metrics read: q, k and lse of every
  // layer and the final hidden state. Its other buffers are shared by all layers (two residual
  // streams used in turn), which halves the activation memory of a distillation step.
  a.resid.resize(teacher ? 2 : L + 1);
  a.layers.resize(L);
  for (auto& r : a.resid) r.resize(bp, (int64_t)N * C);
  auto resid = [&](int i) -> Buf& { return a.resid[teacher ? i % 2 : i]; };
  a.scratch.resize(bp, (int64_t)N * std::max(C, H * D));

  be.embedding_forward(resid(0).data(), inputs, w(embed_index_), N, C);
  if (c.minicpm()) be.scale(resid(0).data(), resid(0).data(), c.scale_emb, (int64_t)N * C);

  for (int l = 0; l < L; l++) {
    const LayerParams& lp = layers_[l];
    LayerActs& la = a.layers[l];
    LayerActs& work = teacher ? a.layers[0] : la;  // buffers the teacher does not keep per layer
    work.ln1.resize(bp, (int64_t)N * C); work.ln1_rstd.resize(bp, N);
    la.q.resize(bp, (int64_t)N * H * D); la.k.resize(bp, (int64_t)N * Hkv * D); work.v.resize(bp, (int64_t)N * Hkv * D);
    work.att.resize(bp, (int64_t)N * H * D); la.lse.resize(bp, (int64_t)N * H); work.merged.resize(bp, (int64_t)N * H * D);
    work.resid_mid.resize(bp, (int64_t)N * C); work.ln2.resize(bp, (int64_t)N * C); work.ln2_rstd.resize(bp, N);
    work.gate.resize(bp, (int64_t)N * F); work.up.resize(bp, (int64_t)N * F); work.act.resize(bp, (int64_t)N * F);
    const float* x = resid(l).data();

    // attention branch
    be.rmsnorm_forward(work.ln1.data(), work.ln1_rstd.data(), x, w(lp.ln1), N, C, eps);
    Buf& qt = a.qt;
    Buf& kt = a.kt;
    qt.resize(bp, (int64_t)N * H * D);
    kt.resize(bp, (int64_t)N * Hkv * D);
    be.matmul_forward(qt.data(), work.ln1.data(), w(lp.q), N, C, H * D);
    be.matmul_forward(kt.data(), work.ln1.data(), w(lp.k), N, C, Hkv * D);
    be.matmul_forward(work.merged.data(), work.ln1.data(), w(lp.v), N, C, Hkv * D);  // v staged in merged
    be.to_heads(work.v.data(), work.merged.data(), B, T, Hkv, D);
    if (c.qk_norm()) {
      work.q_pre.resize(bp, qt.size());
      work.k_pre.resize(bp, kt.size());
      be.copy(work.q_pre.data(), qt.data(), qt.size());
      be.copy(work.k_pre.data(), kt.data(), kt.size());
      work.qn_rstd.resize(bp, (int64_t)N * H); work.kn_rstd.resize(bp, (int64_t)N * Hkv);
      be.rmsnorm_forward(qt.data(), work.qn_rstd.data(), work.q_pre.data(), w(lp.q_norm), N * H, D, eps);
      be.rmsnorm_forward(kt.data(), work.kn_rstd.data(), work.k_pre.data(), w(lp.k_norm), N * Hkv, D, eps);
    }
    be.rope_forward(qt.data(), B, T, H, D, rope);
    be.rope_forward(kt.data(), B, T, Hkv, D, rope);
    be.to_heads(la.q.data(), qt.data(), B, T, H, D);
    be.to_heads(la.k.data(), kt.data(), B, T, Hkv, D);
    build_masks(la, l, B, T, teacher);
    if (la.masks.empty() || la.masks[0].dense) {
      be.attention_forward(work.att.data(), la.lse.data(), la.q.data(), la.k.data(), work.v.data(), B, H, Hkv, T, D,
                           nullptr);
    } else {
      const bool per_seq = la.masks.size() > 1 || B == 1;
      const int nb = per_seq ? B : 1, bb = per_seq ? 1 : B;
      for (int b = 0; b < nb; b++) {
        const size_t qo = (size_t)b * H * T * D, ko = (size_t)b * Hkv * T * D;
        be.attention_forward(work.att.data() + qo, la.lse.data() + (size_t)b * H * T, la.q.data() + qo,
                             la.k.data() + ko, work.v.data() + ko, bb, H, Hkv, T, D, &la.masks[per_seq ? b : 0]);
      }
    }
    be.from_heads(work.merged.data(), work.att.data(), B, T, H, D);
    be.matmul_forward(a.scratch.data(), work.merged.data(), w(lp.o), N, H * D, C);
    be.add_scaled(work.resid_mid.data(), x, a.scratch.data(), rs, (int64_t)N * C);

    // feed-forward branch
    be.rmsnorm_forward(work.ln2.data(), work.ln2_rstd.data(), work.resid_mid.data(), w(lp.ln2), N, C, eps);
    be.matmul_forward(work.gate.data(), work.ln2.data(), w(lp.gate), N, C, F);
    be.matmul_forward(work.up.data(), work.ln2.data(), w(lp.up), N, C, F);
    be.swiglu_forward(work.act.data(), work.gate.data(), work.up.data(), (int64_t)N * F);
    be.matmul_forward(a.scratch.data(), work.act.data(), w(lp.down), N, F, C);
    be.add_scaled(resid(l + 1).data(), work.resid_mid.data(), a.scratch.data(), rs, (int64_t)N * C);
  }
  a.hidden.resize(bp, (int64_t)N * C);
  a.hidden_rstd.resize(bp, N);
  be.rmsnorm_forward(a.hidden.data(), a.hidden_rstd.data(), resid(L).data(), w(final_norm_index_), N, C, eps);
}

// ---------------------------------------------------------------------------- LM head + losses

std::pair<double, double> Model::lm_head_loss(const float* hidden, const float* teacher_hidden, const int32_t* targets,
                                              int B, int T, float* dhidden, const DistillWeights* dw,
                                              bool teacher_weights, float grad_scale) {
  Backend& be = *backend_;
  Backend* bp = backend_.get();
  const int N = B * T, C = config_.hidden_size, V = config_.vocab_size;
  const float inv_div = 1.0f / config_.logit_divisor();
  const Param& head = params_[lm_head_index_];
  const float* W = dev_weights(lm_head_index_, teacher_weights);
  const float* W_teacher = dev_weights(lm_head_index_, true);
  float* dW = (dhidden && head.trainable && !teacher_weights) ? dev_grad(lm_head_index_) : nullptr;
  const float task_w = dw ? dw->task : 1.0f;
  const float kl_w = (dw && teacher_hidden) ? dw->logit_kl : 0.0f;
  const float temp = dw ? dw->temperature : 1.0f;
  const bool want_kl = teacher_hidden != nullptr;
  // Rows per chunk: about 4M logits at a time.
  const int R = std::max(1, std::min(N, (int)((int64_t)(1 << 22) / V)));
  Buf xs(bp, (int64_t)R * C), xt, logits(bp, (int64_t)R * V), tlogits, dlogits, dxs;
  if (dhidden) {
    dlogits.resize(bp, (int64_t)R * V);
    dxs.resize(bp, (int64_t)R * C);
  }
  if (want_kl) {
    xt.resize(bp, (int64_t)R * C);
    tlogits.resize(bp, (int64_t)R * V);
  }
  double ce_sum = 0, kl_sum = 0;
  for (int r0 = 0; r0 < N; r0 += R) {
    const int rows = std::min(R, N - r0);
    be.scale(xs.data(), hidden + (size_t)r0 * C, inv_div, (int64_t)rows * C);
    be.matmul_forward(logits.data(), xs.data(), W, rows, C, V);
    // cross_entropy returns the mean over the chunk; dscale makes its gradient a share of the mean
    // over all N rows (every target is valid: the model checked them).
    const double ce = be.cross_entropy(dhidden ? dlogits.data() : nullptr, logits.data(), targets + r0, rows, V,
                                       task_w * (float)rows / (float)N * grad_scale);
    ce_sum += ce * rows;
    if (want_kl) {
      // KL(teacher || student) of softmax(z / temp); gradient w.r.t. student logits T * (ps - pt) / N.
      be.scale(xt.data(), teacher_hidden + (size_t)r0 * C, inv_div, (int64_t)rows * C);
      be.matmul_forward(tlogits.data(), xt.data(), W_teacher, rows, C, V);
      const bool add_grad = dhidden && kl_w != 0;
      kl_sum += be.logit_kl(add_grad ? dlogits.data() : nullptr, logits.data(), tlogits.data(), rows, V, temp,
                            add_grad ? kl_w * temp / N * grad_scale : 0.0f);
    }
    if (!dhidden) continue;
    be.fill(dxs.data(), 0.0f, (int64_t)rows * C);
    be.matmul_backward(dxs.data(), dW, dlogits.data(), xs.data(), W, rows, C, V);
    // dW got the gradient w.r.t. W from scaled inputs, which is what we want (logits = (h/div) W^T).
    be.scale(dhidden + (size_t)r0 * C, dxs.data(), inv_div, (int64_t)rows * C);
  }
  const double t2 = (double)temp * temp;
  return {ce_sum / N, want_kl ? t2 * kl_sum / N : 0.0};
}

// ---------------------------------------------------------------------------- backward

void Model::backward(Activations& a, const float* dhidden, const int32_t* inputs, int B, int T) {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  Backend* bp = backend_.get();
  const int N = B * T, C = c.hidden_size, F = c.intermediate_size, H = c.num_heads, Hkv = c.num_kv_heads,
            D = c.head_dim, L = c.num_layers;
  const float rs = c.residual_scale();
  auto dw = [&](size_t i) { return dev_grad(i); };
  auto w = [&](size_t i) { return dev_weights(i, false); };
  const RopeArrays rope = rope_arrays();
  const int stop = lowest_trainable_layer();  // layers below `stop` need no gradient

  if (stop >= L) {  // only the final norm (and head) can train
    if (params_[final_norm_index_].trainable) {
      Buf scratch(bp, (int64_t)N * C);
      be.rmsnorm_backward(scratch.data(), dw(final_norm_index_), dhidden, a.resid[L].data(), w(final_norm_index_),
                          a.hidden_rstd.data(), N, C);
    }
    return;
  }
  Buf dres(bp, (int64_t)N * C);  // gradient w.r.t. the current residual stream
  be.rmsnorm_backward(dres.data(), dw(final_norm_index_), dhidden, a.resid[L].data(), w(final_norm_index_),
                      a.hidden_rstd.data(), N, C);
  Buf dbranch(bp, (int64_t)N * C), dln(bp, (int64_t)N * C), dact(bp, (int64_t)N * F), dgate(bp, (int64_t)N * F),
      dup(bp, (int64_t)N * F), dmerged(bp, (int64_t)N * H * D), datt(bp, (int64_t)N * H * D),
      dq(bp, (int64_t)N * H * D), dk(bp, (int64_t)N * Hkv * D), dv(bp, (int64_t)N * Hkv * D),
      dqt(bp, (int64_t)N * H * D), dkt(bp, (int64_t)N * Hkv * D), dvt(bp, (int64_t)N * Hkv * D), dpre;

  for (int l = L - 1; l >= std::max(stop, 0); l--) {
    const LayerParams& lp = layers_[l];
    LayerActs& la = a.layers[l];
    // feed-forward branch: resid[l+1] = resid_mid + rs * down(swiglu(gate(ln2), up(ln2)))
    be.scale(dbranch.data(), dres.data(), rs, (int64_t)N * C);
    be.fill(dact.data(), 0.0f, dact.size());
    be.matmul_backward(dact.data(), dw(lp.down), dbranch.data(), la.act.data(), w(lp.down), N, F, C);
    be.swiglu_backward(dgate.data(), dup.data(), dact.data(), la.gate.data(), la.up.data(), (int64_t)N * F);
    be.fill(dln.data(), 0.0f, dln.size());
    be.matmul_backward(dln.data(), dw(lp.gate), dgate.data(), la.ln2.data(), w(lp.gate), N, C, F);
    be.matmul_backward(dln.data(), dw(lp.up), dup.data(), la.ln2.data(), w(lp.up), N, C, F);
    be.rmsnorm_backward(dres.data(), dw(lp.ln2), dln.data(), la.resid_mid.data(), w(lp.ln2), la.ln2_rstd.data(), N,
                        C);

    // attention branch: resid_mid = resid[l] + rs * o(attention(rope(q), rope(k), v))
    be.scale(dbranch.data(), dres.data(), rs, (int64_t)N * C);
    be.fill(dmerged.data(), 0.0f, dmerged.size());
    be.matmul_backward(dmerged.data(), dw(lp.o), dbranch.data(), la.merged.data(), w(lp.o), N, H * D, C);
    be.to_heads(datt.data(), dmerged.data(), B, T, H, D);
    if (la.masks.empty() || la.masks[0].dense) {
      be.attention_backward(dq.data(), dk.data(), dv.data(), datt.data(), la.q.data(), la.k.data(), la.v.data(),
                            la.att.data(), la.lse.data(), B, H, Hkv, T, D, nullptr);
    } else {
      const bool per_seq = la.masks.size() > 1 || B == 1;
      const int nb = per_seq ? B : 1, bb = per_seq ? 1 : B;
      for (int b = 0; b < nb; b++) {
        const size_t qo = (size_t)b * H * T * D, ko = (size_t)b * Hkv * T * D, lo = (size_t)b * H * T;
        be.attention_backward(dq.data() + qo, dk.data() + ko, dv.data() + ko, datt.data() + qo, la.q.data() + qo,
                              la.k.data() + ko, la.v.data() + ko, la.att.data() + qo, la.lse.data() + lo, bb, H,
                              Hkv, T, D, &la.masks[per_seq ? b : 0]);
      }
    }
    if (!la.dq_kl.empty()) {  // attention-KL distillation reaches q and k directly
      be.add_scaled(dq.data(), dq.data(), la.dq_kl.data(), 1.0f, dq.size());
      be.add_scaled(dk.data(), dk.data(), la.dk_kl.data(), 1.0f, dk.size());
    }
    be.from_heads(dqt.data(), dq.data(), B, T, H, D);
    be.from_heads(dkt.data(), dk.data(), B, T, Hkv, D);
    be.from_heads(dvt.data(), dv.data(), B, T, Hkv, D);
    be.rope_backward(dqt.data(), B, T, H, D, rope);
    be.rope_backward(dkt.data(), B, T, Hkv, D, rope);
    if (c.qk_norm()) {
      dpre.resize(bp, (int64_t)N * H * D);
      be.fill(dpre.data(), 0.0f, dpre.size());
      be.rmsnorm_backward(dpre.data(), dw(lp.q_norm), dqt.data(), la.q_pre.data(), w(lp.q_norm), la.qn_rstd.data(),
                          N * H, D);
      dqt.swap(dpre);
      dpre.resize(bp, (int64_t)N * Hkv * D);
      be.fill(dpre.data(), 0.0f, dpre.size());
      be.rmsnorm_backward(dpre.data(), dw(lp.k_norm), dkt.data(), la.k_pre.data(), w(lp.k_norm), la.kn_rstd.data(),
                          N * Hkv, D);
      dkt.swap(dpre);
    }
    be.fill(dln.data(), 0.0f, dln.size());
    be.matmul_backward(dln.data(), dw(lp.q), dqt.data(), la.ln1.data(), w(lp.q), N, C, H * D);
    be.matmul_backward(dln.data(), dw(lp.k), dkt.data(), la.ln1.data(), w(lp.k), N, C, Hkv * D);
    be.matmul_backward(dln.data(), dw(lp.v), dvt.data(), la.ln1.data(), w(lp.v), N, C, Hkv * D);
    be.rmsnorm_backward(dres.data(), dw(lp.ln1), dln.data(), a.resid[l].data(), w(lp.ln1), la.ln1_rstd.data(), N, C);
  }
  if (stop < 0) {  // embeddings train: resid[0] = scale_emb * table[token]
    if (c.minicpm()) be.scale(dres.data(), dres.data(), c.scale_emb, (int64_t)N * C);
    be.embedding_backward(dw(embed_index_), dres.data(), inputs, N, C);
  }
}

// ---------------------------------------------------------------------------- block-sparse layers

void Model::set_attention(int layer, const MaskSpec* spec) {
  if (layer < 0 || layer >= config_.num_layers)
    throw std::invalid_argument("layer " + std::to_string(layer) + " out of range (model has " +
                                std::to_string(config_.num_layers) + " layers)");
  if (!spec) {
    attention_[layer].reset();
    return;
  }
  const std::string err = validate_mask_spec(*spec);
  if (!err.empty()) throw std::invalid_argument(err);
  attention_[layer] = *spec;
  LayerParams& lp = layers_[layer];
  if (spec->selector == MaskSpec::Indexer && lp.idx_q == SIZE_MAX) {
    host_access();  // new tensors: the backend's copy is rebuilt at the next step
    const IndexerShape& s = indexer_shape_;
    const std::string prefix = "model.layers." + std::to_string(layer) + ".self_attn.indexer.";
    auto add = [&](const std::string& name, std::vector<int64_t> shape) {
      Param p;
      p.name = prefix + name;
      p.kind = ParamKind::selector;
      p.layer = layer;
      p.shape = std::move(shape);
      p.data.assign(p.numel(), 0.0f);
      optimizer::set_trainable(p, true);  // a new part: it trains until frozen
      params_.push_back(std::move(p));
      return params_.size() - 1;
    };
    lp.idx_q = add("wq.weight", {(int64_t)s.Hi * s.Di, s.C});
    lp.idx_k = add("wk.weight", {(int64_t)s.Di, s.C});
    lp.idx_h = add("weights_proj.weight", {(int64_t)s.Hi});
    indexer_init(params_[lp.idx_q].data.data(), params_[lp.idx_k].data.data(), params_[lp.idx_h].data.data(), s,
                 spec->random_seed * 1000003ull + (uint64_t)layer);
  }
}

void Model::build_masks(LayerActs& la, int l, int B, int T, bool teacher) const {
  la.masks.clear();
  la.dq_kl.clear();
  la.dk_kl.clear();
  if (teacher || !attention_[l]) return;
  const MaskSpec& spec = *attention_[l];
  const int H = config_.num_heads, Hkv = config_.num_kv_heads, D = config_.head_dim, C = config_.hidden_size;
  const bool dynamic = spec.topk_blocks > 0 && spec.selector != MaskSpec::None && T >= spec.dense_below;
  if (!dynamic) {
    la.masks.push_back(build_block_mask(spec, T, H, Hkv, l, nullptr));
    return;
  }
  const int nb = (T + spec.block_size - 1) / spec.block_size;
  const int heads = spec.share_gqa_group ? Hkv : H;
  std::vector<float> scores((size_t)heads * nb * nb);
  const LayerParams& lp = layers_[l];
  for (int b = 0; b < B; b++) {
    if (spec.selector == MaskSpec::Pooled) {
      backend_->pooled_block_scores(scores.data(), la.q.data() + (size_t)b * H * T * D,
                                    la.k.data() + (size_t)b * Hkv * T * D, H, Hkv, T, D, spec.block_size,
                                    spec.share_gqa_group);
    } else {
      backend_->indexer_block_scores(scores.data(), la.ln1.data() + (size_t)b * T * C, dev_weights(lp.idx_q, false),
                                     dev_weights(lp.idx_k, false), dev_weights(lp.idx_h, false), indexer_shape_, T,
                                     spec.block_size, heads);
    }
    la.masks.push_back(build_block_mask(spec, T, H, Hkv, l, scores.data()));
  }
}

// Calls fn(b0, bb, mask) over the batch: once with the shared mask, or per sequence.
template <typename Fn>
static void for_each_mask(const std::vector<BlockMask>& masks, int B, Fn fn) {
  if (masks.size() == 1) {
    fn(0, B, masks[0]);
  } else {
    for (int b = 0; b < B; b++) fn(b, 1, masks[b]);
  }
}

double Model::attention_kl(float weight) {
  Activations& s = *acts_;
  Activations& t = *teacher_acts_;
  const int B = s.B, T = s.T, H = config_.num_heads, Hkv = config_.num_kv_heads, D = config_.head_dim;
  int n_sparse = 0;
  for (int l = 0; l < config_.num_layers; l++) n_sparse += !s.layers[l].masks.empty();
  if (n_sparse == 0) return 0;
  double total = 0;
  for (int l = 0; l < config_.num_layers; l++) {
    LayerActs& la = s.layers[l];
    const LayerActs& lt = t.layers[l];
    if (la.masks.empty()) continue;
    if (weight != 0) {
      la.dq_kl.resize(backend_.get(), la.q.size());
      la.dk_kl.resize(backend_.get(), la.k.size());
    }
    double layer_kl = 0;
    for_each_mask(la.masks, B, [&](int b0, int bb, const BlockMask& mask) {
      const size_t qo = (size_t)b0 * H * T * D, ko = (size_t)b0 * Hkv * T * D, lo = (size_t)b0 * H * T;
      const double share = (double)bb / B;  // this call's share of the batch mean
      const float g = (float)(weight * share / n_sparse);
      layer_kl += share * backend_->attn_kl_loss(weight != 0 ? la.dq_kl.data() + qo : nullptr,
                                                 weight != 0 ? la.dk_kl.data() + ko : nullptr, g, la.q.data() + qo,
                                                 la.k.data() + ko, lt.q.data() + qo, lt.k.data() + ko,
                                                 lt.lse.data() + lo, bb, H, Hkv, T, D, mask);
    });
    total += layer_kl;
  }
  return total / n_sparse;
}

double Model::indexer_loss(float grad_scale) {
  Activations& s = *acts_;
  Activations& t = *teacher_acts_;
  const int B = s.B, T = s.T, H = config_.num_heads, Hkv = config_.num_kv_heads, D = config_.head_dim;
  double total = 0;
  int n = 0;
  for (int l = 0; l < config_.num_layers; l++) {
    const LayerParams& lp = layers_[l];
    if (!attention_[l] || attention_[l]->selector != MaskSpec::Indexer || lp.idx_q == SIZE_MAX) continue;
    if (!params_[lp.idx_q].trainable && !params_[lp.idx_k].trainable && !params_[lp.idx_h].trainable) continue;
    const LayerActs& lt = t.layers[l];
    total += backend_->indexer_loss(dev_grad(lp.idx_q), dev_grad(lp.idx_k), dev_grad(lp.idx_h), grad_scale,
                                    s.layers[l].ln1.data(), dev_weights(lp.idx_q, false), dev_weights(lp.idx_k, false),
                                    dev_weights(lp.idx_h, false), lt.q.data(), lt.k.data(), lt.lse.data(),
                                    indexer_shape_, B, H, Hkv, T, D, attention_[l]->block_size);
    n++;
  }
  return n ? total / n : 0;
}

// ---------------------------------------------------------------------------- steps

// Mean over block-sparse layers of their masks' density (1 when every layer is dense).
static double mean_density(const Activations& a) {
  double sum = 0;
  int n = 0;
  for (auto& la : a.layers) {
    if (la.masks.empty()) continue;
    double d = 0;
    for (auto& m : la.masks) d += m.density();
    sum += d / la.masks.size();
    n++;
  }
  return n ? sum / n : 1.0;
}

void Model::zero_grads() {
  for (auto& p : params_)
    if (p.trainable && p.grad.size() != p.data.size()) {
      host_access();  // new optimiser buffers: the backend's copy is rebuilt below
      break;
    }
  for (auto& p : params_) optimizer::ensure_buffers(p);
  sync_device();
  for (size_t i = 0; i < params_.size(); i++)
    if (params_[i].trainable) backend_->fill(dev_grad(i), 0.0f, params_[i].numel());
}

// Splits (B, T+1) tokens into inputs and targets and puts them in the backend's memory.
static void load_tokens(Activations& a, Backend* be, const int32_t* tokens, int B, int T) {
  std::vector<int32_t> inputs((size_t)B * T), targets((size_t)B * T);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      inputs[(size_t)b * T + t] = tokens[(size_t)b * (T + 1) + t];
      targets[(size_t)b * T + t] = tokens[(size_t)b * (T + 1) + t + 1];
    }
  a.inputs.resize(be, (int64_t)inputs.size());
  a.targets.resize(be, (int64_t)targets.size());
  be->upload(a.inputs.data(), inputs.data(), (int64_t)sizeof(int32_t) * inputs.size());
  be->upload(a.targets.data(), targets.data(), (int64_t)sizeof(int32_t) * targets.size());
}

StepResult Model::compute_gradients(const int32_t* tokens, int B, int T, const StepOptions& options) {
  check_tokens(tokens, B, T);
  ensure_rope(T);
  Backend& be = *backend_;
  const int N = B * T, C = config_.hidden_size;
  const bool distill = options.distill;
  // A trainable tensor without its own teacher copy still holds the base weights: keep them.
  const auto needs_teacher_copy = [](const Param& p) { return p.trainable && p.teacher.empty(); };
  if (distill && std::any_of(params_.begin(), params_.end(), needs_teacher_copy)) host_access();
  zero_grads();
  host_fresh_ = false;  // the gradients change on the backend from here on
  if (distill)
    for (size_t i = 0; i < params_.size(); i++)
      if (needs_teacher_copy(params_[i])) make_teacher_copy(i);
  load_tokens(*acts_, backend_.get(), tokens, B, T);
  const int32_t* inputs = acts_->inputs.data();
  const int32_t* targets = acts_->targets.data();
  forward(*acts_, inputs, B, T, false);
  DistillWeights dw = distill ? options.weights : DistillWeights{};
  if (distill) forward(*teacher_acts_, inputs, B, T, true);
  const float S = (float)grad_scale_for_step();  // loss scale: gradients are computed at loss * S
  const bool need_teacher_logits = distill && dw.logit_kl != 0;
  Buf dhidden(backend_.get(), (int64_t)N * C);
  auto [ce, lkl] = lm_head_loss(acts_->hidden.data(), need_teacher_logits ? teacher_acts_->hidden.data() : nullptr,
                                targets, B, T, dhidden.data(), &dw, false, S);
  StepResult r;
  r.task_loss = ce;
  r.logit_kl_loss = lkl;
  r.loss_scale = S;
  if (distill) {
    // Hidden-state MSE against the teacher, on the backend (nothing comes down but the sum).
    Buf diff(backend_.get(), (int64_t)N * C);  // hs - ht
    be.add_scaled(diff.data(), acts_->hidden.data(), teacher_acts_->hidden.data(), -1.0f, diff.size());
    r.hidden_mse_loss = be.sum_squares(diff.data(), diff.size()) / ((double)N * C);
    if (dw.hidden_mse != 0) {
      const float g = 2.0f * dw.hidden_mse / ((float)N * C);
      be.add_scaled(dhidden.data(), dhidden.data(), diff.data(), g * S, diff.size());
    }
  }
  double selector_loss = 0;
  if (distill) {
    r.attn_kl_loss = attention_kl(dw.attn_kl * S);
    selector_loss = indexer_loss(S);
  }
  // The indexer's warm-up KL only reaches the selector tensors (its input is detached).
  r.loss = dw.task * ce + dw.attn_kl * r.attn_kl_loss + dw.logit_kl * lkl + dw.hidden_mse * r.hidden_mse_loss +
           selector_loss;
  backward(*acts_, dhidden.data(), inputs, B, T);
  double ss = 0;
  for (size_t i = 0; i < params_.size(); i++)
    if (params_[i].trainable) {
      if (S != 1) be.scale(dev_grad(i), dev_grad(i), 1.0f / S, params_[i].numel());  // exact: S is a power of two
      ss += be.sum_squares(dev_grad(i), params_[i].numel());
    }
  r.grad_norm = std::sqrt(ss);
  r.density = mean_density(*acts_);
  return r;
}

StepResult Model::train_step(const int32_t* tokens, int B, int T, const StepOptions& options) {
  StepResult r = compute_gradients(tokens, B, T, options);
  const bool scaling = backend_->precision() == Precision::fp16;
  if (scaling && std::isfinite(r.loss) && !std::isfinite(r.grad_norm)) {
    // fp16 overflow at this loss scale: skip the update and retry smaller next step.
    r.skipped = true;
    loss_scale_ = std::max(1.0, loss_scale_ / 2);
    good_steps_ = 0;
    return r;
  }
  if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm))
    throw std::runtime_error("training diverged: loss " + std::to_string(r.loss) + ", grad norm " +
                             std::to_string(r.grad_norm) + " (weights left unchanged)");
  const float clip = (options.grad_clip > 0 && r.grad_norm > options.grad_clip)
                         ? (float)(options.grad_clip / (r.grad_norm + 1e-6))
                         : 1.0f;
  for (size_t i = 0; i < params_.size(); i++) {
    Param& p = params_[i];
    if (!p.trainable) continue;
    p.adam_step++;
    const float wd = p.shape.size() >= 2 ? options.weight_decay : 0.0f;  // norm gains are not decayed
    const bool host = backend_->host_resident();
    backend_->adamw_update(dev_data(i), dev_grad(i), host ? p.m.data() : mirrors_[i].m.data(),
                           host ? p.v.data() : mirrors_[i].v.data(), p.numel(), options.lr, options.beta1,
                           options.beta2, options.eps, wd, (int)p.adam_step, clip);
  }
  if (scaling && ++good_steps_ >= growth_interval_) {
    loss_scale_ *= 2;
    good_steps_ = 0;
  }
  return r;
}

double Model::loss(const int32_t* tokens, int B, int T) {
  check_tokens(tokens, B, T);
  ensure_rope(T);
  sync_device();
  load_tokens(*acts_, backend_.get(), tokens, B, T);
  forward(*acts_, acts_->inputs.data(), B, T, false);
  return lm_head_loss(acts_->hidden.data(), nullptr, acts_->targets.data(), B, T, nullptr, nullptr, false).first;
}

EvalResult Model::evaluate(const int32_t* tokens, int B, int T) {
  check_tokens(tokens, B, T);
  ensure_rope(T);
  sync_device();
  const int N = B * T, C = config_.hidden_size, L = config_.num_layers;
  load_tokens(*acts_, backend_.get(), tokens, B, T);
  const int32_t* inputs = acts_->inputs.data();
  const int32_t* targets = acts_->targets.data();
  forward(*acts_, inputs, B, T, false);
  // While no tensor has its own teacher copy and every layer is dense, the teacher is the student.
  bool teacher_differs = false;
  for (auto& p : params_) teacher_differs |= !p.teacher.empty();
  for (auto& a : attention_) teacher_differs |= a.has_value();
  if (teacher_differs) forward(*teacher_acts_, inputs, B, T, true);
  const Activations& teacher = teacher_differs ? *teacher_acts_ : *acts_;
  EvalResult r;
  DistillWeights unit;  // logit KL at temperature 1
  auto [ce, lkl] = lm_head_loss(acts_->hidden.data(), teacher_differs ? teacher.hidden.data() : nullptr, targets, B, T,
                                nullptr, &unit, false);
  r.loss = ce;
  r.logit_kl = lkl;
  r.loss_teacher =
      teacher_differs ? lm_head_loss(teacher.hidden.data(), nullptr, targets, B, T, nullptr, nullptr, true).first : ce;
  std::vector<float> s1, s2;
  const float* hs = host_view(acts_->hidden.data(), (int64_t)N * C, s1);
  const float* ht = host_view(teacher.hidden.data(), (int64_t)N * C, s2);
  double mse = 0, cos_sum = 0;
  for (int n = 0; n < N; n++) {
    double dot = 0, ns = 0, nt = 0;
    for (int i = 0; i < C; i++) {
      const double s = hs[(size_t)n * C + i], t = ht[(size_t)n * C + i];
      dot += s * t; ns += s * s; nt += t * t;
      mse += (s - t) * (s - t);
    }
    cos_sum += dot / std::max(std::sqrt(ns * nt), 1e-12);
  }
  r.out_cos = cos_sum / N;
  r.hidden_mse = mse / ((double)N * C);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  r.attn_kl.assign(L, nan);
  r.attn_recall.assign(L, nan);
  r.density.assign(L, nan);
  const int H = config_.num_heads, Hkv = config_.num_kv_heads, D = config_.head_dim;
  for (int l = 0; l < L; l++) {
    const LayerActs& la = acts_->layers[l];
    const LayerActs& lt = teacher.layers[l];
    if (la.masks.empty()) continue;
    double kl = 0, recall = 0, density = 0;
    for_each_mask(la.masks, B, [&](int b0, int bb, const BlockMask& mask) {
      const size_t qo = (size_t)b0 * H * T * D, ko = (size_t)b0 * Hkv * T * D, lo = (size_t)b0 * H * T;
      AttentionMetrics m = backend_->attention_metrics(la.q.data() + qo, la.k.data() + ko, lt.q.data() + qo,
                                                       lt.k.data() + ko, lt.lse.data() + lo, bb, H, Hkv, T, D, mask);
      const double share = (double)bb / B;
      kl += m.attn_kl * share;
      recall += m.attn_recall * share;
      density += m.density * share;
    });
    r.attn_kl[l] = kl;
    r.attn_recall[l] = recall;
    r.density[l] = density;
  }
  return r;
}

double Model::train_flops(int B, int T) const {
  // 6 * params-in-matmuls per token (forward 2, backward 4) plus attention's 2 * 2 * T * H * D per
  // token forward (QK^T and PV, causal half), times 3 for forward + backward.
  const ModelConfig& c = config_;
  const double C = c.hidden_size, F = c.intermediate_size, HD = (double)c.num_heads * c.head_dim,
               KD = (double)c.num_kv_heads * c.head_dim;
  const double per_layer = C * HD * 2 + C * KD * 2 + 3 * C * F;
  const double matmul_params = c.num_layers * per_layer + (double)c.vocab_size * C;
  const double tokens = (double)B * T;
  const double attn = c.num_layers * 2.0 * 2.0 * (T / 2.0) * HD;
  return tokens * (6 * matmul_params + 3 * attn);
}

}  // namespace engine
