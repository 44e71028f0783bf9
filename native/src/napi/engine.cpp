// N-API binding of the model (sharp-style): native/index.ts validates arguments; this file copies
// them into plain structs, runs long calls (trainStep, evaluate, loss, gradients, benches) in
// Napi::AsyncWorker off the JS thread, and turns every C++ exception into a JS Error. Results are
// copied into V8-owned typed arrays (Electron forbids external buffers). Nothing here aborts.
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "../bench.h"
#include "../model.h"
#include "../optimizer.h"
#include "../ops.h"
#include "../parallel.h"
#include "../reference_blas.h"
#include "args.h"
#include "config_arg.h"
#include "mask_spec_arg.h"
#include "registry.h"
#include "step_io.h"

namespace {

using engine::Model;
using namespace napi_args;
using namespace napi_io;


// The model plus what keeps concurrent calls safe: workers serialise on `mutex`; synchronous
// mutators refuse while any worker is queued or running.
struct ModelBox {
  std::mutex mutex;
  std::unique_ptr<Model> model;
  std::atomic<int> pending{0};
};

// ---------------------------------------------------------------------------- async workers

// Runs `work` on a libuv worker thread with the model locked; `finish` builds the JS result.
class ModelWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void(Model&)>;
  using Finish = std::function<Napi::Value(Napi::Env)>;
  ModelWorker(Napi::Env env, std::shared_ptr<ModelBox> box, Work work, Finish finish)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), box_(std::move(box)),
        work_(std::move(work)), finish_(std::move(finish)) {
    box_->pending++;
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      std::lock_guard<std::mutex> lock(box_->mutex);
      if (!box_->model) throw std::runtime_error("model was disposed");
      work_(*box_->model);
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown engine error");
    }
  }
  void OnOK() override {
    box_->pending--;
    try {
      deferred_.Resolve(finish_(Env()));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    box_->pending--;
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<ModelBox> box_;
  Work work_;
  Finish finish_;
};

// Runs a model-free job (benchmarks) on a worker thread.
class JobWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Finish = std::function<Napi::Value(Napi::Env)>;
  JobWorker(Napi::Env env, Work work, Finish finish)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)),
        finish_(std::move(finish)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      work_();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(finish_(Env())); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Finish finish_;
};

// Queues a worker (libuv owns and deletes it when done) and returns its promise.
template <typename Worker>
Napi::Promise queue(Worker* w) {
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// ---------------------------------------------------------------------------- NativeModel

class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {InstanceMethod("numParams", &NativeModel::NumParams),
                        InstanceMethod("tensors", &NativeModel::Tensors),
                        InstanceMethod("initRandom", &NativeModel::InitRandom),
                        InstanceMethod("setTensor", &NativeModel::SetTensor),
                        InstanceMethod("getTensor", &NativeModel::GetTensor),
                        InstanceMethod("getTeacherTensor", &NativeModel::GetTeacherTensor),
                        InstanceMethod("setTrainable", &NativeModel::SetTrainable),
                        InstanceMethod("setAttention", &NativeModel::SetAttention),
                        InstanceMethod("trainStep", &NativeModel::TrainStep),
                        InstanceMethod("computeGradients", &NativeModel::ComputeGradients),
                        InstanceMethod("evaluate", &NativeModel::Evaluate),
                        InstanceMethod("loss", &NativeModel::Loss),
                        InstanceMethod("timePrefill", &NativeModel::TimePrefill),
                        InstanceMethod("attentionProfile", &NativeModel::AttentionProfile),
                        InstanceMethod("getOptimizerState", &NativeModel::GetOptimizerState),
                        InstanceMethod("setOptimizerState", &NativeModel::SetOptimizerState),
                        InstanceMethod("backend", &NativeModel::BackendInfo),
                        InstanceMethod("setPrecision", &NativeModel::SetPrecision),
                        InstanceMethod("dispose", &NativeModel::Dispose)});
  }

  NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info), box_(std::make_shared<ModelBox>()) {
    guard(info, [&] {
      const engine::ModelConfig config = model_config_from(info[0]);
      box_->model = std::make_unique<Model>(config, backend_from(info[1]));
      return info.Env().Undefined();
    });
  }

 private:
  // Converts C++ exceptions of synchronous calls into JS Errors.
  template <typename Fn>
  Napi::Value guard(const Napi::CallbackInfo& info, Fn fn) {
    try {
      return fn();
    } catch (const Napi::Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
  }

  Model& model() {
    if (!box_->model) throw std::runtime_error("model was disposed");
    return *box_->model;
  }
  Model& idle_model() {
    Model& m = model();
    if (box_->pending > 0) throw std::runtime_error("model is busy: wait for the running trainStep/evaluate to finish");
    return m;
  }

  // options (optional): { backend: 'cpu' | 'cuda', precision: 'fp32' | 'bf16' | 'fp16', cudaModule: path }
  static std::shared_ptr<engine::Backend> backend_from(const Napi::Value& v) {
    if (v.IsUndefined() || v.IsNull()) return engine::cpu_backend();
    if (!v.IsObject()) throw std::invalid_argument("options: must be an object");
    const Napi::Object o = v.As<Napi::Object>();
    auto text = [&](const char* key, const char* fallback) -> std::string {
      const Napi::Value x = o.Get(key);
      if (x.IsUndefined()) return fallback;
      if (!x.IsString()) throw std::invalid_argument(std::string("options.") + key + ": must be a string");
      return x.As<Napi::String>().Utf8Value();
    };
    const std::string name = text("backend", "cpu");
    const engine::Precision precision = engine::precision_from_name(text("precision", "fp32"));
    if (name == "cpu") return engine::cpu_backend();
    if (name != "cuda") throw std::invalid_argument("options.backend: must be cpu or cuda, got '" + name + "'");
    const std::string module = text("cudaModule", "");
    if (module.empty()) throw std::invalid_argument("options.cudaModule: the CUDA module's path is required for backend cuda");
    return engine::load_cuda_backend(module, precision);
  }

  // backend() -> { name, device, precision, lossScale }
  Napi::Value BackendInfo(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      Model& m = model();
      auto o = Napi::Object::New(info.Env());
      o.Set("name", m.backend().name());
      o.Set("device", m.backend().device());
      o.Set("precision", engine::precision_name(m.backend().precision()));
      o.Set("lossScale", m.loss_scale());
      return o;
    });
  }

  // setPrecision(name): the compute precision from the next call on (Model::set_precision).
  Napi::Value SetPrecision(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      if (!info[0].IsString()) throw std::invalid_argument("precision: must be a string");
      idle_model().set_precision(engine::precision_from_name(info[0].As<Napi::String>().Utf8Value()));
      return info.Env().Undefined();
    });
  }

  Napi::Value NumParams(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), (double)model().num_params()); });
  }

  Napi::Value Tensors(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      const auto& ps = model().params();
      auto out = Napi::Array::New(env, ps.size());
      for (size_t i = 0; i < ps.size(); i++) {
        auto o = Napi::Object::New(env);
        o.Set("name", ps[i].name);
        o.Set("kind", engine::param_kind_name(ps[i].kind));
        o.Set("layer", ps[i].layer);
        auto shape = Napi::Array::New(env, ps[i].shape.size());
        for (size_t d = 0; d < ps[i].shape.size(); d++) shape.Set((uint32_t)d, (double)ps[i].shape[d]);
        o.Set("shape", shape);
        o.Set("trainable", ps[i].trainable);
        out.Set((uint32_t)i, o);
      }
      return out;
    });
  }

  Napi::Value InitRandom(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      double seed = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
      if (seed < 0 || seed != std::floor(seed)) throw std::invalid_argument("seed: must be a non-negative integer");
      idle_model().init_random((uint64_t)seed);
      return info.Env().Undefined();
    });
  }

  Napi::Value SetTensor(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      if (!info[0].IsString()) throw std::invalid_argument("name: must be a string");
      if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        throw std::invalid_argument("tensor " + info[0].As<Napi::String>().Utf8Value() + ": must be a Float32Array");
      auto a = info[1].As<Napi::Float32Array>();
      const std::string name = info[0].As<Napi::String>().Utf8Value();
      // setTensor(name, data, studentOnly): studentOnly keeps the teacher's weights (checkpoint restore)
      if (info.Length() > 2 && info[2].ToBoolean().Value()) idle_model().set_student_tensor(name, a.Data(), (int64_t)a.ElementLength());
      else idle_model().set_tensor(name, a.Data(), (int64_t)a.ElementLength());
      return info.Env().Undefined();
    });
  }

  Napi::Value GetTensor(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      if (!info[0].IsString()) throw std::invalid_argument("name: must be a string");
      return copy_to_js(info.Env(), idle_model().param(info[0].As<Napi::String>().Utf8Value()).data);
    });
  }

  Napi::Value GetTeacherTensor(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      if (!info[0].IsString()) throw std::invalid_argument("name: must be a string");
      const engine::Param& p = idle_model().param(info[0].As<Napi::String>().Utf8Value());
      return copy_to_js(info.Env(), p.teacher.empty() ? p.data : p.teacher);
    });
  }

  // setTrainable(layers: number[] (empty = all), kinds: string[], trainable: boolean)
  Napi::Value SetTrainable(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      if (!info[0].IsArray() || !info[1].IsArray() || !info[2].IsBoolean())
        throw std::invalid_argument("setTrainable(layers: number[], kinds: string[], trainable: boolean)");
      std::vector<int> layers;
      auto la = info[0].As<Napi::Array>();
      for (uint32_t i = 0; i < la.Length(); i++) layers.push_back(int_arg(la.Get(i), "selection.layers[]"));
      std::vector<engine::ParamKind> kinds;
      auto ka = info[1].As<Napi::Array>();
      for (uint32_t i = 0; i < ka.Length(); i++) {
        Napi::Value k = ka.Get(i);
        if (!k.IsString()) throw std::invalid_argument("selection.kinds[]: must be strings");
        kinds.push_back(engine::param_kind_from_name(k.As<Napi::String>().Utf8Value()));
      }
      idle_model().set_trainable(layers, kinds, info[2].As<Napi::Boolean>().Value());
      return info.Env().Undefined();
    });
  }

  Napi::Value SetAttention(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      int layer = int_arg(info[0], "layer");
      if (info[1].IsNull() || info[1].IsUndefined()) {
        idle_model().set_attention(layer, nullptr);
      } else {
        engine::MaskSpec spec = mask_spec_from(info[1]);
        idle_model().set_attention(layer, &spec);
      }
      return info.Env().Undefined();
    });
  }

  Napi::Value TrainStep(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      model();
      auto batch = std::make_shared<TokenBatch>(batch_from(info[0], info[1], info[2]));
      auto options = step_options_from(object_arg(info[3], "options"));
      auto result = std::make_shared<engine::StepResult>();
      auto* w = new ModelWorker(
          info.Env(), box_, [=](Model& m) { *result = m.train_step(batch->tokens.data(), batch->B, batch->T, options); },
          [=](Napi::Env env) -> Napi::Value { return step_result_to_js(env, *result); });
      return queue(w);
    });
  }

  // computeGradients(tokens, B, T, options) -> { result, grads: { name: Float32Array } } (trainable only)
  Napi::Value ComputeGradients(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      model();
      auto batch = std::make_shared<TokenBatch>(batch_from(info[0], info[1], info[2]));
      auto options = step_options_from(object_arg(info[3], "options"));
      auto result = std::make_shared<engine::StepResult>();
      auto grads = std::make_shared<std::vector<std::pair<std::string, std::vector<float>>>>();
      auto* w = new ModelWorker(
          info.Env(), box_,
          [=](Model& m) {
            *result = m.compute_gradients(batch->tokens.data(), batch->B, batch->T, options);
            for (auto& p : m.params())
              if (p.trainable) grads->emplace_back(p.name, p.grad);
          },
          [=](Napi::Env env) -> Napi::Value {
            auto o = Napi::Object::New(env);
            o.Set("result", step_result_to_js(env, *result));
            auto g = Napi::Object::New(env);
            for (auto& [name, values] : *grads) g.Set(name, copy_to_js(env, values));
            o.Set("grads", g);
            return o;
          });
      return queue(w);
    });
  }

  Napi::Value Evaluate(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      model();
      auto batch = std::make_shared<TokenBatch>(batch_from(info[0], info[1], info[2]));
      auto result = std::make_shared<engine::EvalResult>();
      auto* w = new ModelWorker(
          info.Env(), box_, [=](Model& m) { *result = m.evaluate(batch->tokens.data(), batch->B, batch->T); },
          [=](Napi::Env env) -> Napi::Value {
            auto o = Napi::Object::New(env);
            o.Set("loss", result->loss);
            o.Set("loss_teacher", result->loss_teacher);
            o.Set("attn_kl", per_layer(env, result->attn_kl));
            o.Set("attn_recall", per_layer(env, result->attn_recall));
            o.Set("density", per_layer(env, result->density));
            o.Set("flops_saved", per_layer(env, result->flops_saved));
            o.Set("logit_kl", result->logit_kl);
            o.Set("out_cos", result->out_cos);
            o.Set("hidden_mse", result->hidden_mse);
            set_moe_stats(env, o, result->moe);
            return o;
          });
      return queue(w);
    });
  }

  // attentionProfile(tokens, sequences, seq, { batch, block, shareGqa, densities }) ->
  // { block, n_blocks, mask_heads, layers: [{ mass: Float64Array (H*nb*nb), density, floor, recall }] }
  Napi::Value AttentionProfile(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      model();
      auto batch = std::make_shared<TokenBatch>(batch_from(info[0], info[1], info[2]));
      const Napi::Object o = object_arg(info[3], "options");
      const int chunk = int_field(o, "batch", "options", 1);
      const int block = int_field(o, "block", "options", 1);
      const bool share = bool_field(o, "shareGqa", "options");
      const std::vector<float> d = float_list(o.Get("densities"), "options.densities");
      const std::vector<double> densities(d.begin(), d.end());
      auto result = std::make_shared<engine::AttentionProfile>();
      auto* w = new ModelWorker(
          info.Env(), box_,
          [=](Model& m) {
            *result = m.attention_profile(batch->tokens.data(), batch->B, batch->T, chunk, block, share, densities);
          },
          [=](Napi::Env env) -> Napi::Value {
            auto list = [&](const std::vector<double>& v) {
              auto a = Napi::Array::New(env, v.size());
              for (size_t i = 0; i < v.size(); i++) a.Set((uint32_t)i, v[i]);
              return a;
            };
            auto out = Napi::Object::New(env);
            out.Set("block", result->block);
            out.Set("n_blocks", result->n_blocks);
            out.Set("mask_heads", result->mask_heads);
            auto layers = Napi::Array::New(env, result->layers.size());
            for (size_t l = 0; l < result->layers.size(); l++) {
              const auto& layer = result->layers[l];
              auto lo = Napi::Object::New(env);
              auto mass = Napi::Float64Array::New(env, layer.mass.size());
              std::copy(layer.mass.begin(), layer.mass.end(), mass.Data());
              lo.Set("mass", mass);
              lo.Set("density", list(layer.density));
              lo.Set("floor", list(layer.floor));
              lo.Set("recall", list(layer.recall));
              layers.Set((uint32_t)l, lo);
            }
            out.Set("layers", layers);
            return out;
          });
      return queue(w);
    });
  }

  Napi::Value Loss(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      model();
      auto batch = std::make_shared<TokenBatch>(batch_from(info[0], info[1], info[2]));
      auto result = std::make_shared<double>(0);
      auto* w = new ModelWorker(
          info.Env(), box_, [=](Model& m) { *result = m.loss(batch->tokens.data(), batch->B, batch->T); },
          [=](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *result); });
      return queue(w);
    });
  }

  // timePrefill(tokens, B, T, reps) -> Promise<{ dense_s, sparse_s }>
  Napi::Value TimePrefill(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      model();
      auto batch = std::make_shared<TokenBatch>(batch_from(info[0], info[1], info[2]));
      const int reps = int_arg(info[3], "reps");
      auto t = std::make_shared<Model::PrefillTimes>();
      auto* w = new ModelWorker(
          info.Env(), box_, [=](Model& m) { *t = m.time_prefill(batch->tokens.data(), batch->B, batch->T, reps); },
          [=](Napi::Env env) -> Napi::Value {
            auto o = Napi::Object::New(env);
            o.Set("dense_s", t->dense_s);
            o.Set("sparse_s", t->sparse_s);
            return o;
          });
      return queue(w);
    });
  }

  // { name: { step, m: Float32Array, v: Float32Array } } for trainable tensors.
  Napi::Value GetOptimizerState(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      auto out = Napi::Object::New(env);
      for (auto& p : idle_model().params()) {
        if (!p.trainable || p.m.empty()) continue;  // frozen, or not stepped yet
        auto o = Napi::Object::New(env);
        o.Set("step", (double)p.adam_step);
        o.Set("m", copy_to_js(env, p.m));
        o.Set("v", copy_to_js(env, p.v));
        out.Set(p.name, o);
      }
      return out;
    });
  }

  // setOptimizerState(name, step, m, v): the tensor must be trainable.
  Napi::Value SetOptimizerState(const Napi::CallbackInfo& info) {
    return guard(info, [&]() -> Napi::Value {
      if (!info[0].IsString()) throw std::invalid_argument("name: must be a string");
      const std::string name = info[0].As<Napi::String>().Utf8Value();
      engine::Param& p = idle_model().param(name);
      if (!p.trainable) throw std::invalid_argument("optimizer state for " + name + ": tensor is frozen");
      int step = int_arg(info[1], "step");
      engine::optimizer::ensure_buffers(p);
      for (int i = 2; i <= 3; i++) {
        if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
            info[i].As<Napi::Float32Array>().ElementLength() != p.data.size())
          throw std::invalid_argument("optimizer state for " + name + ": moments must be Float32Arrays of " +
                                      std::to_string(p.data.size()) + " values");
      }
      auto m = info[2].As<Napi::Float32Array>(), v = info[3].As<Napi::Float32Array>();
      p.adam_step = step;
      std::copy(m.Data(), m.Data() + p.data.size(), p.m.begin());
      std::copy(v.Data(), v.Data() + p.data.size(), p.v.begin());
      return info.Env().Undefined();
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    // A queued worker holds box_ (shared_ptr) and finds the model gone; a running one finishes first.
    std::lock_guard<std::mutex> lock(box_->mutex);
    box_->model.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<ModelBox> box_;
};

// ---------------------------------------------------------------------------- module functions

Napi::Value Info(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("threads", engine::ThreadPool::get().threads());
  o.Set("simd", engine::simd_level());
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  try {
    int n = int_arg(info[0], "threads", 1, 1024);
    engine::ThreadPool::get().set_threads(n);
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return info.Env().Undefined();
}

// benchGemm(m, n, k, reps) -> Promise<gflops>
Napi::Value BenchGemm(const Napi::CallbackInfo& info) {
  try {
    int m = int_arg(info[0], "m"), n = int_arg(info[1], "n"), k = int_arg(info[2], "k"), reps = int_arg(info[3], "reps");
    if (m < 1 || n < 1 || k < 1 || reps < 1) throw std::invalid_argument("bench gemm: m, n, k and reps must be >= 1");
    auto result = std::make_shared<double>(0);
    auto* w = new JobWorker(info.Env(), [=] { *result = engine::bench_gemm_gflops(m, n, k, reps); },
                            [=](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *result); });
    return queue(w);
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

// benchGemmCompare(m, n, k, transA, transB, reps) -> Promise<{ gflops, referenceGflops, reference,
// referenceCore, referenceMissing, reps }>: engine vs OpenBLAS in the same run (bench.h); without
// OpenBLAS, referenceGflops and reference are null and referenceMissing says why.
Napi::Value BenchGemmCompare(const Napi::CallbackInfo& info) {
  try {
    int m = int_arg(info[0], "m"), n = int_arg(info[1], "n"), k = int_arg(info[2], "k"), reps = int_arg(info[5], "reps");
    if (m < 1 || n < 1 || k < 1 || reps < 1) throw std::invalid_argument("bench gemm: m, n, k and reps must be >= 1");
    if (!info[3].IsBoolean() || !info[4].IsBoolean()) throw std::invalid_argument("bench gemm: transA and transB must be booleans");
    const bool ta = info[3].As<Napi::Boolean>(), tb = info[4].As<Napi::Boolean>();
    auto result = std::make_shared<engine::GemmCompare>();
    auto* w = new JobWorker(
        info.Env(), [=] { *result = engine::bench_gemm_compare(m, n, k, ta, tb, reps); },
        [=](Napi::Env env) -> Napi::Value {
          const auto& blas = engine::ReferenceBlas::get();
          auto o = Napi::Object::New(env);
          o.Set("gflops", result->gflops);
          o.Set("reps", result->reps);
          if (blas.available()) {
            o.Set("referenceGflops", result->reference_gflops);
            o.Set("reference", "openblas");
            o.Set("referenceCore", blas.core());
            o.Set("referenceMissing", env.Null());
          } else {
            o.Set("referenceGflops", env.Null());
            o.Set("reference", env.Null());
            o.Set("referenceCore", env.Null());
            o.Set("referenceMissing", blas.missing_reason());
          }
          return o;
        });
    return queue(w);
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeModel", NativeModel::Define(env));
  exports.Set("engineInfo", Napi::Function::New(env, Info));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("benchGemm", Napi::Function::New(env, BenchGemm));
  exports.Set("benchGemmCompare", Napi::Function::New(env, BenchGemmCompare));
}

napi_registry::Add registered(Register);

}  // namespace
