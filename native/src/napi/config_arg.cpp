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
  Napi::Value rs = o.Get("rope_scaling");
  if (rs.IsObject()) {
    auto r = rs.As<Napi::Object>();
    Napi::Value kind = r.Get("rope_type");
    if (!kind.IsString() || kind.As<Napi::String>().Utf8Value() != "longrope")
      throw std::invalid_argument("config.rope_scaling.rope_type: only longrope is supported");
    c.rope_scaling.kind = engine::RopeScaling::longrope;
    c.rope_scaling.short_factor = float_list(r.Get("short_factor"), "config.rope_scaling.short_factor");
    c.rope_scaling.long_factor = float_list(r.Get("long_factor"), "config.rope_scaling.long_factor");
    c.rope_scaling.original_max_position_embeddings =
        int_field(r, "original_max_position_embeddings", "config.rope_scaling");
    c.rope_scaling.attention_factor = number_field_or(r, "attention_factor", 0, "config.rope_scaling");
    // MiniCPM's own code builds its cache for max_position_embeddings, so it always uses long factors.
    c.rope_scaling.select_seq = c.max_position_embeddings;
  }
  return c;
}
