#include "mask_spec_arg.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "args.h"

namespace {
int int_field(const Napi::Object& o, const char* key) { return napi_args::int_field(o, key, "mask"); }
}  // namespace

engine::MaskSpec mask_spec_from(const Napi::Value& value) {
  if (!value.IsObject()) throw std::invalid_argument("mask: must be an object");
  Napi::Object o = value.As<Napi::Object>();
  engine::MaskSpec m;
  m.block_size = int_field(o, "block_size");
  m.global_blocks = int_field(o, "global_blocks");
  m.global_rows = int_field(o, "global_rows");
  m.window_blocks = int_field(o, "window_blocks");
  m.random_blocks = int_field(o, "random_blocks");
  Napi::Value seed = o.Get("random_seed");
  const double s = seed.IsNumber() ? seed.As<Napi::Number>().DoubleValue() : -1;
  if (s < 0 || s != std::floor(s)) throw std::invalid_argument("mask.random_seed: must be a non-negative integer");
  m.random_seed = (uint64_t)s;
  m.topk_blocks = int_field(o, "topk_blocks");
  Napi::Value sel = o.Get("selector");
  const std::string name = sel.IsString() ? sel.As<Napi::String>().Utf8Value() : "";
  if (name == "none") m.selector = engine::MaskSpec::None;
  else if (name == "pooled") m.selector = engine::MaskSpec::Pooled;
  else if (name == "indexer") m.selector = engine::MaskSpec::Indexer;
  else if (name == "infllm_v2") m.selector = engine::MaskSpec::InfLLMv2;
  else throw std::invalid_argument("mask.selector: must be none, pooled, indexer or infllm_v2");
  m.dense_below = int_field(o, "dense_below");
  Napi::Value share = o.Get("share_gqa_group");
  if (!share.IsBoolean()) throw std::invalid_argument("mask.share_gqa_group: must be a boolean");
  m.share_gqa_group = share.As<Napi::Boolean>().Value();
  // Optional: absent or null keeps the indexer on its warm-up KL.
  Napi::Value warmup = o.Get("indexer_warmup_steps");
  if (!warmup.IsUndefined() && !warmup.IsNull()) m.indexer_warmup_steps = napi_args::int_field(o, "indexer_warmup_steps", "mask", 0);
  // Optional, host-computed: { blocks, pairs: Uint8Array (mask heads x blocks x blocks) }.
  Napi::Value seeded = o.Get("seeded");
  if (!seeded.IsUndefined() && !seeded.IsNull()) {
    if (!seeded.IsObject()) throw std::invalid_argument("mask.seeded: must be an object { blocks, pairs }");
    Napi::Object so = seeded.As<Napi::Object>();
    m.seeded_blocks = napi_args::int_field(so, "blocks", "mask.seeded", 1);
    Napi::Value pairs = so.Get("pairs");
    if (!pairs.IsTypedArray() || pairs.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw std::invalid_argument("mask.seeded.pairs: must be a Uint8Array");
    auto a = pairs.As<Napi::Uint8Array>();
    m.seeded.assign(a.Data(), a.Data() + a.ElementLength());
  }
  const std::string err = engine::validate_mask_spec(m);
  if (!err.empty()) throw std::invalid_argument(err);
  return m;
}
