// The model's tensors: config checks, the Hugging Face layout, parameters and their backend
// mirrors, initialisation, freezing and block-sparse layers' selector tensors. The passes live in
// model_pass.cpp, losses in model_losses.cpp, the step in model_step.cpp, evaluation in model_eval.cpp.
#include "model.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "blocksparse_attention.h"
#include "model_acts.h"
#include "optimizer.h"

namespace engine {

// ============================================================================ config and layout

void ModelConfig::validate() const {
  auto bad = [](const std::string& field, const std::string& what) {
    throw std::invalid_argument("config." + field + ": " + what);
  };
  if (model_type.empty()) bad("model_type", "must not be empty");
  // Upper bounds far above any released model (native/checkpoint/config.ts CONFIG_CAPS holds the same).
  auto in_range = [&](const char* field, int v, int max) {
    if (v < 1) bad(field, "must be >= 1");
    if (v > max) bad(field, std::to_string(v) + " exceeds the supported maximum " + std::to_string(max));
  };
  in_range("vocab_size", vocab_size, 1 << 22);
  in_range("hidden_size", hidden_size, 1 << 16);
  in_range("intermediate_size", intermediate_size, 1 << 19);
  in_range("num_hidden_layers", num_layers, 1024);
  in_range("num_attention_heads", num_heads, 1024);
  if (num_kv_heads < 1 || num_heads % num_kv_heads != 0) bad("num_key_value_heads", "must divide num_attention_heads");
  in_range("head_dim", head_dim, 1024);
  if (head_dim < 2 || head_dim % 2 != 0) bad("head_dim", "must be even and >= 2");
  if (!(rms_norm_eps > 0)) bad("rms_norm_eps", "must be > 0");
  if (!(rope_theta > 0)) bad("rope_theta", "must be > 0");
  in_range("max_position_embeddings", max_position_embeddings, 1 << 24);
  if (mlp != MlpKind::swiglu) bad("mlp", "unknown MLP kind");
  const auto positive = [](float x) { return x > 0 && std::isfinite(x); };
  if (!positive(embedding_scale)) bad("embedding_scale", "must be a finite number > 0");
  if (!positive(residual_scale)) bad("residual_scale", "must be a finite number > 0");
  if (!positive(logit_divisor)) bad("logit_divisor", "must be a finite number > 0");
  if (num_experts == 0) return;
  in_range("num_experts", num_experts, 4096);
  in_range("num_experts_per_tok", num_experts_per_tok, num_experts);
  in_range("moe_intermediate_size", moe_intermediate_size, 1 << 19);
  in_range("decoder_sparse_step", decoder_sparse_step, 1024);
  for (int l : mlp_only_layers)
    if (l < 0 || l >= num_layers)
      bad("mlp_only_layers", std::to_string(l) + " is not a layer in [0, " + std::to_string(num_layers - 1) + "]");
  if (!(router_aux_loss_coef >= 0) || !std::isfinite(router_aux_loss_coef))
    bad("router_aux_loss_coef", "must be a finite number >= 0");
}

bool ModelConfig::is_moe_layer(int l) const {
  if (num_experts <= 0) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), l) != mlp_only_layers.end()) return false;
  return (l + 1) % decoder_sparse_step == 0;
}

static const char* const kKindNames[kParamKinds] = {"q",          "k",        "v",      "o",      "mlp",
                                                    "norms",      "embeddings", "selector", "router", "experts"};

const char* param_kind_name(ParamKind kind) { return kKindNames[(int)kind]; }

ParamKind param_kind_from_name(const std::string& name) {
  for (int i = 0; i < kParamKinds; i++)
    if (name == kKindNames[i]) return (ParamKind)i;
  throw std::invalid_argument("unknown parameter kind '" + name + "'");
}

std::vector<TensorSpec> tensor_layout(const ModelConfig& c) {
  const int64_t C = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, D = c.head_dim;
  const int64_t HD = (int64_t)c.num_heads * D, KD = (int64_t)c.num_kv_heads * D;
  using R = TensorRole;
  using K = ParamKind;
  std::vector<TensorSpec> out{{"model.embed_tokens.weight", K::embeddings, -1, {V, C}, R::embed}};
  for (int l = 0; l < c.num_layers; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto add = [&](const std::string& name, ParamKind kind, std::vector<int64_t> shape, TensorRole role) {
      out.push_back({p + name, kind, l, std::move(shape), role});
    };
    add("input_layernorm.weight", K::norms, {C}, R::ln1);
    add("self_attn.q_proj.weight", K::q, {HD, C}, R::q);
    add("self_attn.k_proj.weight", K::k, {KD, C}, R::k);
    add("self_attn.v_proj.weight", K::v, {KD, C}, R::v);
    if (c.qk_norm) {
      add("self_attn.q_norm.weight", K::norms, {D}, R::q_norm);
      add("self_attn.k_norm.weight", K::norms, {D}, R::k_norm);
    }
    add("self_attn.o_proj.weight", K::o, {C, HD}, R::o);
    add("post_attention_layernorm.weight", K::norms, {C}, R::ln2);
    if (c.is_moe_layer(l)) {  // Qwen3MoeSparseMoeBlock: mlp.gate is the router
      const int64_t E = c.num_experts, Fm = c.moe_intermediate_size;
      add("mlp.gate.weight", K::router, {E, C}, R::router);
      for (int e = 0; e < E; e++) {
        const std::string x = "mlp.experts." + std::to_string(e) + ".";
        add(x + "gate_proj.weight", K::experts, {Fm, C}, R::expert_gate);
        add(x + "up_proj.weight", K::experts, {Fm, C}, R::expert_up);
        add(x + "down_proj.weight", K::experts, {C, Fm}, R::expert_down);
        for (int i = 0; i < 3; i++) out[out.size() - 1 - i].expert = e;
      }
      continue;
    }
    switch (c.mlp) {
      case MlpKind::swiglu:
        add("mlp.gate_proj.weight", K::mlp, {F, C}, R::gate);
        add("mlp.up_proj.weight", K::mlp, {F, C}, R::up);
        add("mlp.down_proj.weight", K::mlp, {C, F}, R::down);
        break;
    }
  }
  out.push_back({"model.norm.weight", K::norms, -1, {C}, R::final_norm});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", K::embeddings, -1, {V, C}, R::lm_head});
  return out;
}

int64_t Param::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

// ============================================================================ model

Model::Model(const ModelConfig& config, std::shared_ptr<Backend> backend)
    : backend_(std::move(backend)), config_(config) {
  if (!backend_) throw std::invalid_argument("model: no backend");
  config_.validate();
  layers_.resize(config_.num_layers);
  for (TensorSpec& spec : tensor_layout(config_)) {
    Param p;
    p.name = std::move(spec.name);
    p.kind = spec.kind;
    p.layer = spec.layer;
    p.shape = std::move(spec.shape);
    p.data.assign(p.numel(), p.kind == ParamKind::norms ? 1.0f : 0.0f);
    const size_t i = params_.size();
    params_.push_back(std::move(p));
    LayerParams* lp = spec.layer >= 0 ? &layers_[spec.layer] : nullptr;
    switch (spec.role) {
      case TensorRole::embed: embed_index_ = i; break;
      case TensorRole::final_norm: final_norm_index_ = i; break;
      case TensorRole::lm_head: lm_head_index_ = i; break;
      case TensorRole::ln1: lp->ln1 = i; break;
      case TensorRole::q: lp->q = i; break;
      case TensorRole::k: lp->k = i; break;
      case TensorRole::v: lp->v = i; break;
      case TensorRole::q_norm: lp->q_norm = i; break;
      case TensorRole::k_norm: lp->k_norm = i; break;
      case TensorRole::o: lp->o = i; break;
      case TensorRole::ln2: lp->ln2 = i; break;
      case TensorRole::gate: lp->gate = i; break;
      case TensorRole::up: lp->up = i; break;
      case TensorRole::down: lp->down = i; break;
      case TensorRole::router: lp->router = i; break;
      case TensorRole::expert_gate: lp->expert_gate.push_back(i); break;
      case TensorRole::expert_up: lp->expert_up.push_back(i); break;
      case TensorRole::expert_down: lp->expert_down.push_back(i); break;
    }
  }
  if (config_.tie_word_embeddings) lm_head_index_ = embed_index_;
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
  float* g = backend_->host_resident() ? params_[i].grad.data() : mirrors_[i].grad.data();
  if (i < grad_unwritten_.size() && grad_unwritten_[i]) {
    backend_->fill(g, 0.0f, params_[i].numel());
    grad_unwritten_[i] = false;
  }
  return g;
}

void Model::linear_backward(float* dinp, size_t i, const float* dout, const float* inp, const float* weight, int N,
                            int C, int OC) {
  const bool has_grad = i != SIZE_MAX && params_[i].trainable;
  if (has_grad && i < grad_unwritten_.size() && grad_unwritten_[i]) {
    grad_unwritten_[i] = false;
    float* g = backend_->host_resident() ? params_[i].grad.data() : mirrors_[i].grad.data();
    return backend_->matmul_backward_overwrite_dweight(dinp, g, dout, inp, weight, N, C, OC);
  }
  backend_->matmul_backward(dinp, has_grad ? dev_grad(i) : nullptr, dout, inp, weight, N, C, OC);
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

}  // namespace engine
