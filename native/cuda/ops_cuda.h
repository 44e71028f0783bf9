// The CUDA backend's op interface: the same ops as native/src/ops.h, on device pointers.
// Design choices:
// - Activations in bf16 or fp32 as each op states; accumulation always fp32; master weights
//   fp32 (AdamW updates them and refreshes their bf16 copy), so bf16 mixed precision is
//   "bf16 compute, fp32 master". fp16 adds a dynamic loss scale (AdamW skips steps with inf/nan).
// - Every launcher returns a Status (never aborts); all run on the given stream.
// - Matrix products go through cuBLAS (loaded at run time with dlopen; fp32 in memory, computeType
//   by precision: bf16/fp16 down-conversion inside cuBLAS, fp32 accumulate). Without cuBLAS they
//   fall back to a plain tiled fp32 SGEMM (gemm_f32_fallback), which computes in fp32 whatever
//   the precision and is far slower; gemm_path() says which is in use. Only
//   matmul_forward_bf16 (bf16 inputs, tests and bench) falls back to the tensor-core wmma kernel.
// - Block-sparse attention: tiles of 64 tokens on tensor cores; mask blocks of 64 or 128
//   (a 128 block is 2x2 tiles). Dense attention is the same kernel with every causal tile.
//   At head_dim 128 on GPUs with 99 KB of shared memory per block the kernels stream 32-row
//   halves of each tile (attention_tiles.h).
// Shape letters as in ops.h: B batch, T tokens, H heads, Hkv kv heads, D head dim, N rows,
// C channels, OC output channels, V vocab.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda_common.cuh"

namespace cuda_backend {

// ------------------------------------------------------------------ device and libraries (matmul.cu)
struct DeviceInfo {
  bool available = false;
  int count = 0;
  std::string name, reason;   // reason: why not available
  int sm_major = 0, sm_minor = 0;
  size_t memory_bytes = 0;
  size_t smem_optin_bytes = 0;  // shared memory per block with opt-in (99 KB on sm_86/89/120, 163 KB sm_80, 227 KB sm_90)
  std::string attention;        // what the attention kernels run here (attention_support)
};
// Usable when sm_80 or newer and the attention kernels fit at head_dim 64 at least.
DeviceInfo device_info();
// The current device's shared memory per block with opt-in (cudaDevAttrMaxSharedMemoryPerBlockOptin).
Status device_smem_limit(size_t* bytes);
// One line on which attention variants fit `smem_optin_bytes` (attention_tiles.h), e.g.
// "head_dim 64 and 128 (128 with key tiles of 32)"; empty when not even head_dim 64 fits.
std::string attention_support(size_t smem_optin_bytes);
// Architectures this module was compiled for, e.g. "sm_80 sm_90 compute_90".
const char* compiled_archs();
// Whether cuBLAS was found (dlopen: the loader's path, then $CUDA_HOME / $CUDA_PATH / nvcc's
// toolkit / /usr/local/cuda lib folders, then pip's nvidia/cublas/lib) — else gemm_f32 runs the
// fp32 SGEMM fallback (bf16/fp16 requests computed in fp32) and matmul_forward_bf16 the wmma kernel.
bool cublas_available();
// The GEMM path in use, one line: "cublas (<library>)" or "fallback: ..." with where cuBLAS was sought.
std::string gemm_path();

// ------------------------------------------------------------------ elementwise (elementwise.cu)
Status f32_to_bf16(__nv_bfloat16* out, const float* in, int64_t n, cudaStream_t s);
Status bf16_to_f32(float* out, const __nv_bfloat16* in, int64_t n, cudaStream_t s);
// x[i] = value.
Status fill(float* x, float value, int64_t n, cudaStream_t s);
// out = a + s * b; out = x * s. Elementwise, so out may alias any input.
Status add_scaled(float* out, const float* a, const float* b, float scale, int64_t n, cudaStream_t s);
Status scale(float* out, const float* x, float scale, int64_t n, cudaStream_t s);
// x (B, T, H, D) -> out (B, H, T, D) (to_heads), and back (from_heads). out must not alias x.
Status to_heads(float* out, const float* x, int B, int T, int H, int D, cudaStream_t s);
Status from_heads(float* out, const float* x, int B, int T, int H, int D, cudaStream_t s);
// Attention head-dim padding: src (rows, D) fp32 -> dst (rows, Dp) bf16 times s, zeros in the
// padding; and back: src (rows, Dp) bf16 or fp32 -> dst (rows, D) fp32 times s (padding dropped).
Status pack_rows_bf16(__nv_bfloat16* dst, const float* src, int64_t rows, int D, int Dp, float s, cudaStream_t st);
Status unpack_rows_bf16(float* dst, const __nv_bfloat16* src, int64_t rows, int D, int Dp, float s, cudaStream_t st);
Status unpack_rows_f32(float* dst, const float* src, int64_t rows, int D, int Dp, float s, cudaStream_t st);

// ------------------------------------------------------------------ norms (rmsnorm.cu)
// out (N, C) = inp * rstd * weight; rstd (N) when not null. fp32.
Status rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps, cudaStream_t s);
// Accumulates (+=) into dinp (N, C) and dweight (C), each skipped when null. dweight: column
// sums in double over fixed row chunks, added in order (deterministic); needs `scratch` of
// rmsnorm_backward_scratch(N, C) doubles (unused when dweight is null).
Status rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, const float* rstd, int N, int C,
                        double* scratch, cudaStream_t s);
int64_t rmsnorm_backward_scratch(int N, int C);

// ------------------------------------------------------------------ rope (rope.cu)
// In place, x (B, T, H, D), rotate-half; cos/sin tables (T, D) on the device.
Status rope_forward(float* x, const float* cos, const float* sin, int B, int T, int H, int D, cudaStream_t s);
Status rope_backward(float* dx, const float* cos, const float* sin, int B, int T, int H, int D, cudaStream_t s);

// ------------------------------------------------------------------ mixture of experts (moe.cu)
// As native/src/ops.h: out[i] = x[rows[i]] (overwritten); out[n] += sum_j weight[n, j] * y[pos[n, j]]
// (weight nullable: 1); backward overwrites dy[pos[n, j]] = weight[n, j] * dout[n] and
// dweight[n, j] = dot(dout[n], y[pos[n, j]]).
Status moe_gather_rows(float* out, const float* x, const int32_t* rows, int64_t M, int C, cudaStream_t s);
Status moe_combine(float* out, const float* y, const int32_t* pos, const float* weight, int N, int K, int C,
                   cudaStream_t s);
Status moe_combine_backward(float* dy, float* dweight, const float* dout, const float* y, const int32_t* pos,
                            const float* weight, int N, int K, int C, cudaStream_t s);

// ------------------------------------------------------------------ swiglu (swiglu.cu)
Status swiglu_forward(float* out, const float* gate, const float* up, int64_t n, cudaStream_t s);
// Overwrites dgate and dup; every array may alias any other (each element is read before written).
Status swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n, cudaStream_t s);

// ------------------------------------------------------------------ embedding (embedding.cu)
// out (N, C) = table[tokens[n]] (a negative id gives a zero row instead of a wild read).
Status embedding_forward(float* out, const int32_t* tokens, const float* table, int N, int C, cudaStream_t s);
// dtable (V, C) += dout (N, C) by token, from a host-built CSR (see embedding_csr): one CTA per
// distinct token adds that token's rows in position order, so every element receives exactly
// the additions of the CPU op in the same order (bit-identical sums). csr on the device:
// [tokens (U) | ptr (U + 1) | rows (N)].
Status embedding_backward(float* dtable, const float* dout, const int32_t* csr, int U, int C, cudaStream_t s);
// Host side of embedding_backward: csr = [distinct tokens ascending | ptr | positions ascending
// within a token]; returns U. Negative ids are the caller's to reject.
int embedding_csr(std::vector<int32_t>* csr, const int32_t* tokens, int N);

// ------------------------------------------------------------------ cross-entropy and logit KL (cross_entropy.cu)
// Fused softmax cross-entropy. losses (N) per row (0 for ignored, target < 0); dlogits (N, V) =
// (softmax - onehot) * dscale / valid_count (may alias logits; null = forward only).
Status cross_entropy(float* losses, float* dlogits, const float* logits, const int* targets, int N, int V, int valid_count, float dscale, cudaStream_t s);
// Logit distillation, one CTA per row i: lps = log_softmax(zs / temp), lpt = log_softmax(zt / temp),
// kl[i] = sum_j exp(lpt_j) (lpt_j - lps_j); when dlogits is not null, dlogits[i, j] +=
// gscale * (exp(lps_j) - exp(lpt_j)). dlogits may alias zs or zt (each element read before written).
Status logit_kl(float* kl, float* dlogits, const float* zs, const float* zt, int N, int V, float temp, float gscale, cudaStream_t s);

// ------------------------------------------------------------------ optimiser (adamw.cu)
// Fused AdamW on fp32 master weights; writes the bf16 copy when param_bf16 != null.
// grad_scale multiplies the gradient (clip factor / (1 / loss scale)); a non-finite gradient
// anywhere sets *found_inf (device int) and the caller skips the step (fp16 loss scaling).
Status adamw_update(float* param, __nv_bfloat16* param_bf16, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay, int step, float grad_scale, cudaStream_t s);
Status check_finite(int* found_inf, const float* x, int64_t n, cudaStream_t s);
// out (1) = sum of squares (fp32 partials, deterministic two-pass reduction).
Status sum_squares(float* out, const float* x, int64_t n, float* scratch /* >= 1024 floats */, cudaStream_t s);

// ------------------------------------------------------------------ matrix products (matmul.cu)
// out (N, OC) fp32 = inp (N, C) bf16 @ weight (OC, C)^T bf16. fp32 accumulate.
Status matmul_forward_bf16(float* out, const __nv_bfloat16* inp, const __nv_bfloat16* weight, int N, int C, int OC, cudaStream_t s);
// Our own wmma kernel, always (for tests against cuBLAS and as the fallback).
Status matmul_forward_bf16_wmma(float* out, const __nv_bfloat16* inp, const __nv_bfloat16* weight, int N, int C, int OC, cudaStream_t s);
// How an fp32 GEMM may compute: cuBLAS computeType CUBLAS_COMPUTE_32F, _32F_FAST_16BF, _32F_FAST_16F
// (inputs down-converted to bf16 / fp16 inside cuBLAS, fp32 accumulate).
enum class GemmCompute { f32, bf16, f16 };
// Row-major fp32 SGEMM with ops.h's sgemm semantics: C (M, N) = alpha * op(A) op(B) + beta * C,
// op(A) (M, K), op(B) (K, N); trans_a: A stored (K, M); trans_b: B stored (N, K); beta == 0
// ignores C's old contents. Through cuBLAS (cublasGemmEx, fp32 A/B/C) when loaded, else through
// gemm_f32_fallback (fp32 whatever `compute` says).
Status gemm_f32(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, float beta,
                float* C, int ldc, GemmCompute compute, cudaStream_t s);
// Our own tiled fp32 SGEMM (same semantics), always: the fallback, and tested on its own.
Status gemm_f32_fallback(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                         float beta, float* C, int ldc, cudaStream_t s);

// ------------------------------------------------------------------ attention (blocksparse_attention.cu)
// Tile lists of a block mask at 64-token tiles: per
// (mask head, query tile) the key tiles ascending, and the transposed lists.
struct TileMask {
  int T = 0, n_tiles = 0, n_mask_heads = 0;
  std::vector<int32_t> kv_ptr, kv_idx, q_ptr, q_idx;
};
// From mask bitmaps at block_size 64 or 128 (n_mask_heads, n_blocks, words) — or all causal
// tiles when bits is empty (dense attention). Returns an error for other block sizes.
Status make_tile_mask(TileMask* out, const std::vector<uint64_t>& bits, int T, int block_size, int n_mask_heads);

struct DeviceTileMask {
  int T = 0, n_tiles = 0, n_mask_heads = 0;
  int32_t *kv_ptr = nullptr, *kv_idx = nullptr, *q_ptr = nullptr, *q_idx = nullptr;
};
Status upload_tile_mask(DeviceTileMask* out, const TileMask& m);
void free_tile_mask(DeviceTileMask* m);

// q (B, H, T, D), k, v (B, Hkv, T, D) bf16; out (B, H, T, D) bf16; lse (B, H, T) fp32 (natural
// log of the scaled scores' sum, as the CPU kernel). D in {64, 128}. Causal within tiles.
// kv_tile: rows streamed per step (attention_tiles.h); 0 picks the largest whose shared memory
// fits the device (64; 32 at D 128 on 99 KB parts), 64 or 32 (D 128) forces one (tests). When
// none fits, the error names the need and the device's limit, before anything is launched.
Status blocksparse_attention_forward(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, int B, int H, int Hkv, int T, int D, const DeviceTileMask& m, cudaStream_t s, int kv_tile = 0);
// dq (B, H, T, D) fp32, dk, dv (B, Hkv, T, D) fp32, overwritten; deterministic (no atomics).
// scratch: B*H*T floats (rowsum(dout * out)). kv_tile as in the forward.
Status blocksparse_attention_backward(float* dq, float* dk, float* dv, const __nv_bfloat16* dout, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* out, const float* lse, float* scratch, int B, int H, int Hkv, int T, int D, const DeviceTileMask& m, cudaStream_t s, int kv_tile = 0);

// ------------------------------------------------------------------ attention-KL distillation and metrics (attention_metrics.cu)
// A block mask's CSR lists on the device at the mask's own block size (any multiple of 16 —
// masks use powers of two in [16, 256]), in one allocation: per (mask head, query block) row r
// the kept key blocks kv_idx[kv_ptr[r] .. kv_ptr[r + 1]) ascending, and per (mask head, key
// block) column c the query blocks keeping it, q_idx[q_ptr[c] .. q_ptr[c + 1]) ascending.
struct DeviceBlockLists {
  int T = 0, block_size = 0, n_blocks = 0, n_mask_heads = 0;
  int32_t* data = nullptr;  // owns kv_ptr | kv_idx | q_ptr | q_idx
  const int32_t *kv_ptr = nullptr, *kv_idx = nullptr, *q_ptr = nullptr, *q_idx = nullptr;
};
// Checks the lists' sizes (n_mask_heads * n_blocks + 1 pointers each, as many indices as
// kv_ptr's last entry, n_blocks = ceil(T / block_size)), then uploads them.
Status upload_block_lists(DeviceBlockLists* out, int T, int block_size, int n_mask_heads, const std::vector<int32_t>& kv_ptr,
                          const std::vector<int32_t>& kv_idx, const std::vector<int32_t>& q_ptr, const std::vector<int32_t>& q_idx);
void free_block_lists(DeviceBlockLists* m);

// Attention-KL distillation loss of one block-sparse layer (native/src/attention_metrics.h
// attn_kl_loss) in fp32 on CUDA cores, visiting only kept block pairs (causal per token inside
// them; T need not be a multiple of the block size). With s = q_s.k_s / sqrt(D), t = q_t.k_t /
// sqrt(D) over the keys a row keeps, lse_s the student's lse over them and lse_t the teacher's
// dense lse (input, (B, H, T)):
//   kl (B, H, T) = sum_j Ps_j (s_j - lse_s - t_j + lse_t) per row  (Ps = exp(s - lse_s)).
// When dq and dk are both non-null they are OVERWRITTEN (every element) with coef times the
// gradient of the sum of the rows' KL w.r.t. q_s (B, H, T, D) and k_s (B, Hkv, T, D);
// row_stats (2 B H T floats) is then scratch for the dk pass. Deterministic (no atomics: dq per
// query tile over the key lists, dk per key tile over the transposed lists). D <= 256.
Status attn_kl_loss(float* kl, float* dq, float* dk, float coef, const float* q_s, const float* k_s, const float* q_t, const float* k_t,
                    const float* lse_t, float* row_stats, int B, int H, int Hkv, int T, int D, const DeviceBlockLists& m, cudaStream_t s);
// Per-row evaluation metrics of the same layer (native/src/attention_metrics.h attention_metrics),
// by attn_kl_loss's loss pass: kl (B, H, T) the row KL as above clamped at 0, recall (B, H, T)
// = sum over the kept keys of exp(t_j - lse_t). Both overwritten; lse_t required.
Status attention_metric_rows(float* kl, float* recall, const float* q_s, const float* k_s, const float* q_t, const float* k_t, const float* lse_t,
                             int B, int H, int Hkv, int T, int D, const DeviceBlockLists& m, cudaStream_t s);

// ------------------------------------------------------------------ block selection (block_selector.cu)
// Parameter-free pooled-key scores (InfLLM-V2 / MoBA) of one sequence, q (H, T, D), k (Hkv, T, D)
// fp32: score(i, j) = sum over the mask head's query heads of mean over the queries of block i
// of q . mean(k of block j). share_gqa_group: scores (Hkv, nb, nb), a mask head per GQA group;
// else (H, nb, nb), one per query head. Non-causal entries (j > i) are -inf, as on the CPU.
Status pooled_block_scores(float* scores, const float* q, const float* k, int H, int Hkv, int T, int D, int block_size,
                           bool share_gqa_group, cudaStream_t s);

// ------------------------------------------------------------------ trainable block indexer (block_selector.cu)
// The indexer of native/src/block_selector.h (b) on the device, fp32. Shapes:
// nb = ceil(T / block_size) (the tail block is short), HD = Hi * Di, and rows = B * nb
// (sequence, block) pairs; weights as on the CPU: w_q (HD, C), w_k (Di, C), w_h (Hi). Hi <= 64.
// Pooled input and projections of x (B, T, C): xbar (rows, C) the block means, qi (rows, HD) =
// xbar w_q^T and kj (rows, Di) = xbar w_k^T (cuBLAS at fp32 compute, or the fp32 fallback).
Status indexer_project(float* xbar, float* qi, float* kj, const float* x, const float* w_q, const float* w_k, int B, int T, int C, int Hi, int Di,
                       int block_size, cudaStream_t s);
// scores (B, nb, nb): score(i, j) = sum_h w_h[h] relu(qi_{i,h} . kj_j / sqrt(Di)) for j <= i, -inf above
// the diagonal (as the CPU writes them).
Status indexer_scores(float* scores, const float* qi, const float* kj, const float* w_h, int B, int nb, int Hi, int Di, cudaStream_t s);
// The indexer's target (block_selector.h teacher_block_attention) for B sequences: target (B, nb, nb),
// per sequence the teacher's attention probabilities exp(q.k / sqrt(D) - lse) summed over the
// heads and the causal token pairs of each block pair, rows L1-normalised over the causal key
// blocks, zeros above the diagonal. q (B, H, T, D), k (B, Hkv, T, D), lse (B, H, T) the teacher's
// dense lse (required). acc: B * nb * nb doubles of scratch. Deterministic (no atomics).
Status teacher_block_attention(float* target, double* acc, const float* q, const float* k, const float* lse, int B, int H, int Hkv, int T, int D,
                               int block_size, cudaStream_t s);
// The warm-up loss of B sequences from indexer_project's qi, kj and a target (B, nb, nb):
// row_loss (rows) doubles, the row's KL(target_i || softmax_j(score(i, .))) over j <= i divided by
// nb (a sequence's loss is the sum of its rows, in order). dscore: B * nb * nb floats of scratch;
// when dqi, dkj and dwh_rows are given (all three or none) it ends as d loss / d score, and
// dqi (rows, HD) and dkj (rows, Di) are OVERWRITTEN with the loss's gradients w.r.t. qi and kj,
// dwh_rows (rows, Hi) doubles with each row's part of the gradient w.r.t. w_h. Deterministic.
Status indexer_kl_loss(double* row_loss, float* dscore, float* dqi, float* dkj, double* dwh_rows, const float* qi, const float* kj, const float* w_h,
                       const float* target, int B, int nb, int Hi, int Di, cudaStream_t s);
// The selected-set loss (phase 2), otherwise as indexer_kl_loss: per sequence b, mask head m and
// row i, the KL over the key blocks whose bit is set in keep + b * keep_stride, bitmap (M, nb,
// words) as BlockMask::bits (keep_stride 0: one mask for the batch), the target renormalised over
// them; row_loss = the sum over m / (nb * M). gacc: B * nb * nb doubles of scratch (may be the
// teacher target's acc, which is dead by then). Deterministic.
Status indexer_selected_kl_loss(double* row_loss, float* dscore, double* gacc, float* dqi, float* dkj, double* dwh_rows, const float* qi,
                                const float* kj, const float* w_h, const float* target, const uint64_t* keep, int M, int words,
                                int64_t keep_stride, int B, int nb, int Hi, int Di, cudaStream_t s);
// Each non-null weight gradient += alpha times the batch's: dw_q (HD, C) += alpha dqi^T xbar,
// dw_k (Di, C) += alpha dkj^T xbar, dw_h[h] += alpha * the sum of dwh_rows[., h] in row order.
Status indexer_weight_grads(float* dw_q, float* dw_k, float* dw_h, float alpha, const float* dqi, const float* dkj, const double* dwh_rows,
                            const float* xbar, int rows, int C, int Hi, int Di, cudaStream_t s);

}  // namespace cuda_backend
