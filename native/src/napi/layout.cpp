// Binding of the model's tensor layout, so TypeScript reads it instead of restating it:
//   tensorLayout(config) -> [{ name, kind, layer, shape }] (model.h tensor_layout, checkpoint order)
//   paramKinds() -> the parameter kind names, in ParamKind order
//   ropeFrequencies(config, seqLen) -> { invFreq, attentionFactor } (ops.h rope_frequencies), so tests
//   hold the engine's RoPE scaling to transformers' formulas
#include <stdexcept>

#include "../model.h"
#include "args.h"
#include "config_arg.h"
#include "registry.h"

namespace {

Napi::Value TensorLayout(const Napi::CallbackInfo& info) {
  try {
    const engine::ModelConfig config = model_config_from(info[0]);
    config.validate();
    const auto layout = engine::tensor_layout(config);
    Napi::Env env = info.Env();
    auto out = Napi::Array::New(env, layout.size());
    for (size_t i = 0; i < layout.size(); i++) {
      const engine::TensorSpec& t = layout[i];
      auto o = Napi::Object::New(env);
      o.Set("name", t.name);
      o.Set("kind", engine::param_kind_name(t.kind));
      o.Set("layer", t.layer);
      auto shape = Napi::Array::New(env, t.shape.size());
      for (size_t d = 0; d < t.shape.size(); d++) shape.Set((uint32_t)d, (double)t.shape[d]);
      o.Set("shape", shape);
      out.Set((uint32_t)i, o);
    }
    return out;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

Napi::Value ParamKinds(const Napi::CallbackInfo& info) {
  auto out = Napi::Array::New(info.Env(), engine::kParamKinds);
  for (int i = 0; i < engine::kParamKinds; i++) out.Set((uint32_t)i, engine::param_kind_name((engine::ParamKind)i));
  return out;
}

Napi::Value RopeFrequencies(const Napi::CallbackInfo& info) {
  try {
    const engine::ModelConfig config = model_config_from(info[0]);
    config.validate();
    const int seq_len = napi_args::int_arg(info[1], "seqLen", 1);
    const engine::RopeFrequencies f =
        engine::rope_frequencies(config.head_dim, config.rope_theta, config.rope_scaling, seq_len);
    Napi::Env env = info.Env();
    auto inv = Napi::Float64Array::New(env, f.inv_freq.size());
    for (size_t i = 0; i < f.inv_freq.size(); i++) inv[i] = f.inv_freq[i];
    auto o = Napi::Object::New(env);
    o.Set("invFreq", inv);
    o.Set("attentionFactor", f.attention_factor);
    return o;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("tensorLayout", Napi::Function::New(env, TensorLayout));
  exports.Set("paramKinds", Napi::Function::New(env, ParamKinds));
  exports.Set("ropeFrequencies", Napi::Function::New(env, RopeFrequencies));
}

napi_registry::Add registered(Register);

}  // namespace
