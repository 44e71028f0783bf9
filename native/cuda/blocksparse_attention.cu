// Block-sparse flash attention on tensor cores (bf16 in, fp32 accumulate), forward and backward.
// Dense causal attention is the same kernels given every causal tile.
//
// Design choices:
// - A CTA owns 64 rows (queries in the forward and dQ kernels, keys in dK/dV) with 4 warps and
//   streams the other operand through shared memory KV rows at a time: KV 64, or 32 at head_dim
//   128 where the device allows less than the 64-row kernels need (99 KB per block on sm_86,
//   sm_89, sm_120). attention_tiles.h holds the shared-memory sizes (host constexpr) and the
//   choice; products through nvcuda::wmma 16x16x16 fragments.
// - Only kept tiles are visited: the forward and dQ passes walk a query tile's key-tile list,
//   the dK/dV pass walks a key tile's query-tile list (the transposed lists); with KV 32 each
//   listed 64-token tile is visited in two halves. No atomics: every output element is written
//   by exactly one CTA, so results are deterministic.
// - Online softmax in fp32 with the running max/sum in shared memory; lse saved for backward
//   in natural log of the scaled scores, like the CPU kernel.
// - Mask blocks of 64 map 1:1 to tiles; a 128 block is 2x2 tiles (make_tile_mask).
// Shapes: q (B, H, T, D), k, v (B, Hkv, T, D), out (B, H, T, D), lse (B, H, T); D in {64, 128}.
#include <mma.h>

#include <cfloat>

#include "attention_tiles.h"
#include "ops_cuda.h"

namespace cuda_backend {

namespace {
using namespace nvcuda;
using attention_tiles::align128;
using attention_tiles::kTile;
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;

template <int D> struct Smem {
  static constexpr int kLd = attention_tiles::ld_bf16(D);   // bf16 Q/K/V rows
  static constexpr int kOLd = attention_tiles::ld_out(D);   // fp32 output rows
};

// Carves consecutive 128-byte-aligned pieces of dynamic shared memory, in the order and sizes
// of attention_tiles.h's *_smem functions.
struct Carver {
  unsigned char* base;
  size_t off = 0;
  template <typename T> __device__ T* take(size_t count) {
    T* p = reinterpret_cast<T*>(base + off);
    off = align128(off + count * sizeof(T));
    return p;
  }
};

// Copies rows [row0, row0 + ROWS) of a (T, D) bf16 matrix into shared memory, zero past T.
template <int D, int ROWS>
__device__ void load_tile(__nv_bfloat16* dst, const __nv_bfloat16* src, int row0, int T) {
  constexpr int kVec = 8;  // 8 bf16 = 16 bytes
  constexpr int kPerRow = D / kVec;
  for (int e = threadIdx.x; e < ROWS * kPerRow; e += blockDim.x) {
    const int r = e / kPerRow, c = (e % kPerRow) * kVec;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (row0 + r < T) val = *reinterpret_cast<const uint4*>(src + (int64_t)(row0 + r) * D + c);
    *reinterpret_cast<uint4*>(dst + r * Smem<D>::kLd + c) = val;
  }
}

template <int ROWS>
__device__ void load_rows_f32(float* dst, const float* src, int row0, int T) {
  for (int r = threadIdx.x; r < ROWS; r += blockDim.x) dst[r] = row0 + r < T ? src[row0 + r] : 0.f;
}

__device__ inline float warp_max(float x) {
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ inline float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// S (16 x COLS, fp32, row stride lds) = A (16 x D rows of a_s) . B^T (B = COLS x D rows of b_s).
template <int D, int COLS>
__device__ void warp_scores(float* s_out, int lds, const __nv_bfloat16* a_s, const __nv_bfloat16* b_s) {
  for (int n = 0; n < COLS / 16; n++) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.f);
    for (int kk = 0; kk < D / 16; kk++) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
      wmma::load_matrix_sync(fa, a_s + kk * 16, Smem<D>::kLd);
      wmma::load_matrix_sync(fb, b_s + n * 16 * Smem<D>::kLd + kk * 16, Smem<D>::kLd);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(s_out + n * 16, acc, lds, wmma::mem_row_major);
  }
}

// Stores a warp's 16 x D fp32 fragments (already staged in shared memory, row stride kOLd) to
// global rows [row0, row0 + 16) of a (T, D) matrix, skipping rows past T.
template <int D>
__device__ void store_rows(float* dst, const float* staged, int row0, int T, float scale) {
  const int lane = threadIdx.x % 32;
  for (int r = 0; r < 16; r++) {
    if (row0 + r >= T) break;
    for (int c = lane; c < D; c += 32) dst[(int64_t)(row0 + r) * D + c] = staged[r * Smem<D>::kOLd + c] * scale;
  }
}

// ================================================================== forward
template <int D, int KV>
__global__ void __launch_bounds__(kThreads) forward_kernel(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k,
                               const __nv_bfloat16* v, int H, int Hkv, int T, DeviceTileMask m, float scale) {
  constexpr int kLd = Smem<D>::kLd, kOLd = Smem<D>::kOLd;
  constexpr int kSLd = attention_tiles::ld_scores(KV), kPLd = attention_tiles::ld_probs(KV);
  constexpr int kPer = KV / 32;  // score columns per lane
  extern __shared__ __align__(128) unsigned char smem[];
  Carver sm{smem};
  __nv_bfloat16* qs = sm.take<__nv_bfloat16>(kTile * kLd);
  __nv_bfloat16* ks = sm.take<__nv_bfloat16>(KV * kLd);
  __nv_bfloat16* vs = sm.take<__nv_bfloat16>(KV * kLd);
  float* ss = sm.take<float>(kTile * kSLd);
  __nv_bfloat16* ps = sm.take<__nv_bfloat16>(kTile * kPLd);
  float* os = sm.take<float>(kTile * kOLd);
  float* row_max = sm.take<float>(kTile);
  float* row_sum = sm.take<float>(kTile);

  const int qt = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int kvh = h / (H / Hkv), mh = h / (H / m.n_mask_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int q0 = qt * kTile;
  const __nv_bfloat16* qb = q + ((int64_t)b * H + h) * T * D;
  const __nv_bfloat16* kb = k + ((int64_t)b * Hkv + kvh) * T * D;
  const __nv_bfloat16* vb = v + ((int64_t)b * Hkv + kvh) * T * D;

  load_tile<D, kTile>(qs, qb, q0, T);
  for (int e = threadIdx.x; e < kTile * kOLd; e += blockDim.x) os[e] = 0.f;
  for (int r = threadIdx.x; r < kTile; r += blockDim.x) { row_max[r] = -FLT_MAX; row_sum[r] = 0.f; }

  const int row = mh * m.n_tiles + qt;
  for (int t = m.kv_ptr[row]; t < m.kv_ptr[row + 1]; t++) {
    for (int sub = 0; sub < kTile; sub += KV) {
      const int k0 = m.kv_idx[t] * kTile + sub;
      if (k0 >= T) break;  // the tail tile's second half (the same for the whole CTA)
      __syncthreads();     // previous K/V fully consumed
      load_tile<D, KV>(ks, kb, k0, T);
      load_tile<D, KV>(vs, vb, k0, T);
      __syncthreads();

      float* s_w = ss + warp * 16 * kSLd;
      warp_scores<D, KV>(s_w, kSLd, qs + warp * 16 * kLd, ks);
      __syncwarp();
      for (int rr = 0; rr < 16; rr++) {
        const int r = warp * 16 + rr, qpos = q0 + r;
        float s[kPer], mx = -FLT_MAX;
        for (int j = 0; j < kPer; j++) {
          const int c = lane + j * 32, kpos = k0 + c;
          s[j] = (kpos <= qpos && kpos < T && qpos < T) ? s_w[rr * kSLd + c] * scale : -FLT_MAX;
          mx = fmaxf(mx, s[j]);
        }
        const float m_old = row_max[r];
        const float m_new = fmaxf(m_old, warp_max(mx));
        float sum = 0.f;
        for (int j = 0; j < kPer; j++) {
          const float p = s[j] == -FLT_MAX ? 0.f : __expf(s[j] - m_new);
          sum += p;
          ps[r * kPLd + lane + j * 32] = __float2bfloat16(p);
        }
        sum = warp_sum(sum);
        const float alpha = m_old == -FLT_MAX ? 0.f : __expf(m_old - m_new);
        for (int c = lane; c < D; c += 32) os[r * kOLd + c] *= alpha;
        if (lane == 0) { row_max[r] = m_new; row_sum[r] = row_sum[r] * alpha + sum; }
      }
      __syncwarp();
      // O (16 x D) += P (16 x KV) . V (KV x D), accumulating on top of the rescaled O.
      for (int n = 0; n < D / 16; n++) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::load_matrix_sync(acc, os + warp * 16 * kOLd + n * 16, kOLd, wmma::mem_row_major);
        for (int kk = 0; kk < KV / 16; kk++) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
          wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
          wmma::load_matrix_sync(fa, ps + warp * 16 * kPLd + kk * 16, kPLd);
          wmma::load_matrix_sync(fb, vs + kk * 16 * kLd + n * 16, kLd);
          wmma::mma_sync(acc, fa, fb, acc);
        }
        wmma::store_matrix_sync(os + warp * 16 * kOLd + n * 16, acc, kOLd, wmma::mem_row_major);
      }
    }
  }
  __syncthreads();
  __nv_bfloat16* ob = out + ((int64_t)b * H + h) * T * D;
  for (int e = threadIdx.x; e < kTile * D; e += blockDim.x) {
    const int r = e / D, c = e % D;
    if (q0 + r >= T) continue;
    const float l = row_sum[r];
    ob[(int64_t)(q0 + r) * D + c] = __float2bfloat16(l > 0.f ? os[r * kOLd + c] / l : 0.f);
  }
  for (int r = threadIdx.x; r < kTile; r += blockDim.x)
    if (q0 + r < T) lse[((int64_t)b * H + h) * T + q0 + r] = row_sum[r] > 0.f ? row_max[r] + logf(row_sum[r]) : -FLT_MAX;
}

// ================================================================== backward
// delta (B, H, T) = rowsum(dout * out): one warp per row.
template <int D>
__global__ void delta_kernel(float* delta, const __nv_bfloat16* dout, const __nv_bfloat16* out, int64_t rows) {
  const int64_t row = (int64_t)blockIdx.x * kWarps + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  float acc = 0.f;
  for (int c = lane; c < D; c += 32) acc += __bfloat162float(dout[row * D + c]) * __bfloat162float(out[row * D + c]);
  acc = warp_sum(acc);
  if (lane == 0) delta[row] = acc;
}

// P and dS of 16 query rows (from q0_rows) against COLS keys (from k0_cols), from S and dP in
// shared memory (row stride lds); P and dS written at row stride ldp.
template <int COLS>
__device__ void probs_and_dscores(__nv_bfloat16* p_w, __nv_bfloat16* ds_w, int ldp, const float* s_w, const float* dp_w, int lds,
                                  const float* lse_rows, const float* delta_rows, int q0_rows, int k0_cols, int T, float scale) {
  const int lane = threadIdx.x % 32;
  for (int rr = 0; rr < 16; rr++) {
    const int qpos = q0_rows + rr;
    for (int c = lane; c < COLS; c += 32) {
      const int kpos = k0_cols + c;
      float p = 0.f, ds = 0.f;
      if (kpos <= qpos && kpos < T && qpos < T) {
        p = __expf(s_w[rr * lds + c] * scale - lse_rows[rr]);
        ds = p * (dp_w[rr * lds + c] - delta_rows[rr]);
      }
      p_w[rr * ldp + c] = __float2bfloat16(p);
      ds_w[rr * ldp + c] = __float2bfloat16(ds);
    }
  }
}

// dK, dV of one key tile: walks the query tiles that keep it (KV query rows at a time), for every
// query head of its GQA group. Each step's S and dP (KV x 64) are split over the warps: KV / 16
// row groups of 16 queries, each row group's 64 keys over 4 / (KV / 16) warps.
template <int D, int KV>
__global__ void __launch_bounds__(kThreads) dkdv_kernel(float* dk, float* dv, const __nv_bfloat16* dout, const __nv_bfloat16* q, const __nv_bfloat16* k,
                            const __nv_bfloat16* v, const float* lse, const float* delta, int H, int Hkv, int T, DeviceTileMask m,
                            float scale) {
  constexpr int kLd = Smem<D>::kLd, kOLd = Smem<D>::kOLd;
  constexpr int kSLd = attention_tiles::ld_scores(kTile), kPLd = attention_tiles::ld_probs(kTile);
  constexpr int kColGroups = kWarps / (KV / 16), kCols = kTile / kColGroups;
  extern __shared__ __align__(128) unsigned char smem[];
  Carver sm{smem};
  __nv_bfloat16* ks = sm.take<__nv_bfloat16>(kTile * kLd);
  __nv_bfloat16* vs = sm.take<__nv_bfloat16>(kTile * kLd);
  __nv_bfloat16* qs = sm.take<__nv_bfloat16>(KV * kLd);
  __nv_bfloat16* dos = sm.take<__nv_bfloat16>(KV * kLd);
  float* ss = sm.take<float>(KV * kSLd);
  float* dps = sm.take<float>(KV * kSLd);
  __nv_bfloat16* ps = sm.take<__nv_bfloat16>(KV * kPLd);
  __nv_bfloat16* dss = sm.take<__nv_bfloat16>(KV * kPLd);
  float* lse_s = sm.take<float>(KV);
  float* delta_s = sm.take<float>(KV);

  const int kt = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32;
  const int rg = warp / kColGroups, cg = warp % kColGroups;  // this warp's query row group and key columns
  const int k0 = kt * kTile, group = H / Hkv;
  load_tile<D, kTile>(ks, k + ((int64_t)b * Hkv + kvh) * T * D, k0, T);
  load_tile<D, kTile>(vs, v + ((int64_t)b * Hkv + kvh) * T * D, k0, T);

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> dk_acc[D / 16], dv_acc[D / 16];
  for (int n = 0; n < D / 16; n++) { wmma::fill_fragment(dk_acc[n], 0.f); wmma::fill_fragment(dv_acc[n], 0.f); }

  for (int g = 0; g < group; g++) {
    const int h = kvh * group + g, mh = h / (H / m.n_mask_heads);
    const int64_t bh = (int64_t)b * H + h;
    const int col = mh * m.n_tiles + kt;
    for (int t = m.q_ptr[col]; t < m.q_ptr[col + 1]; t++) {
      for (int sub = 0; sub < kTile; sub += KV) {
        const int q0 = m.q_idx[t] * kTile + sub;
        if (q0 >= T) break;  // the tail tile's second half (the same for the whole CTA)
        __syncthreads();
        load_tile<D, KV>(qs, q + bh * T * D, q0, T);
        load_tile<D, KV>(dos, dout + bh * T * D, q0, T);
        load_rows_f32<KV>(lse_s, lse + bh * T, q0, T);
        load_rows_f32<KV>(delta_s, delta + bh * T, q0, T);
        __syncthreads();
        // Each warp: S and dP for its 16 query rows against its kCols keys, then P and dS.
        float* s_w = ss + rg * 16 * kSLd + cg * kCols;
        float* dp_w = dps + rg * 16 * kSLd + cg * kCols;
        warp_scores<D, kCols>(s_w, kSLd, qs + rg * 16 * kLd, ks + cg * kCols * kLd);
        warp_scores<D, kCols>(dp_w, kSLd, dos + rg * 16 * kLd, vs + cg * kCols * kLd);
        __syncwarp();
        probs_and_dscores<kCols>(ps + rg * 16 * kPLd + cg * kCols, dss + rg * 16 * kPLd + cg * kCols, kPLd, s_w, dp_w, kSLd, lse_s + rg * 16,
                                 delta_s + rg * 16, q0 + rg * 16, k0 + cg * kCols, T, scale);
        __syncthreads();
        // Each warp owns 16 key rows: dV += P^T dO, dK += dS^T Q (over the KV query rows).
        for (int kk = 0; kk < KV / 16; kk++) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major> pt, dst;
          wmma::load_matrix_sync(pt, ps + kk * 16 * kPLd + warp * 16, kPLd);
          wmma::load_matrix_sync(dst, dss + kk * 16 * kPLd + warp * 16, kPLd);
          for (int n = 0; n < D / 16; n++) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fdo, fq;
            wmma::load_matrix_sync(fdo, dos + kk * 16 * kLd + n * 16, kLd);
            wmma::load_matrix_sync(fq, qs + kk * 16 * kLd + n * 16, kLd);
            wmma::mma_sync(dv_acc[n], pt, fdo, dv_acc[n]);
            wmma::mma_sync(dk_acc[n], dst, fq, dk_acc[n]);
          }
        }
      }
    }
  }
  __syncthreads();
  // Stage through the K/V tiles, no longer read (attention_tiles::staging_fits).
  float* stage = reinterpret_cast<float*>(ks) + warp * 16 * kOLd;
  float* dk_out = dk + ((int64_t)b * Hkv + kvh) * T * D;
  float* dv_out = dv + ((int64_t)b * Hkv + kvh) * T * D;
  for (int n = 0; n < D / 16; n++) wmma::store_matrix_sync(stage + n * 16, dk_acc[n], kOLd, wmma::mem_row_major);
  __syncwarp();
  store_rows<D>(dk_out, stage, k0 + warp * 16, T, scale);
  __syncwarp();
  for (int n = 0; n < D / 16; n++) wmma::store_matrix_sync(stage + n * 16, dv_acc[n], kOLd, wmma::mem_row_major);
  __syncwarp();
  store_rows<D>(dv_out, stage, k0 + warp * 16, T, 1.f);
}

// dQ of one query tile: walks its key-tile list (KV keys at a time), recomputing P and dS.
template <int D, int KV>
__global__ void __launch_bounds__(kThreads) dq_kernel(float* dq, const __nv_bfloat16* dout, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                          const float* lse, const float* delta, int H, int Hkv, int T, DeviceTileMask m, float scale) {
  constexpr int kLd = Smem<D>::kLd, kOLd = Smem<D>::kOLd;
  constexpr int kSLd = attention_tiles::ld_scores(KV), kPLd = attention_tiles::ld_probs(KV);
  extern __shared__ __align__(128) unsigned char smem[];
  Carver sm{smem};
  __nv_bfloat16* qs = sm.take<__nv_bfloat16>(kTile * kLd);
  __nv_bfloat16* dos = sm.take<__nv_bfloat16>(kTile * kLd);
  __nv_bfloat16* ks = sm.take<__nv_bfloat16>(KV * kLd);
  __nv_bfloat16* vs = sm.take<__nv_bfloat16>(KV * kLd);
  float* ss = sm.take<float>(kTile * kSLd);
  float* dps = sm.take<float>(kTile * kSLd);
  __nv_bfloat16* ps = sm.take<__nv_bfloat16>(kTile * kPLd);
  __nv_bfloat16* dss = sm.take<__nv_bfloat16>(kTile * kPLd);
  float* lse_s = sm.take<float>(kTile);
  float* delta_s = sm.take<float>(kTile);

  const int qt = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int kvh = h / (H / Hkv), mh = h / (H / m.n_mask_heads);
  const int warp = threadIdx.x / 32;
  const int q0 = qt * kTile;
  const int64_t bh = (int64_t)b * H + h;
  load_tile<D, kTile>(qs, q + bh * T * D, q0, T);
  load_tile<D, kTile>(dos, dout + bh * T * D, q0, T);
  load_rows_f32<kTile>(lse_s, lse + bh * T, q0, T);
  load_rows_f32<kTile>(delta_s, delta + bh * T, q0, T);

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> dq_acc[D / 16];
  for (int n = 0; n < D / 16; n++) wmma::fill_fragment(dq_acc[n], 0.f);

  const int row = mh * m.n_tiles + qt;
  for (int t = m.kv_ptr[row]; t < m.kv_ptr[row + 1]; t++) {
    for (int sub = 0; sub < kTile; sub += KV) {
      const int k0 = m.kv_idx[t] * kTile + sub;
      if (k0 >= T) break;
      __syncthreads();
      load_tile<D, KV>(ks, k + ((int64_t)b * Hkv + kvh) * T * D, k0, T);
      load_tile<D, KV>(vs, v + ((int64_t)b * Hkv + kvh) * T * D, k0, T);
      __syncthreads();
      warp_scores<D, KV>(ss + warp * 16 * kSLd, kSLd, qs + warp * 16 * kLd, ks);
      warp_scores<D, KV>(dps + warp * 16 * kSLd, kSLd, dos + warp * 16 * kLd, vs);
      __syncwarp();
      probs_and_dscores<KV>(ps + warp * 16 * kPLd, dss + warp * 16 * kPLd, kPLd, ss + warp * 16 * kSLd, dps + warp * 16 * kSLd, kSLd,
                            lse_s + warp * 16, delta_s + warp * 16, q0 + warp * 16, k0, T, scale);
      __syncwarp();
      // dQ (16 x D) += dS (16 x KV) . K (KV x D)
      for (int kk = 0; kk < KV / 16; kk++) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fds;
        wmma::load_matrix_sync(fds, dss + warp * 16 * kPLd + kk * 16, kPLd);
        for (int n = 0; n < D / 16; n++) {
          wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fk;
          wmma::load_matrix_sync(fk, ks + kk * 16 * kLd + n * 16, kLd);
          wmma::mma_sync(dq_acc[n], fds, fk, dq_acc[n]);
        }
      }
    }
  }
  __syncthreads();
  // Stage through the Q/dO tiles, no longer read (attention_tiles::staging_fits).
  float* stage = reinterpret_cast<float*>(qs) + warp * 16 * kOLd;
  for (int n = 0; n < D / 16; n++) wmma::store_matrix_sync(stage + n * 16, dq_acc[n], kOLd, wmma::mem_row_major);
  __syncwarp();
  store_rows<D>(dq + bh * T * D, stage, q0 + warp * 16, T, scale);
}

Status check_shapes(int B, int H, int Hkv, int T, int D, const DeviceTileMask& m) {
  if (D != 64 && D != 128) return Status::error("blocksparse attention (cuda): head_dim " + std::to_string(D) + " is not supported (64 or 128)");
  if (Hkv <= 0 || H % Hkv != 0) return Status::error("blocksparse attention (cuda): H must be a multiple of Hkv");
  if (m.n_mask_heads <= 0 || H % m.n_mask_heads != 0) return Status::error("blocksparse attention (cuda): mask heads must divide H");
  if (m.T != T || m.n_tiles != ceil_div(T, kTile)) return Status::error("blocksparse attention (cuda): mask was built for another sequence length");
  return Status::success();
}

// The variant (KV) for head_dim D on the current device, or the reason none fits, before any launch.
Status choose_tiles(int* kv, int D, int forced) {
  size_t limit = 0;
  STATUS_TRY(device_smem_limit(&limit));
  const attention_tiles::Plan p = attention_tiles::plan(D, limit, forced);
  if (!p.kv) return Status::error("blocksparse attention (cuda): " + p.reason);
  *kv = p.kv;
  return Status::success();
}

template <int D, int KV>
Status forward_launch(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, int B, int H,
                      int Hkv, int T, const DeviceTileMask& m, cudaStream_t s) {
  constexpr size_t bytes = attention_tiles::forward_smem(D, KV);
  CUDA_TRY(cudaFuncSetAttribute(forward_kernel<D, KV>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
  dim3 grid(m.n_tiles, H, B);
  forward_kernel<D, KV><<<grid, kThreads, bytes, s>>>(out, lse, q, k, v, H, Hkv, T, m, 1.f / sqrtf((float)D));
  CUDA_TRY_LAUNCH();
  return Status::success();
}

template <int D, int KV>
Status backward_launch(float* dq, float* dk, float* dv, const __nv_bfloat16* dout, const __nv_bfloat16* q, const __nv_bfloat16* k,
                       const __nv_bfloat16* v, const __nv_bfloat16* out, const float* lse, float* delta, int B, int H, int Hkv, int T,
                       const DeviceTileMask& m, cudaStream_t s) {
  const int64_t rows = (int64_t)B * H * T;
  delta_kernel<D><<<(unsigned)((rows + kWarps - 1) / kWarps), kThreads, 0, s>>>(delta, dout, out, rows);
  CUDA_TRY_LAUNCH();
  constexpr size_t dkdv_bytes = attention_tiles::dkdv_smem(D, KV), dq_bytes = attention_tiles::dq_smem(D, KV);
  const float scale = 1.f / sqrtf((float)D);
  CUDA_TRY(cudaFuncSetAttribute(dkdv_kernel<D, KV>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dkdv_bytes));
  CUDA_TRY(cudaFuncSetAttribute(dq_kernel<D, KV>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dq_bytes));
  dkdv_kernel<D, KV><<<dim3(m.n_tiles, Hkv, B), kThreads, dkdv_bytes, s>>>(dk, dv, dout, q, k, v, lse, delta, H, Hkv, T, m, scale);
  CUDA_TRY_LAUNCH();
  dq_kernel<D, KV><<<dim3(m.n_tiles, H, B), kThreads, dq_bytes, s>>>(dq, dout, q, k, v, lse, delta, H, Hkv, T, m, scale);
  CUDA_TRY_LAUNCH();
  return Status::success();
}
}  // namespace

// ================================================================== tile masks
Status make_tile_mask(TileMask* out, const std::vector<uint64_t>& bits, int T, int block_size, int n_mask_heads) {
  if (T <= 0 || n_mask_heads <= 0) return Status::error("tile mask: T and mask heads must be positive");
  const int n_tiles = ceil_div(T, kTile);
  const bool dense = bits.empty();
  if (!dense && block_size != 64 && block_size != 128)
    return Status::error("blocksparse attention (cuda): block_size " + std::to_string(block_size) + " is not supported (64 or 128)");
  const int per = dense ? 1 : block_size / kTile;          // tiles per mask block
  const int n_blocks = dense ? n_tiles : ceil_div(T, block_size);
  const int words = (n_blocks + 63) / 64;
  if (!dense && bits.size() != (size_t)n_mask_heads * n_blocks * words) return Status::error("tile mask: bitmap size does not match T / block_size");
  TileMask m;
  m.T = T;
  m.n_tiles = n_tiles;
  m.n_mask_heads = n_mask_heads;
  auto kept = [&](int head, int qt, int kt) {
    if (kt > qt) return false;
    if (dense) return true;
    const int qb = qt / per, kb = kt / per;
    return ((bits[((size_t)head * n_blocks + qb) * words + kb / 64] >> (kb % 64)) & 1) != 0;
  };
  m.kv_ptr.push_back(0);
  for (int hd = 0; hd < n_mask_heads; hd++)
    for (int qt = 0; qt < n_tiles; qt++) {
      for (int kt = 0; kt <= qt; kt++)
        if (kept(hd, qt, kt)) m.kv_idx.push_back(kt);
      m.kv_ptr.push_back((int32_t)m.kv_idx.size());
    }
  m.q_ptr.push_back(0);
  for (int hd = 0; hd < n_mask_heads; hd++)
    for (int kt = 0; kt < n_tiles; kt++) {
      for (int qt = kt; qt < n_tiles; qt++)
        if (kept(hd, qt, kt)) m.q_idx.push_back(qt);
      m.q_ptr.push_back((int32_t)m.q_idx.size());
    }
  *out = std::move(m);
  return Status::success();
}

Status upload_tile_mask(DeviceTileMask* out, const TileMask& m) {
  DeviceTileMask d;
  d.T = m.T;
  d.n_tiles = m.n_tiles;
  d.n_mask_heads = m.n_mask_heads;
  auto upload = [](int32_t** dst, const std::vector<int32_t>& src) -> Status {
    const size_t bytes = std::max<size_t>(1, src.size()) * sizeof(int32_t);
    CUDA_TRY(cudaMalloc(dst, bytes));
    if (!src.empty()) CUDA_TRY(cudaMemcpy(*dst, src.data(), src.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
    return Status::success();
  };
  Status st;
  if ((st = upload(&d.kv_ptr, m.kv_ptr)).ok && (st = upload(&d.kv_idx, m.kv_idx)).ok && (st = upload(&d.q_ptr, m.q_ptr)).ok &&
      (st = upload(&d.q_idx, m.q_idx)).ok) {
    *out = d;
    return st;
  }
  free_tile_mask(&d);
  return st;
}

void free_tile_mask(DeviceTileMask* m) {
  cudaFree(m->kv_ptr);
  cudaFree(m->kv_idx);
  cudaFree(m->q_ptr);
  cudaFree(m->q_idx);
  *m = DeviceTileMask{};
}

// ================================================================== launchers
Status blocksparse_attention_forward(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                                     int B, int H, int Hkv, int T, int D, const DeviceTileMask& m, cudaStream_t s, int kv_tile) {
  STATUS_TRY(check_shapes(B, H, Hkv, T, D, m));
  int kv = 0;
  STATUS_TRY(choose_tiles(&kv, D, kv_tile));
  if (D == 64) return forward_launch<64, 64>(out, lse, q, k, v, B, H, Hkv, T, m, s);
  return kv == 64 ? forward_launch<128, 64>(out, lse, q, k, v, B, H, Hkv, T, m, s) : forward_launch<128, 32>(out, lse, q, k, v, B, H, Hkv, T, m, s);
}

Status blocksparse_attention_backward(float* dq, float* dk, float* dv, const __nv_bfloat16* dout, const __nv_bfloat16* q, const __nv_bfloat16* k,
                                      const __nv_bfloat16* v, const __nv_bfloat16* out, const float* lse, float* scratch, int B, int H, int Hkv,
                                      int T, int D, const DeviceTileMask& m, cudaStream_t s, int kv_tile) {
  STATUS_TRY(check_shapes(B, H, Hkv, T, D, m));
  int kv = 0;
  STATUS_TRY(choose_tiles(&kv, D, kv_tile));
  if (D == 64) return backward_launch<64, 64>(dq, dk, dv, dout, q, k, v, out, lse, scratch, B, H, Hkv, T, m, s);
  return kv == 64 ? backward_launch<128, 64>(dq, dk, dv, dout, q, k, v, out, lse, scratch, B, H, Hkv, T, m, s)
                  : backward_launch<128, 32>(dq, dk, dv, dout, q, k, v, out, lse, scratch, B, H, Hkv, T, m, s);
}

}  // namespace cuda_backend
