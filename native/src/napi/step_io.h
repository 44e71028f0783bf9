// Conversions between JS values and the model's step types, shared by the model binding
// (engine.cpp): step options in, step results and per-layer arrays out, token batches copied out
// of JS memory so a worker thread never touches V8 objects.
#pragma once
#include <napi.h>

#include <cstdint>
#include <vector>

#include "../model.h"

namespace napi_io {

engine::StepOptions step_options_from(const Napi::Object& o);

// Tokens copied out of JS memory: the worker must not touch V8 objects.
struct TokenBatch {
  std::vector<int32_t> tokens;
  int B = 0, T = 0;
};
TokenBatch batch_from(const Napi::Value& tokens, const Napi::Value& b, const Napi::Value& t);

// The routing statistics of a MoE model onto a result object (nothing for a dense model).
void set_moe_stats(Napi::Env env, Napi::Object o, const engine::MoeStats& s);
Napi::Object step_result_to_js(Napi::Env env, const engine::StepResult& r);
// Per-layer values; NaN (a dense layer) becomes null.
Napi::Array per_layer(Napi::Env env, const std::vector<double>& v);
Napi::Float32Array copy_to_js(Napi::Env env, const std::vector<float>& v);

}  // namespace napi_io
