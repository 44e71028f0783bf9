// JS <-> step types for the model binding (step_io.h).
#include "step_io.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "args.h"

namespace napi_io {

using namespace napi_args;

engine::StepOptions step_options_from(const Napi::Object& o) {
  engine::StepOptions s;
  s.lr = (float)number_field(o, "lr", "options");
  s.weight_decay = (float)number_field(o, "weight_decay", "options");
  s.beta1 = (float)number_field(o, "beta1", "options");
  s.beta2 = (float)number_field(o, "beta2", "options");
  s.eps = (float)number_field(o, "eps", "options");
  s.grad_clip = (float)number_field(o, "grad_clip", "options");
  Napi::Value scale = o.Get("lr_scale");  // optional { kind: multiplier }
  if (!scale.IsUndefined() && !scale.IsNull()) {
    auto kinds = object_arg(scale, "options.lr_scale");
    for (const auto& e : kinds) {
      const std::string kind = Napi::Value(e.first).ToString();
      s.lr_scale[(int)engine::param_kind_from_name(kind)] = (float)number_field(kinds, kind.c_str(), "options.lr_scale");
    }
  }
  Napi::Value d = o.Get("distill");
  if (d.IsObject()) {
    auto w = d.As<Napi::Object>();
    s.distill = true;
    s.weights.task = (float)number_field(w, "task", "options.distill");
    s.weights.attn_kl = (float)number_field(w, "attn_kl", "options.distill");
    s.weights.logit_kl = (float)number_field(w, "logit_kl", "options.distill");
    s.weights.hidden_mse = (float)number_field(w, "hidden_mse", "options.distill");
    s.weights.temperature = (float)number_field(w, "temperature", "options.distill");
  }
  Napi::Value lb = o.Get("load_balance");
  if (lb.IsObject()) {
    auto b = lb.As<Napi::Object>();
    const std::string kind = string_field(b, "kind", "options.load_balance");
    if (kind == "seed") s.load_balance.kind = engine::LoadBalance::seed;
    else if (kind == "switch") s.load_balance.kind = engine::LoadBalance::switch_aux;
    else throw std::invalid_argument("options.load_balance.kind: must be seed or switch, got '" + kind + "'");
    Napi::Value weight = b.Get("weight");
    if (!weight.IsUndefined() && !weight.IsNull()) s.load_balance.weight = (float)number_field(b, "weight", "options.load_balance");
  }
  s.attn_entropy_weight = (float)number_field_or(o, "attn_entropy_weight", 0.0, "options");
  return s;
}

TokenBatch batch_from(const Napi::Value& tokens, const Napi::Value& b, const Napi::Value& t) {
  if (!tokens.IsTypedArray() || tokens.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw std::invalid_argument("batch.tokens: must be an Int32Array");
  TokenBatch out;
  out.B = int_arg(b, "batch.batch");
  out.T = int_arg(t, "batch.seq");
  auto arr = tokens.As<Napi::Int32Array>();
  if (out.B < 1 || out.T < 1 || (int64_t)arr.ElementLength() != (int64_t)out.B * (out.T + 1))
    throw std::invalid_argument("batch.tokens: length " + std::to_string(arr.ElementLength()) + " is not batch * (seq + 1)");
  out.tokens.assign(arr.Data(), arr.Data() + arr.ElementLength());
  return out;
}

// The routing statistics of a MoE model onto a result object (nothing for a dense model):
// aux_loss, expert_usage { "<layer>": [share per expert] }, routing_entropy { "<layer>": nats }.
void set_moe_stats(Napi::Env env, Napi::Object o, const engine::MoeStats& s) {
  if (!s.present) return;
  o.Set("aux_loss", s.aux_loss);
  auto usage = Napi::Object::New(env), entropy = Napi::Object::New(env);
  for (size_t i = 0; i < s.layers.size(); i++) {
    const std::string key = std::to_string(s.layers[i]);
    auto shares = Napi::Array::New(env, s.usage[i].size());
    for (size_t e = 0; e < s.usage[i].size(); e++) shares.Set((uint32_t)e, s.usage[i][e]);
    usage.Set(key, shares);
    entropy.Set(key, s.entropy[i]);
  }
  o.Set("expert_usage", usage);
  o.Set("routing_entropy", entropy);
}

Napi::Object step_result_to_js(Napi::Env env, const engine::StepResult& r) {
  auto o = Napi::Object::New(env);
  o.Set("loss", r.loss);
  o.Set("task_loss", r.task_loss);
  o.Set("attn_kl_loss", r.attn_kl_loss);
  o.Set("logit_kl_loss", r.logit_kl_loss);
  o.Set("hidden_mse_loss", r.hidden_mse_loss);
  o.Set("grad_norm", r.grad_norm);
  o.Set("density", r.density);
  o.Set("skipped", r.skipped);
  o.Set("loss_scale", r.loss_scale);
  if (r.moe.present) o.Set("load_balance_loss", r.moe.load_balance_loss);
  if (r.attn_entropy) o.Set("attn_entropy", *r.attn_entropy);
  set_moe_stats(env, o, r.moe);
  // Only steps that trained an indexer carry its KL and per-layer phase (null: no trained indexer).
  if (std::any_of(r.indexer_phase.begin(), r.indexer_phase.end(), [](int8_t p) { return p != 0; })) {
    o.Set("indexer_loss", r.indexer_loss);
    auto phase = Napi::Array::New(env, r.indexer_phase.size());
    for (size_t l = 0; l < r.indexer_phase.size(); l++)
      phase.Set((uint32_t)l, r.indexer_phase[l] ? Napi::Number::New(env, r.indexer_phase[l]) : env.Null());
    o.Set("indexer_phase", phase);
  }
  return o;
}

Napi::Array per_layer(Napi::Env env, const std::vector<double>& v) {
  auto a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); i++) a.Set((uint32_t)i, std::isnan(v[i]) ? env.Null() : Napi::Number::New(env, v[i]));
  return a;
}

Napi::Float32Array copy_to_js(Napi::Env env, const std::vector<float>& v) {
  auto a = Napi::Float32Array::New(env, v.size());
  std::copy(v.begin(), v.end(), a.Data());
  return a;
}

}  // namespace napi_io
