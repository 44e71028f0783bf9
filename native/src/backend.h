// The op interface the model runs on: memory plus every op of a training step, forward and
// backward. The CPU backend (backend_cpu.cpp) forwards to ops.h and the block-sparse kernels; the
// CUDA backend (native/cuda/backend_cuda.cu) runs the same ops on a GPU and is loaded at run time
// from the separately built CUDA module (load_cuda_backend), so CPU-only installs never need it.
// Design choices:
// - Pointers are in the backend's memory ("device" pointers); fp32 at the interface. The CUDA
//   backend computes matrix products and attention in bf16 (or fp16) with fp32 accumulation and
//   keeps fp32 master weights, so the model code is the same for both backends.
// - The precision is the backend's state, switchable between ops (set_precision): every tensor
//   stays fp32 in memory, so a switch changes only how the next products are computed (the
//   pipeline's per-stage precision). The CPU computes in fp32 whatever is asked.
// - host_resident(): device pointers are host pointers (the CPU backend), so the model reads
//   activations in place and copies nothing.
// - Semantics match ops.h exactly, including which outputs are accumulated (+=) and which are
//   overwritten; a backend that cannot run an op (shape, block size) throws std::runtime_error
//   with a one-line reason; nothing aborts.
// Shape letters as in ops.h.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "attention_metrics.h"
#include "block_mask.h"
#include "block_selector.h"
#include "ops.h"

namespace engine {

enum class Precision { fp32, bf16, fp16 };
const char* precision_name(Precision p);
// Throws std::invalid_argument naming the field for anything but fp32, bf16, fp16.
Precision precision_from_name(const std::string& name);

// A RoPE table as both backends read it: the host table and its cos/sin in backend memory.
struct RopeArrays {
  const RopeTable* table = nullptr;
  const float* cos = nullptr;  // (max_seq, head_dim)
  const float* sin = nullptr;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;       // "cpu" | "cuda"
  virtual std::string device() const = 0;     // e.g. "2 threads, avx2" or the GPU's name
  virtual Precision precision() const = 0;    // of matrix products and attention
  // The precision of the ops from the next call on; the CPU backend ignores it (fp32 always).
  virtual void set_precision(Precision p) = 0;
  virtual bool host_resident() const = 0;

  // ------------------------------------------------------------------ memory (zeroed on alloc)
  virtual float* alloc(int64_t n) = 0;
  virtual int32_t* alloc_i32(int64_t n) = 0;
  virtual void release(void* p) = 0;
  virtual void upload(void* dst, const void* src, int64_t bytes) = 0;
  virtual void download(void* dst, const void* src, int64_t bytes) = 0;
  virtual void copy(float* dst, const float* src, int64_t n) = 0;  // dst == src: nothing to do
  virtual void fill(float* x, float value, int64_t n) = 0;

  // ------------------------------------------------------------------ ops (ops.h semantics)
  virtual void embedding_forward(float* out, const int32_t* tokens, const float* table, int N, int C) = 0;
  virtual void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int N, int C) = 0;
  virtual void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                               float eps) = 0;
  // Accumulates into dinp and dweight (nullable).
  virtual void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                                const float* weight, const float* rstd, int N, int C) = 0;
  virtual void matmul_forward(float* out, const float* inp, const float* weight, int N, int C, int OC) = 0;
  // Accumulates into dinp and dweight (either nullable).
  virtual void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                               const float* weight, int N, int C, int OC) = 0;
  // The same, but dweight (non-null) is overwritten: a tensor's first gradient of a step, whose
  // buffer then needs no zero-fill beforehand. This default zero-fills and accumulates.
  virtual void matmul_backward_overwrite_dweight(float* dinp, float* dweight, const float* dout, const float* inp,
                                                 const float* weight, int N, int C, int OC) {
    fill(dweight, 0.0f, (int64_t)OC * C);
    matmul_backward(dinp, dweight, dout, inp, weight, N, C, OC);
  }
  virtual void rope_forward(float* x, int B, int T, int H, int D, const RopeArrays& rope) = 0;
  virtual void rope_backward(float* dx, int B, int T, int H, int D, const RopeArrays& rope) = 0;
  // x (B, T, H, D) -> out (B, H, T, D), and back (out must not alias x).
  virtual void to_heads(float* out, const float* x, int B, int T, int H, int D) = 0;
  virtual void from_heads(float* out, const float* x, int B, int T, int H, int D) = 0;
  // mask == nullptr: dense causal attention. Outputs overwritten.
  virtual void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B,
                                 int H, int Hkv, int T, int D, const BlockMask* mask) = 0;
  virtual void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                  const float* k, const float* v, const float* out, const float* lse, int B, int H,
                                  int Hkv, int T, int D, const BlockMask* mask) = 0;
  virtual void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) = 0;
  virtual void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                               int64_t n) = 0;
  // Mixture of experts (ops.h semantics): gather rows into the grouped-by-expert order, the
  // weighted sum back per token (accumulated), and its backward (overwritten).
  virtual void moe_gather_rows(float* out, const float* x, const int32_t* rows, int64_t M, int C) = 0;
  virtual void moe_combine(float* out, const float* y, const int32_t* pos, const float* weight, int N, int K,
                           int C) = 0;
  virtual void moe_combine_backward(float* dy, float* dweight, const float* dout, const float* y,
                                    const int32_t* pos, const float* weight, int N, int K, int C) = 0;
  // out = a + s * b (out may alias a or b)
  virtual void add_scaled(float* out, const float* a, const float* b, float s, int64_t n) = 0;
  // out = x * s (out may alias x)
  virtual void scale(float* out, const float* x, float s, int64_t n) = 0;
  // Mean cross-entropy over N rows (every target valid); dlogits (nullable, may alias logits) as ops.h.
  virtual double cross_entropy(float* dlogits, const float* logits, const int32_t* targets, int N, int V,
                               float dscale) = 0;
  // Logit distillation over N rows: returns sum over rows of KL(softmax(zt/temp) || softmax(zs/temp));
  // when dlogits is non-null ADDS gscale * (softmax(zs/temp) - softmax(zt/temp)) to it.
  virtual double logit_kl(float* dlogits, const float* zs, const float* zt, int N, int V, float temp,
                          float gscale) = 0;
  // Attention-KL distillation loss of one block-sparse layer, as attention_metrics.h attn_kl_loss:
  // the mean over (B, H, T) of KL(P_student || P_teacher) over the keys the mask keeps. When dq_s
  // and dk_s are non-null it WRITES there the loss's gradients w.r.t. the student's q (B, H, T, D)
  // and k (B, Hkv, T, D), multiplied by grad_scale. lse_t (B, H, T): the teacher's dense lse.
  virtual double attn_kl_loss(float* dq_s, float* dk_s, float grad_scale, const float* q_s, const float* k_s,
                              const float* q_t, const float* k_t, const float* lse_t, int B, int H, int Hkv, int T,
                              int D, const BlockMask& mask) = 0;
  // Evaluation metrics of one block-sparse layer, as attention_metrics.h attention_metrics
  // (attn_kl with rows clamped at 0, attn_recall, density, attn_flops_saved); lse_t required.
  virtual AttentionMetrics attention_metrics(const float* q_s, const float* k_s, const float* q_t, const float* k_t,
                                             const float* lse_t, int B, int H, int Hkv, int T, int D,
                                             const BlockMask& mask) = 0;
  // Parameter-free block scores of ONE sequence, as block_selector.h pooled_block_scores, written
  // to HOST memory (the mask is built on the host): scores (Hkv or H, nb, nb). q (H, T, D), k (Hkv, T, D).
  virtual void pooled_block_scores(float* scores_host, const float* q, const float* k, int H, int Hkv, int T, int D,
                                   int block_size, bool share_gqa_group) = 0;
  // Trainable block indexer (block_selector.h), ONE sequence: x (T, C) and the weights in backend
  // memory; scores written to HOST memory (n_mask_heads, nb, nb), the same map in every head.
  virtual void indexer_block_scores(float* scores_host, const float* x, const float* w_q, const float* w_k,
                                    const float* w_h, const IndexerShape& shape, int T, int block_size,
                                    int n_mask_heads) = 0;
  // The indexer's KL over B sequences: per sequence, target = teacher_block_attention of
  // q_t (B, H, T, D), k_t (B, Hkv, T, D), lse_t (B, H, T), and loss = indexer_kl_loss on x (B, T, C):
  // the warm-up KL when `selected` is null, else the selected-set KL over the kept blocks of
  // (*selected)[0] for every sequence (one element) or (*selected)[b] (B elements), host masks.
  // Returns the mean over the batch and ADDS grad_scale / B times the summed gradients to dw_q,
  // dw_k, dw_h (each nullable: a frozen tensor gets none).
  virtual double indexer_loss(float* dw_q, float* dw_k, float* dw_h, float grad_scale, const float* x,
                              const float* w_q, const float* w_k, const float* w_h, const float* q_t,
                              const float* k_t, const float* lse_t, const IndexerShape& shape, int B, int H, int Hkv,
                              int T, int D, int block_size, const std::vector<BlockMask>* selected) = 0;
  virtual double sum_squares(const float* x, int64_t n) = 0;
  virtual void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                            float beta2, float eps, float weight_decay, int step, float grad_scale) = 0;
};

// The CPU backend (process-wide, stateless apart from the thread pool).
std::shared_ptr<Backend> cpu_backend();

// Loads the CUDA backend from the CUDA module at `module_path` (sparse_cuda.node). Throws
// std::runtime_error with a one-line reason when the module is missing, does not load, or finds
// no usable device.
std::shared_ptr<Backend> load_cuda_backend(const std::string& module_path, Precision precision);

// What the CUDA module exports (C linkage, so the loader finds it with dlsym). Returns nullptr
// and writes the reason into `error` when no device is usable.
using CreateCudaBackendFn = Backend* (*)(int precision, char* error, int error_len);
#define SPARSE_STUDIO_CUDA_FACTORY "sparse_studio_create_cuda_backend"

// The version of the Backend class above. The CUDA module is built separately and reports the
// version it was compiled against; the loader refuses any other, since calls through a stale
// module's vtable would land on the wrong methods. Bump it whenever the class changes.
constexpr int kBackendInterfaceVersion = 2;
using CudaInterfaceVersionFn = int (*)();
#define SPARSE_STUDIO_CUDA_INTERFACE "sparse_studio_cuda_backend_interface"

}  // namespace engine
