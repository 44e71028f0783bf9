// The CUDA module's binding (sparse_cuda.node), loaded separately from the engine addon so a
// machine without the CUDA runtime or a GPU loads the engine unchanged. It reports what this
// build can do; kernels are reached from C++ (tests, bench) — see ops_cuda.h.
#include <napi.h>

#include "ops_cuda.h"

namespace {
Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cuda_backend::DeviceInfo dev = cuda_backend::device_info();
  Napi::Object out = Napi::Object::New(env);
  out.Set("compiled", true);
  out.Set("archs", cuda_backend::compiled_archs());
  out.Set("available", dev.available);
  out.Set("deviceCount", dev.count);
  if (!dev.name.empty()) out.Set("device", dev.name);
  if (!dev.reason.empty()) out.Set("reason", dev.reason);
  out.Set("memoryBytes", (double)dev.memory_bytes);
  out.Set("cublas", dev.available ? cuda_backend::cublas_available() : false);
  // Which GEMM runs the matrix products ("cublas (...)" or the fp32 fallback, with where cuBLAS was sought).
  if (dev.available) out.Set("gemm", cuda_backend::gemm_path());
  out.Set("sharedMemoryPerBlock", (double)dev.smem_optin_bytes);
  if (!dev.attention.empty()) out.Set("attention", dev.attention);
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info));
  return exports;
}
}  // namespace

NODE_API_MODULE(sparse_cuda, Init)
