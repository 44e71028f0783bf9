// Binding of the block-sparse attention family (thin: arguments in, plain structs, results out).
//   maskBuild(spec, seq, heads, kvHeads, layer, scores?: Float32Array, heads for flex?: number)
//     -> { seq, blockSize, nBlocks, nMaskHeads, words, dense, density, flopsSaved, bits: BigUint64Array,
//          kvPtr, kvIdx, qPtr, qIdx: Int32Array, source: Uint8Array,
//          flex: { heads, kvNumBlocks, kvIndices, qNumBlocks, qIndices: Int32Array } }
//   maskFromBits(bits: BigUint64Array, seq, blockSize, nMaskHeads) -> same shape (round trips, imports)
//   pooledBlockScores(q, k, heads, kvHeads, seq, dim, blockSize, shared) -> Float32Array
//   infllmv2Select(q, k, heads, kvHeads, seq, dim, spec) -> { kMax, dense, density, blocks: Int32Array
//     (kvHeads, seq, kMax) ascending, -1 padded, count: Int32Array (kvHeads, seq) }
//   selectorAttention(spec, layer, q, k, v, heads, kvHeads, seq, dim, indexer?: { x, wq, wk, wh, channels })
//     -> { out: Float32Array (heads, seq, dim), lse (heads, seq), density (the layer's eval density), bits?: BigUint64Array (mask heads, blocks,
//          words), blocks?/count?/kMax? (infllm_v2 per-token selection) }: one sequence through a layer's
//     selection and sparse attention as the model's forward does (model_pass.cpp build_masks), for
//     checking exported selectors against the engine.
//   benchAttention({ spec | null, seq, heads, kvHeads, dim, batch, reps }) -> Promise<{ msFwd, msBwd, density }>
//     spec null times the dense kernel (ops.h attention_forward/backward); reps >= 1, best of reps.
// Every C++ exception becomes a JS Error carrying its one-line message.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "../block_mask.h"
#include "../block_selector.h"
#include "../blocksparse_attention.h"
#include "../ops.h"
#include "../token_sparse_attention.h"
#include "args.h"
#include "mask_spec_arg.h"
#include "registry.h"

namespace {

// Sizes and indices are never negative.
int size_arg(const Napi::Value& v, const char* name) { return napi_args::int_arg(v, name, 0); }

using napi_args::int_field;

Napi::Int32Array int32s(Napi::Env env, const std::vector<int32_t>& v) {
  Napi::Int32Array a = Napi::Int32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(int32_t));
  return a;
}

Napi::Object mask_to_js(Napi::Env env, const engine::BlockMask& m, int flex_heads) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("seq", m.T);
  o.Set("blockSize", m.block_size);
  o.Set("nBlocks", m.n_blocks);
  o.Set("nMaskHeads", m.n_mask_heads);
  o.Set("words", m.words);
  o.Set("dense", m.dense);
  o.Set("density", m.density());
  o.Set("flopsSaved", m.flops_saved());
  Napi::BigUint64Array bits = Napi::BigUint64Array::New(env, m.bits.size());
  if (!m.bits.empty()) std::memcpy(bits.Data(), m.bits.data(), m.bits.size() * sizeof(uint64_t));
  o.Set("bits", bits);
  o.Set("kvPtr", int32s(env, m.kv_ptr));
  o.Set("kvIdx", int32s(env, m.kv_idx));
  o.Set("qPtr", int32s(env, m.q_ptr));
  o.Set("qIdx", int32s(env, m.q_idx));
  Napi::Uint8Array source = Napi::Uint8Array::New(env, m.source.size());
  if (!m.source.empty()) std::memcpy(source.Data(), m.source.data(), m.source.size());
  o.Set("source", source);
  if (flex_heads > 0) {
    engine::FlexBlockMask f = engine::to_flex_block_mask(m, flex_heads);
    Napi::Object fo = Napi::Object::New(env);
    fo.Set("heads", f.H);
    fo.Set("kvNumBlocks", int32s(env, f.kv_num_blocks));
    fo.Set("kvIndices", int32s(env, f.kv_indices));
    fo.Set("qNumBlocks", int32s(env, f.q_num_blocks));
    fo.Set("qIndices", int32s(env, f.q_indices));
    o.Set("flex", fo);
  }
  return o;
}

template <typename Fn>
Napi::Value guarded(const Napi::CallbackInfo& info, Fn&& fn) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

Napi::Value MaskBuild(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    engine::MaskSpec spec = mask_spec_from(info[0]);
    const int T = size_arg(info[1], "seq"), H = size_arg(info[2], "heads"), Hkv = size_arg(info[3], "kvHeads");
    const int layer = size_arg(info[4], "layer");
    const float* scores = nullptr;
    if (info.Length() > 5 && !info[5].IsUndefined() && !info[5].IsNull()) {
      if (!info[5].IsTypedArray() || info[5].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        throw std::invalid_argument("scores: must be a Float32Array");
      Napi::Float32Array a = info[5].As<Napi::Float32Array>();
      const size_t nb = (size_t)(T + spec.block_size - 1) / spec.block_size;
      const size_t want = (size_t)(spec.share_gqa_group ? Hkv : H) * nb * nb;
      if (a.ElementLength() != want)
        throw std::invalid_argument("scores: expected " + std::to_string(want) + " floats (mask heads x blocks x blocks), got " +
                                    std::to_string(a.ElementLength()));
      scores = a.Data();
    }
    engine::BlockMask m = engine::build_block_mask(spec, T, H, Hkv, layer, scores);
    return mask_to_js(info.Env(), m, H);
  });
}

Napi::Value MaskFromBits(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array)
      throw std::invalid_argument("bits: must be a BigUint64Array");
    Napi::BigUint64Array a = info[0].As<Napi::BigUint64Array>();
    std::vector<uint64_t> bits(a.Data(), a.Data() + a.ElementLength());
    const int T = size_arg(info[1], "seq"), bs = size_arg(info[2], "blockSize"), heads = size_arg(info[3], "nMaskHeads");
    engine::BlockMask m = engine::block_mask_from_bits(bits, T, bs, heads);
    return mask_to_js(info.Env(), m, heads);
  });
}

const float* floats_arg(const Napi::Value& v, size_t want, const char* name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw std::invalid_argument(std::string(name) + ": must be a Float32Array");
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  if (a.ElementLength() != want)
    throw std::invalid_argument(std::string(name) + ": expected " + std::to_string(want) + " floats, got " +
                                std::to_string(a.ElementLength()));
  return a.Data();
}

Napi::Value PooledBlockScores(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const int H = size_arg(info[2], "heads"), Hkv = size_arg(info[3], "kvHeads"), T = size_arg(info[4], "seq");
    const int D = size_arg(info[5], "dim"), bs = size_arg(info[6], "blockSize");
    if (!info[7].IsBoolean()) throw std::invalid_argument("shared: must be a boolean");
    const bool shared = info[7].As<Napi::Boolean>().Value();
    if (H < 1 || Hkv < 1 || T < 1 || D < 1 || bs < 1 || H % Hkv != 0)
      throw std::invalid_argument("pooledBlockScores: heads, kvHeads, seq, dim, blockSize must be >= 1, heads a multiple of kvHeads");
    const float* q = floats_arg(info[0], (size_t)H * T * D, "q");
    const float* k = floats_arg(info[1], (size_t)Hkv * T * D, "k");
    const size_t nb = (size_t)(T + bs - 1) / bs;
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), (size_t)(shared ? Hkv : H) * nb * nb);
    engine::pooled_block_scores(out.Data(), q, k, H, Hkv, T, D, bs, shared);
    return out;
  });
}

Napi::Value Infllmv2Select(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const int H = size_arg(info[2], "heads"), Hkv = size_arg(info[3], "kvHeads"), T = size_arg(info[4], "seq");
    const int D = size_arg(info[5], "dim");
    if (H < 1 || Hkv < 1 || T < 1 || D < 1 || H % Hkv != 0)
      throw std::invalid_argument("infllmv2Select: heads, kvHeads, seq, dim must be >= 1, heads a multiple of kvHeads");
    const float* q = floats_arg(info[0], (size_t)H * T * D, "q");
    const float* k = floats_arg(info[1], (size_t)Hkv * T * D, "k");
    const engine::MaskSpec spec = mask_spec_from(info[6]);
    const engine::TokenBlockSelection sel = engine::infllmv2_select(q, k, H, Hkv, T, D, spec);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("kMax", sel.k_max);
    o.Set("dense", sel.dense);
    o.Set("density", sel.density());
    o.Set("blocks", int32s(info.Env(), sel.blocks));
    o.Set("count", int32s(info.Env(), sel.count));
    return o;
  });
}

Napi::Value SelectorAttention(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const engine::MaskSpec spec = mask_spec_from(info[0]);
    const int layer = size_arg(info[1], "layer");
    const int H = size_arg(info[5], "heads"), Hkv = size_arg(info[6], "kvHeads"), T = size_arg(info[7], "seq");
    const int D = size_arg(info[8], "dim");
    if (H < 1 || Hkv < 1 || T < 1 || D < 1 || H % Hkv != 0)
      throw std::invalid_argument("selectorAttention: heads, kvHeads, seq, dim must be >= 1, heads a multiple of kvHeads");
    const float* q = floats_arg(info[2], (size_t)H * T * D, "q");
    const float* k = floats_arg(info[3], (size_t)Hkv * T * D, "k");
    const float* v = floats_arg(info[4], (size_t)Hkv * T * D, "v");
    Napi::Env env = info.Env();
    Napi::Float32Array out = Napi::Float32Array::New(env, (size_t)H * T * D);
    Napi::Float32Array lse = Napi::Float32Array::New(env, (size_t)H * T);
    Napi::Object o = Napi::Object::New(env);
    o.Set("out", out);
    o.Set("lse", lse);
    if (spec.selector == engine::MaskSpec::InfLLMv2 && T >= spec.dense_below) {
      const engine::TokenBlockSelection sel = engine::infllmv2_select(q, k, H, Hkv, T, D, spec);
      engine::token_sparse_attention_forward(out.Data(), lse.Data(), q, k, v, 1, H, Hkv, T, D, &sel);
      o.Set("kMax", sel.k_max);
      o.Set("density", sel.density());
      o.Set("blocks", int32s(env, sel.blocks));
      o.Set("count", int32s(env, sel.count));
      return o;
    }
    const bool dynamic = spec.topk_blocks > 0 && spec.selector != engine::MaskSpec::None && T >= spec.dense_below;
    const int nb = (T + spec.block_size - 1) / spec.block_size, heads = spec.share_gqa_group ? Hkv : H;
    std::vector<float> scores;
    if (dynamic) {
      scores.resize((size_t)heads * nb * nb);
      if (spec.selector == engine::MaskSpec::Pooled) {
        engine::pooled_block_scores(scores.data(), q, k, H, Hkv, T, D, spec.block_size, spec.share_gqa_group);
      } else if (spec.selector == engine::MaskSpec::Indexer) {
        if (info.Length() < 10 || !info[9].IsObject()) throw std::invalid_argument("indexer: { x, wq, wk, wh, channels } is required for the indexer selector");
        Napi::Object ix = info[9].As<Napi::Object>();
        engine::IndexerShape s;
        s.C = int_field(ix, "channels", "indexer");
        Napi::Value wk = ix.Get("wk"), wh = ix.Get("wh");
        if (s.C < 1 || !wk.IsTypedArray() || !wh.IsTypedArray()) throw std::invalid_argument("indexer: channels >= 1, wk and wh Float32Arrays");
        s.Hi = (int)wh.As<Napi::TypedArray>().ElementLength();
        s.Di = (int)(wk.As<Napi::TypedArray>().ElementLength() / s.C);
        const float* x = floats_arg(ix.Get("x"), (size_t)T * s.C, "indexer.x");
        const float* w_q = floats_arg(ix.Get("wq"), (size_t)s.Hi * s.Di * s.C, "indexer.wq");
        const float* w_k = floats_arg(wk, (size_t)s.Di * s.C, "indexer.wk");
        const float* w_h = floats_arg(wh, (size_t)s.Hi, "indexer.wh");
        engine::indexer_block_scores(scores.data(), x, w_q, w_k, w_h, s, T, spec.block_size, heads);
      } else {
        throw std::invalid_argument("mask.selector: selectorAttention handles none, pooled, indexer and infllm_v2");
      }
    }
    const engine::BlockMask m = engine::build_block_mask(spec, T, H, Hkv, layer, dynamic ? scores.data() : nullptr);
    engine::blocksparse_attention_forward(out.Data(), lse.Data(), q, k, v, 1, H, Hkv, T, D, m);
    Napi::BigUint64Array bits = Napi::BigUint64Array::New(env, m.bits.size());
    if (!m.bits.empty()) std::memcpy(bits.Data(), m.bits.data(), m.bits.size() * sizeof(uint64_t));
    o.Set("bits", bits);
    o.Set("words", m.words);
    o.Set("density", m.density());
    return o;
  });
}

// ---------------------------------------------------------------------------- bench
struct BenchJob {
  bool dense = true;
  engine::MaskSpec spec;
  int seq = 0, heads = 0, kv_heads = 0, dim = 0, batch = 1, reps = 1;
  double ms_fwd = 0, ms_bwd = 0, density = 1;
};

std::vector<float> filled(size_t n, uint64_t seed) {
  std::vector<float> x(n);
  for (float& v : x) v = (float)((engine::splitmix64(seed) >> 40) * (1.0 / 16777216.0)) - 0.5f;
  return x;
}

// Best of reps; no separate warm-up (at bench sizes one call takes 100s of ms, and the caller
// repeats the dense reference at the start and the end of a sweep).
template <typename Fn>
double best_ms(int reps, Fn&& fn) {
  double best = 1e300;
  for (int r = 0; r < reps; r++) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

void run_bench(BenchJob& j) {
  const int B = j.batch, H = j.heads, Hkv = j.kv_heads, T = j.seq, D = j.dim;
  const size_t nq = (size_t)B * H * T * D, nkv = (size_t)B * Hkv * T * D;
  auto q = filled(nq, 1), k = filled(nkv, 2), v = filled(nkv, 3), dout = filled(nq, 4);
  std::vector<float> out(nq), lse((size_t)B * H * T), dq(nq), dk(nkv), dv(nkv);
  if (j.dense) {
    j.ms_fwd = best_ms(j.reps, [&] { engine::attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), B, H, Hkv, T, D); });
    j.ms_bwd = best_ms(j.reps, [&] {
      engine::attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), out.data(),
                                 lse.data(), B, H, Hkv, T, D);
    });
    j.density = 1;
    return;
  }
  engine::BlockMask m = engine::build_block_mask(j.spec, T, H, Hkv, 0, nullptr);
  j.density = m.density();
  j.ms_fwd = best_ms(j.reps, [&] { engine::blocksparse_attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), B, H, Hkv, T, D, m); });
  j.ms_bwd = best_ms(j.reps, [&] {
    engine::blocksparse_attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(),
                                           out.data(), lse.data(), B, H, Hkv, T, D, m);
  });
}

class BenchWorker : public Napi::AsyncWorker {
 public:
  BenchWorker(Napi::Env env, BenchJob job) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), job_(job) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      run_bench(job_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Object o = Napi::Object::New(Env());
    o.Set("msFwd", job_.ms_fwd);
    o.Set("msBwd", job_.ms_bwd);
    o.Set("density", job_.density);
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  BenchJob job_;
};

Napi::Value BenchAttention(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (!info[0].IsObject()) throw std::invalid_argument("benchAttention: options must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    BenchJob j;
    Napi::Value spec = o.Get("spec");
    j.dense = spec.IsNull() || spec.IsUndefined();
    if (!j.dense) j.spec = mask_spec_from(spec);
    j.seq = int_field(o, "seq", "bench");
    j.heads = int_field(o, "heads", "bench");
    j.kv_heads = int_field(o, "kvHeads", "bench");
    j.dim = int_field(o, "dim", "bench");
    j.batch = int_field(o, "batch", "bench");
    j.reps = int_field(o, "reps", "bench");
    if (j.seq < 1 || j.heads < 1 || j.kv_heads < 1 || j.dim < 1 || j.batch < 1 || j.reps < 1 || j.heads % j.kv_heads)
      throw std::invalid_argument("bench: seq, heads, kvHeads, dim, batch, reps must be >= 1 and heads a multiple of kvHeads");
    auto* w = new BenchWorker(info.Env(), j);
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("maskBuild", Napi::Function::New(env, MaskBuild));
  exports.Set("maskFromBits", Napi::Function::New(env, MaskFromBits));
  exports.Set("pooledBlockScores", Napi::Function::New(env, PooledBlockScores));
  exports.Set("infllmv2Select", Napi::Function::New(env, Infllmv2Select));
  exports.Set("benchAttention", Napi::Function::New(env, BenchAttention));
  exports.Set("selectorAttention", Napi::Function::New(env, SelectorAttention));
}
napi_registry::Add add(Register);

}  // namespace
