// nvmlRead(): { available, reason?, gpus: [{ index, name, utilization, memoryUsedBytes,
// memoryTotalBytes, powerWatts?, temperatureC? }] } — the system monitor's GPU source.
#include "../nvml.h"
#include "registry.h"

namespace {
Napi::Value NvmlRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const engine::NvmlReading r = engine::nvml_read();
  Napi::Object out = Napi::Object::New(env);
  out.Set("available", r.available);
  if (!r.reason.empty()) out.Set("reason", r.reason);
  Napi::Array gpus = Napi::Array::New(env, r.gpus.size());
  for (size_t i = 0; i < r.gpus.size(); i++) {
    const engine::GpuSample& s = r.gpus[i];
    Napi::Object g = Napi::Object::New(env);
    g.Set("index", s.index);
    g.Set("name", s.name);
    g.Set("utilization", s.utilization);
    g.Set("memoryUsedBytes", s.memory_used_bytes);
    g.Set("memoryTotalBytes", s.memory_total_bytes);
    if (s.power_watts >= 0) g.Set("powerWatts", s.power_watts);
    if (s.temperature_c >= 0) g.Set("temperatureC", s.temperature_c);
    gpus.Set((uint32_t)i, g);
  }
  out.Set("gpus", gpus);
  return out;
}

void Register(Napi::Env env, Napi::Object exports) { exports.Set("nvmlRead", Napi::Function::New(env, NvmlRead)); }
napi_registry::Add add(Register);
}  // namespace
