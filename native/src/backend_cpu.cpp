// The CPU backend: host memory and the ops of ops.h / blocksparse_attention.h on the thread pool,
// plus the loader of the CUDA backend from the separately built CUDA module.
#include <dlfcn.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "attention_metrics.h"
#include "backend.h"
#include "block_selector.h"
#include "blocksparse_attention.h"
#include "op_checks.h"
#include "parallel.h"

namespace engine {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::bf16: return "bf16";
    case Precision::fp16: return "fp16";
  }
  return "fp32";
}

Precision precision_from_name(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  if (name == "fp16") return Precision::fp16;
  throw std::invalid_argument("precision: must be fp32, bf16 or fp16, got '" + name + "'");
}

namespace {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  std::string device() const override {
    return std::to_string(ThreadPool::get().threads()) + " threads, " + simd_level();
  }
  Precision precision() const override { return Precision::fp32; }
  void set_precision(Precision) override {}  // fp32 whatever is asked (and this backend is process-wide)
  bool host_resident() const override { return true; }

  float* alloc(int64_t n) override { return (float*)zeroed(n * (int64_t)sizeof(float)); }
  int32_t* alloc_i32(int64_t n) override { return (int32_t*)zeroed(n * (int64_t)sizeof(int32_t)); }
  void release(void* p) override { std::free(p); }
  void upload(void* dst, const void* src, int64_t bytes) override { std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, int64_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy(float* dst, const float* src, int64_t n) override { std::memcpy(dst, src, sizeof(float) * n); }
  void fill(float* x, float value, int64_t n) override {
    parallel_for(n, [&](int64_t i0, int64_t i1) { std::fill(x + i0, x + i1, value); });
  }

  void embedding_forward(float* out, const int32_t* tokens, const float* table, int N, int C) override {
    engine::embedding_forward(out, tokens, table, N, C);
  }
  void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int N, int C) override {
    engine::embedding_backward(dtable, dout, tokens, N, C);
  }
  void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                       float eps) override {
    engine::rmsnorm_forward(out, rstd, inp, weight, N, C, eps);
  }
  void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                        const float* rstd, int N, int C) override {
    engine::rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N, C);
  }
  void matmul_forward(float* out, const float* inp, const float* weight, int N, int C, int OC) override {
    engine::matmul_forward(out, inp, weight, nullptr, N, C, OC);
  }
  void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, int N,
                       int C, int OC) override {
    engine::matmul_backward(dinp, dweight, dout, inp, weight, N, C, OC);
  }
  void matmul_backward_overwrite_dweight(float* dinp, float* dweight, const float* dout, const float* inp,
                                         const float* weight, int N, int C, int OC) override {
    engine::matmul_backward(dinp, dweight, dout, inp, weight, N, C, OC, /*accumulate_dweight=*/false);
  }
  void rope_forward(float* x, int B, int T, int H, int D, const RopeArrays& rope) override {
    engine::rope_forward(x, B, T, H, D, *rope.table);
  }
  void rope_backward(float* dx, int B, int T, int H, int D, const RopeArrays& rope) override {
    engine::rope_backward(dx, B, T, H, D, *rope.table);
  }
  void to_heads(float* out, const float* x, int B, int T, int H, int D) override {
    parallel_for((int64_t)B * H, [&](int64_t b0, int64_t b1) {
      for (int64_t bh = b0; bh < b1; bh++) {
        const int64_t b = bh / H, h = bh % H;
        for (int t = 0; t < T; t++)
          std::memcpy(out + (bh * T + t) * D, x + ((b * T + t) * H + h) * D, sizeof(float) * D);
      }
    });
  }
  void from_heads(float* out, const float* x, int B, int T, int H, int D) override {
    parallel_for((int64_t)B * H, [&](int64_t b0, int64_t b1) {
      for (int64_t bh = b0; bh < b1; bh++) {
        const int64_t b = bh / H, h = bh % H;
        for (int t = 0; t < T; t++)
          std::memcpy(out + ((b * T + t) * H + h) * D, x + (bh * T + t) * D, sizeof(float) * D);
      }
    });
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B, int H,
                         int Hkv, int T, int D, const BlockMask* mask) override {
    if (mask) engine::blocksparse_attention_forward(out, lse, q, k, v, B, H, Hkv, T, D, *mask);
    else engine::attention_forward(out, lse, q, k, v, B, H, Hkv, T, D);
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse, int B, int H, int Hkv, int T, int D,
                          const BlockMask* mask) override {
    if (mask) engine::blocksparse_attention_backward(dq, dk, dv, dout, q, k, v, out, lse, B, H, Hkv, T, D, *mask);
    else engine::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, B, H, Hkv, T, D);
  }
  void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) override {
    engine::swiglu_forward(out, gate, up, n);
  }
  void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                       int64_t n) override {
    engine::swiglu_backward(dgate, dup, dout, gate, up, n);
  }
  void moe_gather_rows(float* out, const float* x, const int32_t* rows, int64_t M, int C) override {
    engine::moe_gather_rows(out, x, rows, M, C);
  }
  void moe_combine(float* out, const float* y, const int32_t* pos, const float* weight, int N, int K,
                   int C) override {
    engine::moe_combine(out, y, pos, weight, N, K, C);
  }
  void moe_combine_backward(float* dy, float* dweight, const float* dout, const float* y, const int32_t* pos,
                            const float* weight, int N, int K, int C) override {
    engine::moe_combine_backward(dy, dweight, dout, y, pos, weight, N, K, C);
  }
  void add_scaled(float* out, const float* a, const float* b, float s, int64_t n) override {
    parallel_for(n, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; i++) out[i] = a[i] + s * b[i];
    });
  }
  void scale(float* out, const float* x, float s, int64_t n) override {
    parallel_for(n, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; i++) out[i] = x[i] * s;
    });
  }
  double cross_entropy(float* dlogits, const float* logits, const int32_t* targets, int N, int V,
                       float dscale) override {
    return dlogits ? engine::cross_entropy_forward_backward(dlogits, logits, targets, N, V, dscale)
                   : engine::cross_entropy_forward(logits, targets, N, V);
  }
  double logit_kl(float* dlogits, const float* zs, const float* zt, int N, int V, float temp,
                  float gscale) override {
    std::vector<double> row_kl(N);
    parallel_for(N, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; i++) {
        const float* s = zs + i * V;
        const float* t = zt + i * V;
        double ms = -INFINITY, mt = -INFINITY;
        for (int j = 0; j < V; j++) { ms = std::max(ms, (double)s[j] / temp); mt = std::max(mt, (double)t[j] / temp); }
        double ss = 0, st = 0;
        for (int j = 0; j < V; j++) { ss += std::exp(s[j] / temp - ms); st += std::exp(t[j] / temp - mt); }
        const double lzs = ms + std::log(ss), lzt = mt + std::log(st);
        double kl = 0;
        for (int j = 0; j < V; j++) {
          const double lpt = t[j] / temp - lzt, lps = s[j] / temp - lzs, pt = std::exp(lpt);
          kl += pt * (lpt - lps);
          if (dlogits) dlogits[i * V + j] += (float)(gscale * (std::exp(lps) - pt));
        }
        row_kl[i] = kl;
      }
    });
    double sum = 0;
    for (double kl : row_kl) sum += kl;
    return sum;
  }
  double attn_kl_loss(float* dq_s, float* dk_s, float grad_scale, const float* q_s, const float* k_s, const float* q_t,
                      const float* k_t, const float* lse_t, int B, int H, int Hkv, int T, int D,
                      const BlockMask& mask) override {
    if (!dq_s || !dk_s) return engine::attn_kl_loss(nullptr, nullptr, q_s, k_s, q_t, k_t, lse_t, B, H, Hkv, T, D, mask);
    const double kl = engine::attn_kl_loss(dq_s, dk_s, q_s, k_s, q_t, k_t, lse_t, B, H, Hkv, T, D, mask);
    if (grad_scale != 1.0f) {
      scale(dq_s, dq_s, grad_scale, (int64_t)B * H * T * D);
      scale(dk_s, dk_s, grad_scale, (int64_t)B * Hkv * T * D);
    }
    return kl;
  }
  AttentionMetrics attention_metrics(const float* q_s, const float* k_s, const float* q_t, const float* k_t,
                                     const float* lse_t, int B, int H, int Hkv, int T, int D,
                                     const BlockMask& mask) override {
    return engine::attention_metrics(q_s, k_s, q_t, k_t, lse_t, B, H, Hkv, T, D, mask);
  }
  void pooled_block_scores(float* scores_host, const float* q, const float* k, int H, int Hkv, int T, int D,
                           int block_size, bool share_gqa_group) override {
    engine::pooled_block_scores(scores_host, q, k, H, Hkv, T, D, block_size, share_gqa_group);
  }
  void indexer_block_scores(float* scores_host, const float* x, const float* w_q, const float* w_k, const float* w_h,
                            const IndexerShape& shape, int T, int block_size, int n_mask_heads) override {
    engine::indexer_block_scores(scores_host, x, w_q, w_k, w_h, shape, T, block_size, n_mask_heads);
  }
  double indexer_loss(float* dw_q, float* dw_k, float* dw_h, float grad_scale, const float* x, const float* w_q,
                      const float* w_k, const float* w_h, const float* q_t, const float* k_t, const float* lse_t,
                      const IndexerShape& shape, int B, int H, int Hkv, int T, int D, int block_size,
                      const std::vector<BlockMask>* selected) override {
    if (selected) check_indexer_selected_count(*selected, B, "indexer_loss");
    const int nb = (T + block_size - 1) / block_size;
    const bool grads = dw_q || dw_k || dw_h;
    std::vector<float> target((size_t)nb * nb), gq, gk, gh;
    if (grads) {
      gq.assign((size_t)shape.Hi * shape.Di * shape.C, 0.0f);
      gk.assign((size_t)shape.Di * shape.C, 0.0f);
      gh.assign((size_t)shape.Hi, 0.0f);
    }
    double total = 0;
    for (int b = 0; b < B; b++) {
      engine::teacher_block_attention(target.data(), q_t + (size_t)b * H * T * D, k_t + (size_t)b * Hkv * T * D,
                                      lse_t + (size_t)b * H * T, H, Hkv, T, D, block_size);
      total += engine::indexer_kl_loss(grads ? gq.data() : nullptr, grads ? gk.data() : nullptr,
                                       grads ? gh.data() : nullptr, x + (size_t)b * T * shape.C, w_q, w_k, w_h,
                                       target.data(), shape, T, block_size,
                                       selected ? &(*selected)[selected->size() == 1 ? 0 : b] : nullptr);
    }
    for (auto [dw, g] : {std::pair{dw_q, &gq}, {dw_k, &gk}, {dw_h, &gh}})
      if (dw) add_scaled(dw, dw, g->data(), grad_scale / B, (int64_t)g->size());
    return total / B;
  }
  double sum_squares(const float* x, int64_t n) override { return engine::sum_squares(x, n); }
  void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                    float beta2, float eps, float weight_decay, int step, float grad_scale) override {
    engine::adamw_update(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale);
  }

 private:
  // 64-byte aligned (whole cache lines for the SIMD kernels), zeroed.
  static void* zeroed(int64_t bytes) {
    const size_t size = ((size_t)std::max<int64_t>(bytes, 1) + 63) & ~(size_t)63;
    void* p = std::aligned_alloc(64, size);
    if (!p) throw std::runtime_error("out of memory allocating " + std::to_string(bytes) + " bytes");
    std::memset(p, 0, size);
    return p;
  }
};

}  // namespace

std::shared_ptr<Backend> cpu_backend() {
  static std::shared_ptr<Backend> backend = std::make_shared<CpuBackend>();
  return backend;
}

// The module stays loaded for the life of the process: backends it made may outlive any caller.
std::shared_ptr<Backend> load_cuda_backend(const std::string& module_path, Precision precision) {
  void* so = dlopen(module_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!so) {
    const char* err = dlerror();
    throw std::runtime_error("the CUDA module does not load (" + module_path + "): " + (err ? err : "unknown error"));
  }
  auto create = (CreateCudaBackendFn)dlsym(so, SPARSE_STUDIO_CUDA_FACTORY);
  if (!create) throw std::runtime_error("the CUDA module " + module_path + " has no backend (rebuild it: node scripts/build-cuda.mjs)");
  auto version = (CudaInterfaceVersionFn)dlsym(so, SPARSE_STUDIO_CUDA_INTERFACE);
  const int built = version ? version() : 1;  // modules from before the version was exported are version 1
  if (built != kBackendInterfaceVersion)
    throw std::runtime_error("the CUDA module " + module_path + " was built for backend interface " + std::to_string(built) + ", this engine needs " +
                             std::to_string(kBackendInterfaceVersion) + " (rebuild it: node scripts/build-cuda.mjs)");
  char error[512] = {0};
  Backend* backend = create((int)precision, error, (int)sizeof error);
  if (!backend) throw std::runtime_error(error[0] ? error : "the CUDA backend found no usable device");
  return std::shared_ptr<Backend>(backend);
}

}  // namespace engine
