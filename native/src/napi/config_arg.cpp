#include "config_arg.h"

#include <stdexcept>
#include <string>

#include "args.h"

using namespace napi_args;

engine::ModelConfig model_config_from(const Napi::Value& value) {
  const Napi::Object o = object_arg(value, "config");
  engine::ModelConfig c;
  c.model_type = string_field(o, "model_type", "config");
  c.vocab_size = int_field(o, "vocab_size", "config");
  c.hidden_size = int_field(o, "hidden_size", "config");
  c.intermediate_size = int_field(o, "intermediate_size", "config");
  c.num_layers = int_field(o, "num_hidden_layers", "config");
  c.num_heads = int_field(o, "num_attention_heads", "config");
  c.num_kv_heads = int_field(o, "num_key_value_heads", "config");
  c.head_dim = int_field(o, "head_dim", "config");
  c.rms_norm_eps = (float)number_field(o, "rms_norm_eps", "config");
  c.rope_theta = number_field(o, "rope_theta", "config");
  c.max_position_embeddings = int_field(o, "max_position_embeddings", "config");
  c.tie_word_embeddings = bool_field(o, "tie_word_embeddings", "config");
  c.qk_norm = bool_field(o, "qk_norm", "config");
  const std::string mlp = string_field(o, "mlp", "config");
  if (mlp != "swiglu") throw std::invalid_argument("config.mlp: must be swiglu, got '" + mlp + "'");
  c.mlp = engine::MlpKind::swiglu;
  c.embedding_scale = (float)number_field(o, "embedding_scale", "config");
  c.residual_scale = (float)number_field(o, "residual_scale", "config");
  c.logit_divisor = (float)number_field(o, "logit_divisor", "config");
  // Mixture of experts: present when num_experts is (config.ts resolved the family's defaults).
  Napi::Value experts = o.Get("num_experts");
  if (!experts.IsUndefined() && !experts.IsNull()) {
    c.num_experts = int_field(o, "num_experts", "config", 0);
    c.num_experts_per_tok = int_field(o, "num_experts_per_tok", "config", 0);
    c.moe_intermediate_size = int_field(o, "moe_intermediate_size", "config", 1);
    c.norm_topk_prob = bool_field(o, "norm_topk_prob", "config");
    c.decoder_sparse_step = int_field(o, "decoder_sparse_step", "config", 1);
    c.router_aux_loss_coef = (float)number_field(o, "router_aux_loss_coef", "config");
    Napi::Value only = o.Get("mlp_only_layers");
    if (!only.IsArray()) throw std::invalid_argument("config.mlp_only_layers: must be an array of layer indices");
    auto arr = only.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++)
      c.mlp_only_layers.push_back(int_arg(arr.Get(i), "config.mlp_only_layers[" + std::to_string(i) + "]"));
  }
  c.rope_scaling.max_position_embeddings = c.max_position_embeddings;
  Napi::Value rs = o.Get("rope_scaling");
  if (rs.IsObject()) {
    // config.ts validated and resolved the fields (rope_type set, yarn's factor derived); the
    // engine's own checks (rope.cpp) still name the field on a bad value.
    auto r = rs.As<Napi::Object>();
    const std::string where = "config.rope_scaling";
    const std::string kind = string_field(r, "rope_type", where);
    engine::RopeScaling& s = c.rope_scaling;
    auto optional_int = [&](const char* field) {
      Napi::Value v = r.Get(field);
      return v.IsUndefined() || v.IsNull() ? 0 : int_field(r, field, where, 1);
    };
    if (kind == "default") {
      s.kind = engine::RopeScaling::none;
    } else if (kind == "linear" || kind == "dynamic") {
      s.kind = kind == "linear" ? engine::RopeScaling::linear : engine::RopeScaling::dynamic;
      s.factor = number_field(r, "factor", where);
    } else if (kind == "yarn") {
      s.kind = engine::RopeScaling::yarn;
      s.factor = number_field(r, "factor", where);
      s.original_max_position_embeddings = optional_int("original_max_position_embeddings");
      s.attention_factor = number_field_or(r, "attention_factor", 0, where);
      s.beta_fast = number_field_or(r, "beta_fast", 32, where);
      s.beta_slow = number_field_or(r, "beta_slow", 1, where);
      s.mscale = number_field_or(r, "mscale", 0, where);
      s.mscale_all_dim = number_field_or(r, "mscale_all_dim", 0, where);
      Napi::Value t = r.Get("truncate");
      s.truncate = t.IsUndefined() || t.IsNull() ? true : bool_field(r, "truncate", where);
    } else if (kind == "llama3") {
      s.kind = engine::RopeScaling::llama3;
      s.factor = number_field(r, "factor", where);
      s.low_freq_factor = number_field(r, "low_freq_factor", where);
      s.high_freq_factor = number_field(r, "high_freq_factor", where);
      s.original_max_position_embeddings = int_field(r, "original_max_position_embeddings", where, 1);
    } else if (kind == "longrope") {
      s.kind = engine::RopeScaling::longrope;
      s.short_factor = float_list(r.Get("short_factor"), where + ".short_factor");
      s.long_factor = float_list(r.Get("long_factor"), where + ".long_factor");
      s.original_max_position_embeddings = int_field(r, "original_max_position_embeddings", where);
      s.attention_factor = number_field_or(r, "attention_factor", 0, where);
      // MiniCPM's own code builds its cache for max_position_embeddings, so it always uses long factors.
      s.select_seq = c.max_position_embeddings;
    } else {
      throw std::invalid_argument(where + ".rope_type: unsupported '" + kind +
                                  "' (supported: default, linear, dynamic, yarn, llama3, longrope)");
    }
  }
  return c;
}
