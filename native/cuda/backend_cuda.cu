// CudaBackend: engine::Backend on one GPU. Each method maps to the kernels of ops_cuda.h with the
// semantics backend.h documents (which outputs accumulate, which are overwritten, what may alias).
// Design choices:
// - One stream, the legacy default stream: kernels, cudaMemcpyAsync and the synchronous
//   cudaMemcpy of upload/download are all ordered with one another, so a download always sees
//   the results of every earlier op and the host needs no explicit synchronisation.
// - Errors never abort: a CUDA failure, cuBLAS failure or unsupported shape throws
//   std::runtime_error with a one-line message (CUDA runtime failures start with "cuda: ").
//   release() alone reports nothing, since it runs in destructors; a sticky device error shows up
//   at the next op anyway.
// - Matrix products: fp32 in memory, cublasGemmEx with computeType by precision (bf16 / fp16
//   down-conversion inside cuBLAS, fp32 accumulate); our fp32 SGEMM when cuBLAS is absent, which
//   computes in fp32 whatever the precision (said once on stderr; gemm_path()). The precision is
//   read at each product, so set_precision between steps switches it with nothing to convert:
//   weights, gradients and AdamW's moments are fp32 in memory at every precision.
// - Attention: the bf16 tensor-core kernels, which need head_dim 64 or 128 and mask blocks of 64
//   or 128 (at 128 on 99 KB-per-block GPUs, the 32-row variant; a head dim whose kernels fit no
//   variant is refused with the reason before anything runs). Any head_dim D <= 128 runs padded to Dp = 64 or 128: q, k, v packed to bf16 (rows, Dp)
//   with zero padding and q pre-multiplied by sqrt(Dp / D), so the kernel's 1/sqrt(Dp) scale gives
//   q.k / sqrt(D) and lse is unchanged; dq is unpacked times sqrt(Dp / D) (chain rule).
//   Tile lists of the masks are cached on the device by content (the backward reuses the forward's).
// - Attention-KL distillation loss: fp32 kernels over the mask's own block lists (any block size
//   that is a multiple of 16, cached by content like the tile lists); per-row KL comes down and
//   is summed on the host. Pooled block scores are computed on the device and downloaded, since
//   the mask builder that takes them runs on the host.
// - The trainable block indexer (block_selector.cu): scores, the teacher's block-attention target
//   and its KL (warm-up, or over the kept blocks, whose bitmaps go up) with its weight gradients
//   all on the device in fp32 (cuBLAS at fp32
//   compute whatever the backend's precision); only the small score map and the per-row losses
//   come down.
// - Argument checks the CPU ops make are the CPU's own (native/src/op_checks.h, inline), so both
//   backends refuse the same calls with the same std::invalid_argument; what only the CUDA
//   kernels need (head dims, block sizes) throws std::runtime_error here.
// - Grow-only scratch buffers; the old buffer is freed only after the device is idle.
// - Reductions that return a number (cross-entropy, logit KL) download per-row values and sum
//   them on the host in double in row order, as the CPU backend does.
// - Methods that use shared state (scratch, mask cache, the cuBLAS handle) hold a mutex, so
//   concurrent callers are safe; the others only enqueue work on the stream.
#include "backend_cuda.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention_tiles.h"
#include "op_checks.h"
#include "ops_cuda.h"

namespace cuda_backend {

namespace {
using bf16 = __nv_bfloat16;

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error(message); }
void check(const Status& s) {
  if (!s.ok) fail("cuda: " + s.message);
}
void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) fail(std::string("cuda: ") + what + ": " + cudaGetErrorString(err));
}

// A grow-only device buffer.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    if (p_) cudaFree(p_);
  }
  template <typename T>
  T* get(int64_t count) {
    const size_t need = (size_t)std::max<int64_t>(1, count) * sizeof(T);
    if (need > bytes_) {
      if (p_) {
        check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (scratch)");  // queued work may still read it
        cudaFree(p_);
        p_ = nullptr;
        bytes_ = 0;
      }
      check(cudaMalloc(&p_, need), "cudaMalloc (scratch)");
      bytes_ = need;
    }
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// Device copies of the masks seen recently, keyed by content (T, block size, mask heads and the
// bitmap, from which every list of a BlockMask follows): the attention kernels' tile lists
// (DeviceTileMask) and the attention-KL loss's block lists (DeviceBlockLists).
template <typename Dev>
class MaskCache {
 public:
  explicit MaskCache(void (*release)(Dev*)) : release_(release) {}
  MaskCache(const MaskCache&) = delete;
  MaskCache& operator=(const MaskCache&) = delete;
  ~MaskCache() {
    for (Entry& e : entries_) release_(&e.dev);
  }
  // make(Dev*) -> Status builds and uploads a missing entry (cleaning up after itself on failure).
  template <typename Make>
  Dev get(const std::vector<uint64_t>& bits, int T, int block_size, int n_mask_heads, Make make) {
    uint64_t hash = 1469598103934665603ull;  // FNV-1a over the words
    for (uint64_t w : bits) hash = (hash ^ w) * 1099511628211ull;
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->T == T && it->block_size == block_size && it->n_mask_heads == n_mask_heads && it->hash == hash && it->bits == bits) {
        entries_.splice(entries_.begin(), entries_, it);  // most recently used first
        return entries_.front().dev;
      }
    Entry e{T, block_size, n_mask_heads, hash, bits, {}};
    check(make(&e.dev));
    entries_.push_front(std::move(e));
    if (entries_.size() > kMaxEntries) {
      check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (mask cache)");  // queued kernels may read the evicted lists
      release_(&entries_.back().dev);
      entries_.pop_back();
    }
    return entries_.front().dev;
  }

 private:
  static constexpr size_t kMaxEntries = 256;  // a mask per layer (and per sequence for top-k)
  struct Entry {
    int T, block_size, n_mask_heads;
    uint64_t hash;
    std::vector<uint64_t> bits;
    Dev dev;
  };
  void (*release_)(Dev*);
  std::list<Entry> entries_;
};

class CudaBackend final : public engine::Backend {
 public:
  explicit CudaBackend(engine::Precision precision) {
    const DeviceInfo info = device_info();
    if (!info.available) fail("cuda: " + info.reason);
    check(cudaSetDevice(0), "cudaSetDevice");
    check(cudaFree(nullptr), "creating the CUDA context");
    device_ = info.name;
    smem_optin_ = info.smem_optin_bytes;
    set_precision(precision);
  }
  ~CudaBackend() override { cudaDeviceSynchronize(); }

  std::string name() const override { return "cuda"; }
  std::string device() const override { return device_; }
  engine::Precision precision() const override { return precision_; }
  void set_precision(engine::Precision p) override {
    precision_ = p;
    if (!cublas_available() && p != engine::Precision::fp32) {
      static std::once_flag warned;  // once per process: the products run in fp32, far slower
      std::call_once(warned, [] { std::fprintf(stderr, "cuda: matrix products: %s\n", gemm_path().c_str()); });
    }
  }
  bool host_resident() const override { return false; }

  // ------------------------------------------------------------------ memory
  float* alloc(int64_t n) override { return static_cast<float*>(alloc_bytes(n, sizeof(float))); }
  int32_t* alloc_i32(int64_t n) override { return static_cast<int32_t*>(alloc_bytes(n, sizeof(int32_t))); }
  void release(void* p) override {
    if (p) cudaFree(p);  // errors are not reported (destructors); see the file comment
  }
  void upload(void* dst, const void* src, int64_t bytes) override {
    if (bytes > 0) check(cudaMemcpy(dst, src, (size_t)bytes, cudaMemcpyHostToDevice), "upload (cudaMemcpy)");
  }
  void download(void* dst, const void* src, int64_t bytes) override {
    if (bytes > 0) check(cudaMemcpy(dst, src, (size_t)bytes, cudaMemcpyDeviceToHost), "download (cudaMemcpy)");
  }
  void copy(float* dst, const float* src, int64_t n) override {
    if (n > 0 && dst != src) check(cudaMemcpyAsync(dst, src, (size_t)n * sizeof(float), cudaMemcpyDeviceToDevice, kStream), "copy (cudaMemcpyAsync)");
  }
  void fill(float* x, float value, int64_t n) override { check(cuda_backend::fill(x, value, n, kStream)); }

  // ------------------------------------------------------------------ ops
  void embedding_forward(float* out, const int32_t* tokens, const float* table, int N, int C) override {
    check(cuda_backend::embedding_forward(out, tokens, table, N, C, kStream));
  }
  void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int N, int C) override {
    if (N <= 0 || C <= 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int32_t> host(N);
    download(host.data(), tokens, (int64_t)N * sizeof(int32_t));
    engine::check_tokens(host.data(), N, "embedding_backward");
    std::vector<int32_t> csr;
    const int U = embedding_csr(&csr, host.data(), N);
    int32_t* dcsr = csr_.get<int32_t>((int64_t)csr.size());
    upload(dcsr, csr.data(), (int64_t)(csr.size() * sizeof(int32_t)));
    check(cuda_backend::embedding_backward(dtable, dout, dcsr, U, C, kStream));
  }
  void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps) override {
    check(cuda_backend::rmsnorm_forward(out, rstd, inp, weight, N, C, eps, kStream));
  }
  void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, const float* rstd, int N,
                        int C) override {
    // Both kernels accumulate (+=), as the interface wants.
    std::lock_guard<std::mutex> lock(mu_);
    double* scratch = dweight ? norm_.get<double>(rmsnorm_backward_scratch(N, C)) : nullptr;
    check(cuda_backend::rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N, C, scratch, kStream));
  }
  void matmul_forward(float* out, const float* inp, const float* weight, int N, int C, int OC) override {
    std::lock_guard<std::mutex> lock(mu_);
    // out (N, OC) = inp (N, C) @ weight (OC, C)^T
    check(gemm_f32(false, true, N, OC, C, 1.f, inp, C, weight, C, 0.f, out, OC, gemm_compute(), kStream));
  }
  void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, int N, int C,
                       int OC) override {
    std::lock_guard<std::mutex> lock(mu_);
    // dinp (N, C) += dout (N, OC) @ weight (OC, C)
    if (dinp) check(gemm_f32(false, false, N, C, OC, 1.f, dout, OC, weight, C, 1.f, dinp, C, gemm_compute(), kStream));
    // dweight (OC, C) += dout^T (OC, N) @ inp (N, C); dout is stored (N, OC) = (K, M): trans_a
    if (dweight) check(gemm_f32(true, false, OC, C, N, 1.f, dout, OC, inp, C, 1.f, dweight, C, gemm_compute(), kStream));
  }
  void rope_forward(float* x, int B, int T, int H, int D, const engine::RopeArrays& rope) override {
    check_rope(T, D, rope, "rope_forward");
    check(cuda_backend::rope_forward(x, rope.cos, rope.sin, B, T, H, D, kStream));
  }
  void rope_backward(float* dx, int B, int T, int H, int D, const engine::RopeArrays& rope) override {
    check_rope(T, D, rope, "rope_backward");
    check(cuda_backend::rope_backward(dx, rope.cos, rope.sin, B, T, H, D, kStream));
  }
  void to_heads(float* out, const float* x, int B, int T, int H, int D) override {
    check(cuda_backend::to_heads(out, x, B, T, H, D, kStream));
  }
  void from_heads(float* out, const float* x, int B, int T, int H, int D) override {
    check(cuda_backend::from_heads(out, x, B, T, H, D, kStream));
  }

  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B, int H, int Hkv, int T, int D,
                         const engine::BlockMask* mask) override {
    const int Dp = padded_head_dim(B, H, Hkv, T, D, mask, "attention_forward");
    if (B == 0 || T == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    const DeviceTileMask m = tile_mask(mask, T);
    const int64_t rq = (int64_t)B * H * T, rk = (int64_t)B * Hkv * T;
    bf16 *qp = q_.get<bf16>(rq * Dp), *kp = k_.get<bf16>(rk * Dp), *vp = v_.get<bf16>(rk * Dp), *op = out_.get<bf16>(rq * Dp);
    check(pack_rows_bf16(qp, q, rq, D, Dp, q_scale(D, Dp), kStream));
    check(pack_rows_bf16(kp, k, rk, D, Dp, 1.f, kStream));
    check(pack_rows_bf16(vp, v, rk, D, Dp, 1.f, kStream));
    check(blocksparse_attention_forward(op, lse, qp, kp, vp, B, H, Hkv, T, Dp, m, kStream));
    check(unpack_rows_bf16(out, op, rq, D, Dp, 1.f, kStream));
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v,
                          const float* out, const float* lse, int B, int H, int Hkv, int T, int D, const engine::BlockMask* mask) override {
    const int Dp = padded_head_dim(B, H, Hkv, T, D, mask, "attention_backward");
    if (B == 0 || T == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    const DeviceTileMask m = tile_mask(mask, T);
    const int64_t rq = (int64_t)B * H * T, rk = (int64_t)B * Hkv * T;
    const float s = q_scale(D, Dp);
    bf16 *qp = q_.get<bf16>(rq * Dp), *kp = k_.get<bf16>(rk * Dp), *vp = v_.get<bf16>(rk * Dp);
    bf16 *op = out_.get<bf16>(rq * Dp), *dop = dout_.get<bf16>(rq * Dp);
    check(pack_rows_bf16(qp, q, rq, D, Dp, s, kStream));
    check(pack_rows_bf16(kp, k, rk, D, Dp, 1.f, kStream));
    check(pack_rows_bf16(vp, v, rk, D, Dp, 1.f, kStream));
    check(pack_rows_bf16(op, out, rq, D, Dp, 1.f, kStream));  // out came from the bf16 kernel: exact
    check(pack_rows_bf16(dop, dout, rq, D, Dp, 1.f, kStream));
    float* delta = delta_.get<float>(rq);
    if (Dp == D) {  // no padding: the kernels write the outputs directly (s == 1)
      check(blocksparse_attention_backward(dq, dk, dv, dop, qp, kp, vp, op, lse, delta, B, H, Hkv, T, Dp, m, kStream));
      return;
    }
    float *dqp = dq_.get<float>(rq * Dp), *dkp = dk_.get<float>(rk * Dp), *dvp = dv_.get<float>(rk * Dp);
    check(blocksparse_attention_backward(dqp, dkp, dvp, dop, qp, kp, vp, op, lse, delta, B, H, Hkv, T, Dp, m, kStream));
    check(unpack_rows_f32(dq, dqp, rq, D, Dp, s, kStream));  // q' = s q, so dq = s dq'
    check(unpack_rows_f32(dk, dkp, rk, D, Dp, 1.f, kStream));
    check(unpack_rows_f32(dv, dvp, rk, D, Dp, 1.f, kStream));
  }

  void moe_gather_rows(float* out, const float* x, const int32_t* rows, int64_t M, int C) override {
    check(cuda_backend::moe_gather_rows(out, x, rows, M, C, kStream));
  }
  void moe_combine(float* out, const float* y, const int32_t* pos, const float* weight, int N, int K,
                   int C) override {
    check(cuda_backend::moe_combine(out, y, pos, weight, N, K, C, kStream));
  }
  void moe_combine_backward(float* dy, float* dweight, const float* dout, const float* y, const int32_t* pos,
                            const float* weight, int N, int K, int C) override {
    check(cuda_backend::moe_combine_backward(dy, dweight, dout, y, pos, weight, N, K, C, kStream));
  }
  void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) override {
    check(cuda_backend::swiglu_forward(out, gate, up, n, kStream));
  }
  void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) override {
    check(cuda_backend::swiglu_backward(dgate, dup, dout, gate, up, n, kStream));
  }
  void add_scaled(float* out, const float* a, const float* b, float s, int64_t n) override {
    check(cuda_backend::add_scaled(out, a, b, s, n, kStream));
  }
  void scale(float* out, const float* x, float s, int64_t n) override { check(cuda_backend::scale(out, x, s, n, kStream)); }

  double cross_entropy(float* dlogits, const float* logits, const int32_t* targets, int N, int V, float dscale) override {
    if (N <= 0) return 0;
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int32_t> host(N);  // the kernel would read logits[target] past the row
    download(host.data(), targets, (int64_t)N * sizeof(int32_t));
    engine::check_targets(host.data(), N, V, "cross_entropy");
    float* losses = rows_.get<float>(N);
    check(cuda_backend::cross_entropy(losses, dlogits, logits, targets, N, V, N, dscale, kStream));
    return sum_rows(losses, N) / N;
  }
  double logit_kl(float* dlogits, const float* zs, const float* zt, int N, int V, float temp, float gscale) override {
    if (N <= 0) return 0;
    std::lock_guard<std::mutex> lock(mu_);
    float* kl = rows_.get<float>(N);
    check(cuda_backend::logit_kl(kl, dlogits, zs, zt, N, V, temp, gscale, kStream));
    return sum_rows(kl, N);
  }
  double attn_kl_loss(float* dq_s, float* dk_s, float grad_scale, const float* q_s, const float* k_s, const float* q_t, const float* k_t,
                      const float* lse_t, int B, int H, int Hkv, int T, int D, const engine::BlockMask& mask) override {
    check_kl_args(B, H, Hkv, T, D, mask, lse_t, "attn_kl_loss");
    const bool grads = dq_s && dk_s;  // as the CPU backend: both gradients, or the loss only
    std::lock_guard<std::mutex> lock(mu_);
    const DeviceBlockLists lists = block_lists(mask);
    const int64_t rows = (int64_t)B * H * T;
    const double inv_rows = 1.0 / (double)rows;  // the loss is a mean over (B, H, T)
    float* kl = rows_.get<float>(rows);
    float* stats = grads ? stats_.get<float>(2 * rows) : nullptr;
    check(cuda_backend::attn_kl_loss(kl, grads ? dq_s : nullptr, grads ? dk_s : nullptr, (float)(grad_scale * inv_rows), q_s, k_s, q_t, k_t,
                                     lse_t, stats, B, H, Hkv, T, D, lists, kStream));
    return sum_rows(kl, rows) * inv_rows;
  }
  engine::AttentionMetrics attention_metrics(const float* q_s, const float* k_s, const float* q_t, const float* k_t, const float* lse_t, int B,
                                             int H, int Hkv, int T, int D, const engine::BlockMask& mask) override {
    check_kl_args(B, H, Hkv, T, D, mask, lse_t, "attention_metrics");
    std::lock_guard<std::mutex> lock(mu_);
    const DeviceBlockLists lists = block_lists(mask);
    const int64_t rows = (int64_t)B * H * T;
    float* kl = rows_.get<float>(2 * rows);
    float* recall = kl + rows;
    check(cuda_backend::attention_metric_rows(kl, recall, q_s, k_s, q_t, k_t, lse_t, B, H, Hkv, T, D, lists, kStream));
    engine::AttentionMetrics m;  // means over (B, H, T) of rows summed in double in row order, as the CPU
    m.attn_kl = sum_rows(kl, rows) / (double)rows;
    m.attn_recall = sum_rows(recall, rows) / (double)rows;
    m.density = mask.density();
    m.attn_flops_saved = mask.flops_saved();
    return m;
  }
  void pooled_block_scores(float* scores_host, const float* q, const float* k, int H, int Hkv, int T, int D, int block_size,
                           bool share_gqa_group) override {
    engine::check_selector_args(T, block_size, "pooled_block_scores");
    engine::check_selector_heads(H, Hkv, "pooled_block_scores");
    std::lock_guard<std::mutex> lock(mu_);
    const int nb = (T + block_size - 1) / block_size;
    const int64_t n = (int64_t)(share_gqa_group ? Hkv : H) * nb * nb;
    float* scores = scores_.get<float>(n);
    check(cuda_backend::pooled_block_scores(scores, q, k, H, Hkv, T, D, block_size, share_gqa_group, kStream));
    download(scores_host, scores, n * (int64_t)sizeof(float));
  }
  void indexer_block_scores(float* scores_host, const float* x, const float* w_q, const float* w_k, const float* w_h,
                            const engine::IndexerShape& shape, int T, int block_size, int n_mask_heads) override {
    check_indexer_args(shape, T, block_size, "indexer_block_scores");
    std::lock_guard<std::mutex> lock(mu_);
    const int nb = (T + block_size - 1) / block_size;
    const int64_t n = (int64_t)nb * nb;
    IndexerBuffers z = indexer_buffers(1, nb, shape, false);
    check(indexer_project(z.xbar, z.qi, z.kj, x, w_q, w_k, 1, T, shape.C, shape.Hi, shape.Di, block_size, kStream));
    check(indexer_scores(z.dscore, z.qi, z.kj, w_h, 1, nb, shape.Hi, shape.Di, kStream));
    download(scores_host, z.dscore, n * (int64_t)sizeof(float));
    for (int h = 1; h < n_mask_heads; h++) std::copy(scores_host, scores_host + n, scores_host + h * n);  // one map for every mask head
  }
  double indexer_loss(float* dw_q, float* dw_k, float* dw_h, float grad_scale, const float* x, const float* w_q, const float* w_k,
                      const float* w_h, const float* q_t, const float* k_t, const float* lse_t, const engine::IndexerShape& shape, int B, int H,
                      int Hkv, int T, int D, int block_size, const std::vector<engine::BlockMask>* selected) override {
    check_indexer_args(shape, T, block_size, "indexer_loss");
    if (B < 1 || D < 1) throw std::invalid_argument("indexer_loss: need B, D >= 1");
    engine::check_selector_heads(H, Hkv, "teacher_block_attention");
    engine::check_teacher_lse(lse_t, "indexer_loss");
    if (selected) {
      engine::check_indexer_selected_count(*selected, B, "indexer_loss");
      for (const engine::BlockMask& m : *selected) {
        engine::check_indexer_selected(m, T, block_size, "indexer_loss");
        if (m.n_mask_heads != selected->front().n_mask_heads) fail("indexer_loss: the selected masks differ in mask heads");
      }
    }
    const bool grads = dw_q || dw_k || dw_h;
    std::lock_guard<std::mutex> lock(mu_);
    const int nb = (T + block_size - 1) / block_size, rows = B * nb;
    IndexerBuffers z = indexer_buffers(B, nb, shape, true);
    check(indexer_project(z.xbar, z.qi, z.kj, x, w_q, w_k, B, T, shape.C, shape.Hi, shape.Di, block_size, kStream));
    check(teacher_block_attention(z.target, z.acc, q_t, k_t, lse_t, B, H, Hkv, T, D, block_size, kStream));
    if (selected) {
      // The kept-block bitmaps of the batch, one after another (the masks are built on the host).
      const engine::BlockMask& first = selected->front();
      const int64_t per_mask = (int64_t)first.bits.size();
      std::vector<uint64_t> bits;
      bits.reserve((size_t)per_mask * selected->size());
      for (const engine::BlockMask& m : *selected) bits.insert(bits.end(), m.bits.begin(), m.bits.end());
      uint64_t* keep = keep_.get<uint64_t>((int64_t)bits.size());
      upload(keep, bits.data(), (int64_t)(bits.size() * sizeof(uint64_t)));
      check(indexer_selected_kl_loss(z.row_loss, z.dscore, z.acc, grads ? z.dqi : nullptr, grads ? z.dkj : nullptr, grads ? z.dwh_rows : nullptr,
                                     z.qi, z.kj, w_h, z.target, keep, first.n_mask_heads, first.words, selected->size() == 1 ? 0 : per_mask,
                                     B, nb, shape.Hi, shape.Di, kStream));
    } else {
      check(indexer_kl_loss(z.row_loss, z.dscore, grads ? z.dqi : nullptr, grads ? z.dkj : nullptr, grads ? z.dwh_rows : nullptr, z.qi, z.kj,
                            w_h, z.target, B, nb, shape.Hi, shape.Di, kStream));
    }
    // As the CPU backend: dw += (the batch's summed gradient) * (grad_scale / B).
    if (grads)
      check(indexer_weight_grads(dw_q, dw_k, dw_h, grad_scale / B, z.dqi, z.dkj, z.dwh_rows, z.xbar, rows, shape.C, shape.Hi, shape.Di, kStream));
    std::vector<double> row_loss(rows);
    download(row_loss.data(), z.row_loss, (int64_t)rows * (int64_t)sizeof(double));
    double total = 0;
    for (int b = 0; b < B; b++) {  // per sequence, its rows in order; then the sequences in order
      double seq = 0;
      for (int i = 0; i < nb; i++) seq += row_loss[(size_t)b * nb + i];
      total += seq;
    }
    return total / B;
  }
  double sum_squares(const float* x, int64_t n) override {
    if (n <= 0) return 0;
    std::lock_guard<std::mutex> lock(mu_);
    float* buf = rows_.get<float>(1025);  // 1024 partials, then the sum
    check(cuda_backend::sum_squares(buf + 1024, x, n, buf, kStream));
    float total = 0;
    download(&total, buf + 1024, sizeof(float));
    return total;
  }
  void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps,
                    float weight_decay, int step, float grad_scale) override {
    check(cuda_backend::adamw_update(param, nullptr, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale, kStream));
  }

 private:
  static constexpr cudaStream_t kStream = 0;  // the legacy default stream (see the file comment)

  GemmCompute gemm_compute() const {
    const engine::Precision p = precision_;
    return p == engine::Precision::bf16 ? GemmCompute::bf16 : p == engine::Precision::fp16 ? GemmCompute::f16 : GemmCompute::f32;
  }

  void* alloc_bytes(int64_t n, size_t elem) {
    if (n < 0) fail("cuda: alloc of a negative size (" + std::to_string(n) + ")");
    const size_t bytes = (size_t)std::max<int64_t>(1, n) * elem;
    void* p = nullptr;
    check(cudaMalloc(&p, bytes), ("cudaMalloc of " + std::to_string(bytes) + " bytes").c_str());
    const cudaError_t err = cudaMemset(p, 0, bytes);
    if (err != cudaSuccess) {
      cudaFree(p);
      check(err, "cudaMemset");
    }
    return p;
  }

  // The CPU's shape check against the host table, plus what the kernel needs.
  static void check_rope(int T, int D, const engine::RopeArrays& rope, const char* who) {
    if (!rope.cos || !rope.sin) fail(std::string(who) + ": the RoPE table has no device arrays");
    if (rope.table) engine::check_rope_shape(T, D, *rope.table, who);
    if (D % 2 != 0) fail(std::string(who) + ": head_dim " + std::to_string(D) + " must be even");
  }

  // The kernels' head dim for D, after the CPU's checks (dense, or block-sparse with a mask) and
  // what the kernels need.
  // Refuses up front, with the reason, a head dim whose kernels do not fit this device's shared memory.
  int padded_head_dim(int B, int H, int Hkv, int T, int D, const engine::BlockMask* mask, const char* who) const {
    if (mask) engine::check_blocksparse_args(B, H, Hkv, T, D, *mask);
    else engine::check_attention_heads(H, Hkv, who);
    if (D <= 0 || D > 128) fail("attention: head_dim " + std::to_string(D) + " is not supported by the CUDA attention kernels (at most 128)");
    if (B < 0 || T < 0) fail(std::string(who) + ": B " + std::to_string(B) + " and T " + std::to_string(T) + " must not be negative");
    const int Dp = D <= 64 ? 64 : 128;
    const attention_tiles::Plan plan = attention_tiles::plan(Dp, smem_optin_);
    if (!plan.kv)
      fail(std::string(who) + ": head_dim " + std::to_string(D) + " (run as " + std::to_string(Dp) + ") cannot run on " + device_ + ": " + plan.reason);
    return Dp;
  }
  static float q_scale(int D, int Dp) { return D == Dp ? 1.f : std::sqrt((float)Dp / (float)D); }

  // The mask's tile lists on the device (cached by content); its T and heads are checked already
  // (padded_head_dim). Caller holds mu_.
  DeviceTileMask tile_mask(const engine::BlockMask* mask, int T) {
    if (!mask || mask->dense)  // every causal pair: the dense tile lists (no bits, block_size 64, one mask head)
      return masks_.get({}, T, 64, 1, [T](DeviceTileMask* out) { return upload_tiles(out, {}, T, 64, 1); });
    if (mask->block_size != 64 && mask->block_size != 128)
      fail("mask.block_size " + std::to_string(mask->block_size) + ": the CUDA attention kernels support block sizes 64 and 128");
    return masks_.get(mask->bits, T, mask->block_size, mask->n_mask_heads,
                      [&](DeviceTileMask* out) { return upload_tiles(out, mask->bits, T, mask->block_size, mask->n_mask_heads); });
  }
  static Status upload_tiles(DeviceTileMask* out, const std::vector<uint64_t>& bits, int T, int block_size, int n_mask_heads) {
    TileMask host;
    const Status st = make_tile_mask(&host, bits, T, block_size, n_mask_heads);
    return st.ok ? upload_tile_mask(out, host) : st;
  }

  // The CPU's argument checks of attn_kl_loss / attention_metrics, plus what the device lists need
  // (the lse is required on CUDA for both); `who` names the method in the messages.
  static void check_kl_args(int B, int H, int Hkv, int T, int D, const engine::BlockMask& mask, const float* lse_t, const std::string& who) {
    engine::check_attention_kl_args(B, H, Hkv, T, D, mask, who.c_str());
    engine::check_teacher_lse(lse_t, who.c_str());
    if (mask.block_size < 16 || mask.block_size % 16 != 0)
      fail(who + ": mask.block_size " + std::to_string(mask.block_size) + " is not supported on CUDA (a multiple of 16)");
    if (D > 256) fail(who + ": head_dim " + std::to_string(D) + " is not supported on CUDA (at most 256)");
    const int nb = (T + mask.block_size - 1) / mask.block_size;
    if (mask.n_blocks != nb || mask.bits.size() != (size_t)mask.n_mask_heads * nb * mask.words)
      fail(who + ": the mask's bitmap does not match its T and block size");
  }
  // The mask's block lists on the device (cached by content). Caller holds mu_.
  DeviceBlockLists block_lists(const engine::BlockMask& mask) {
    return lists_.get(mask.bits, mask.T, mask.block_size, mask.n_mask_heads, [&](DeviceBlockLists* out) {
      return upload_block_lists(out, mask.T, mask.block_size, mask.n_mask_heads, mask.kv_ptr, mask.kv_idx, mask.q_ptr, mask.q_idx);
    });
  }

  // The CPU's argument checks of the indexer (the kernels' own limits are checked at launch).
  static void check_indexer_args(const engine::IndexerShape& s, int T, int block_size, const char* who) {
    engine::check_indexer_shape(s);
    engine::check_selector_args(T, block_size, who);
  }

  // The indexer's device buffers, carved from two grow-only scratch arrays: floats xbar (rows, C),
  // qi (rows, HD), kj (rows, Di), dscore (B, nb, nb) (the scores, for indexer_block_scores), and for
  // the loss target (B, nb, nb), dqi (rows, HD), dkj (rows, Di); doubles acc (B, nb, nb), row_loss
  // (rows), dwh_rows (rows, Hi). Each part starts on a 256-byte boundary.
  struct IndexerBuffers {
    float *xbar = nullptr, *qi = nullptr, *kj = nullptr, *dscore = nullptr, *target = nullptr, *dqi = nullptr, *dkj = nullptr;
    double *acc = nullptr, *row_loss = nullptr, *dwh_rows = nullptr;
  };
  IndexerBuffers indexer_buffers(int B, int nb, const engine::IndexerShape& s, bool loss) {
    const int64_t rows = (int64_t)B * nb, pairs = rows * nb, HD = (int64_t)s.Hi * s.Di;
    auto up = [](int64_t n) { return (n + 63) / 64 * 64; };
    const int64_t f_sizes[] = {rows * s.C, rows * HD, rows * s.Di, pairs, loss ? pairs : 0, loss ? rows * HD : 0, loss ? rows * s.Di : 0};
    const int64_t d_sizes[] = {loss ? pairs : 0, loss ? rows : 0, loss ? rows * s.Hi : 0};
    int64_t nf = 0, nd = 0;
    for (int64_t n : f_sizes) nf += up(n);
    for (int64_t n : d_sizes) nd += up(n);
    float* f = indexer_f_.get<float>(nf);
    double* d = loss ? indexer_d_.get<double>(nd) : nullptr;
    IndexerBuffers z;
    float** fp[] = {&z.xbar, &z.qi, &z.kj, &z.dscore, &z.target, &z.dqi, &z.dkj};
    for (int k = 0; k < 7; k++) {
      *fp[k] = f;
      f += up(f_sizes[k]);
    }
    if (loss) {
      double** dp[] = {&z.acc, &z.row_loss, &z.dwh_rows};
      for (int k = 0; k < 3; k++) {
        *dp[k] = d;
        d += up(d_sizes[k]);
      }
    }
    return z;
  }

  // Sum of n per-row device values, in double in row order.
  double sum_rows(const float* rows, int64_t n) {
    std::vector<float> host(n);
    download(host.data(), rows, (int64_t)n * sizeof(float));
    double total = 0;
    for (float x : host) total += x;
    return total;
  }

  std::atomic<engine::Precision> precision_{engine::Precision::fp32};
  std::string device_;
  size_t smem_optin_ = 0;
  std::mutex mu_;
  Scratch q_, k_, v_, out_, dout_, dq_, dk_, dv_, delta_, rows_, csr_, norm_, stats_, scores_, indexer_f_, indexer_d_, keep_;
  MaskCache<DeviceTileMask> masks_{free_tile_mask};
  MaskCache<DeviceBlockLists> lists_{free_block_lists};
};
}  // namespace

std::unique_ptr<engine::Backend> make_cuda_backend(engine::Precision precision) { return std::make_unique<CudaBackend>(precision); }

}  // namespace cuda_backend

extern "C" int sparse_studio_cuda_backend_interface() { return engine::kBackendInterfaceVersion; }

extern "C" engine::Backend* sparse_studio_create_cuda_backend(int precision, char* error, int error_len) {
  auto say = [&](const std::string& message) {
    if (error && error_len > 0) std::snprintf(error, (size_t)error_len, "%s", message.c_str());
  };
  if (precision < 0 || precision > 2) {
    say("cuda: unknown precision " + std::to_string(precision) + " (0 fp32, 1 bf16, 2 fp16)");
    return nullptr;
  }
  try {
    return cuda_backend::make_cuda_backend(static_cast<engine::Precision>(precision)).release();
  } catch (const std::exception& e) {
    say(e.what());
  } catch (...) {
    say("cuda: creating the backend failed");
  }
  return nullptr;
}
