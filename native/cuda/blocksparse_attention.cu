// Block-sparse flash attention on tensor cores (bf16 in, fp32 accumulate), forward and backward.
// Dense causal attention is the same kernels given every causal tile.
//
// Design choices:
// - Tiles of 64 queries x 64 keys, 4 warps per CTA, each warp owning 16 query rows (forward,
//   dQ) or 16 key rows (dK/dV); products through nvcuda::wmma 16x16x16 fragments.
// - Only kept tiles are visited: the forward and dQ passes walk a query tile's key-tile list,
//   the dK/dV pass walks a key tile's query-tile list (the transposed lists). No atomics:
//   every output element is written by exactly one CTA, so results are deterministic.
// - Online softmax in fp32 with the running max/sum in shared memory; lse saved for backward
//   in natural log of the scaled scores, like the CPU kernel.
// - Mask blocks of 64 map 1:1 to tiles; a 128 block is 2x2 tiles (make_tile_mask).
// Shapes: q (B, H, T, D), k, v (B, Hkv, T, D), out (B, H, T, D), lse (B, H, T); D in {64, 128}.
#include <mma.h>

#include <cfloat>

#include "ops_cuda.h"

namespace cuda_backend {

namespace {
using namespace nvcuda;
constexpr int kTile = 64;
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kSLd = kTile + 4;        // fp32 score rows
constexpr int kPLd = kTile + 8;        // bf16 probability rows

template <int D> struct Smem {
  static constexpr int kLd = D + 8;    // bf16 Q/K/V rows (16-byte aligned, bank-conflict padding)
  static constexpr int kOLd = D + 4;   // fp32 output rows
};

__host__ __device__ constexpr size_t align128(size_t x) { return (x + 127) & ~size_t(127); }

// Copies rows [row0, row0 + 64) of a (T, D) bf16 matrix into shared memory, zero past T.
template <int D>
__device__ void load_tile(__nv_bfloat16* dst, const __nv_bfloat16* src, int row0, int T) {
  constexpr int kVec = 8;  // 8 bf16 = 16 bytes
  constexpr int kPerRow = D / kVec;
  for (int e = threadIdx.x; e < kTile * kPerRow; e += blockDim.x) {
    const int r = e / kPerRow, c = (e % kPerRow) * kVec;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (row0 + r < T) val = *reinterpret_cast<const uint4*>(src + (int64_t)(row0 + r) * D + c);
    *reinterpret_cast<uint4*>(dst + r * Smem<D>::kLd + c) = val;
  }
}

__device__ inline float warp_max(float x) {
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ inline float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// S (16 x 64, fp32, row stride kSLd) = A (16 x D rows of a_s) . B^T (B = 64 x D rows of b_s).
template <int D>
__device__ void warp_scores(float* s_out, const __nv_bfloat16* a_s, const __nv_bfloat16* b_s) {
  for (int n = 0; n < kTile / 16; n++) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.f);
    for (int kk = 0; kk < D / 16; kk++) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
      wmma::load_matrix_sync(fa, a_s + kk * 16, Smem<D>::kLd);
      wmma::load_matrix_sync(fb, b_s + n * 16 * Smem<D>::kLd + kk * 16, Smem<D>::kLd);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(s_out + n * 16, acc, kSLd, wmma::mem_row_major);
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
template <int D>
__global__ void __launch_bounds__(kThreads) forward_kernel(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k,
                               const __nv_bfloat16* v, int H, int Hkv, int T, DeviceTileMask m, float scale) {
  constexpr int kLd = Smem<D>::kLd, kOLd = Smem<D>::kOLd;
  extern __shared__ __align__(128) unsigned char smem[];
  size_t off = 0;
  auto take = [&](size_t bytes) { unsigned char* p = smem + off; off = align128(off + bytes); return p; };
  __nv_bfloat16* qs = (__nv_bfloat16*)take(kTile * kLd * 2);
  __nv_bfloat16* ks = (__nv_bfloat16*)take(kTile * kLd * 2);
  __nv_bfloat16* vs = (__nv_bfloat16*)take(kTile * kLd * 2);
  float* ss = (float*)take(kTile * kSLd * 4);
  __nv_bfloat16* ps = (__nv_bfloat16*)take(kTile * kPLd * 2);
  float* os = (float*)take(kTile * kOLd * 4);
  float* row_max = (float*)take(kTile * 4);
  float* row_sum = (float*)take(kTile * 4);

  const int qt = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int kvh = h / (H / Hkv), mh = h / (H / m.n_mask_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int q0 = qt * kTile;
  const __nv_bfloat16* qb = q + ((int64_t)b * H + h) * T * D;
  const __nv_bfloat16* kb = k + ((int64_t)b * Hkv + kvh) * T * D;
  const __nv_bfloat16* vb = v + ((int64_t)b * Hkv + kvh) * T * D;

  load_tile<D>(qs, qb, q0, T);
  for (int e = threadIdx.x; e < kTile * kOLd; e += blockDim.x) os[e] = 0.f;
  for (int r = threadIdx.x; r < kTile; r += blockDim.x) { row_max[r] = -FLT_MAX; row_sum[r] = 0.f; }

  const int row = mh * m.n_tiles + qt;
  for (int t = m.kv_ptr[row]; t < m.kv_ptr[row + 1]; t++) {
    const int k0 = m.kv_idx[t] * kTile;
    __syncthreads();  // previous tile's K/V fully consumed
    load_tile<D>(ks, kb, k0, T);
    load_tile<D>(vs, vb, k0, T);
    __syncthreads();

    float* s_w = ss + warp * 16 * kSLd;
    warp_scores<D>(s_w, qs + warp * 16 * kLd, ks);
    __syncwarp();
    for (int rr = 0; rr < 16; rr++) {
      const int r = warp * 16 + rr, qpos = q0 + r;
      float s[2];
      for (int half = 0; half < 2; half++) {
        const int c = lane + half * 32, kpos = k0 + c;
        s[half] = (kpos <= qpos && kpos < T && qpos < T) ? s_w[rr * kSLd + c] * scale : -FLT_MAX;
      }
      const float m_old = row_max[r];
      const float m_new = fmaxf(m_old, warp_max(fmaxf(s[0], s[1])));
      float sum = 0.f;
      for (int half = 0; half < 2; half++) {
        const float p = s[half] == -FLT_MAX ? 0.f : __expf(s[half] - m_new);
        sum += p;
        ps[r * kPLd + lane + half * 32] = __float2bfloat16(p);
      }
      sum = warp_sum(sum);
      const float alpha = m_old == -FLT_MAX ? 0.f : __expf(m_old - m_new);
      for (int c = lane; c < D; c += 32) os[r * kOLd + c] *= alpha;
      if (lane == 0) { row_max[r] = m_new; row_sum[r] = row_sum[r] * alpha + sum; }
    }
    __syncwarp();
    // O (16 x D) += P (16 x 64) . V (64 x D), accumulating on top of the rescaled O.
    for (int n = 0; n < D / 16; n++) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, os + warp * 16 * kOLd + n * 16, kOLd, wmma::mem_row_major);
      for (int kk = 0; kk < kTile / 16; kk++) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, ps + warp * 16 * kPLd + kk * 16, kPLd);
        wmma::load_matrix_sync(fb, vs + kk * 16 * kLd + n * 16, kLd);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      wmma::store_matrix_sync(os + warp * 16 * kOLd + n * 16, acc, kOLd, wmma::mem_row_major);
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

// P and dS of one warp's 16 query rows against one key tile, from S and dP in shared memory.
template <int D>
__device__ void probs_and_dscores(__nv_bfloat16* p_w, __nv_bfloat16* ds_w, const float* s_w, const float* dp_w, const float* lse_rows,
                                  const float* delta_rows, int q0_rows, int k0, int T, float scale) {
  const int lane = threadIdx.x % 32;
  for (int rr = 0; rr < 16; rr++) {
    const int qpos = q0_rows + rr;
    for (int half = 0; half < 2; half++) {
      const int c = lane + half * 32, kpos = k0 + c;
      float p = 0.f, ds = 0.f;
      if (kpos <= qpos && kpos < T && qpos < T) {
        p = __expf(s_w[rr * kSLd + c] * scale - lse_rows[rr]);
        ds = p * (dp_w[rr * kSLd + c] - delta_rows[rr]);
      }
      p_w[rr * kPLd + c] = __float2bfloat16(p);
      ds_w[rr * kPLd + c] = __float2bfloat16(ds);
    }
  }
}

// Shared memory of the backward kernels: Q, dO, K, V tiles; S and dP (fp32, contiguous so they
// double as the output staging area); P and dS (bf16); lse and delta of the 64 query rows.
template <int D>
struct BackwardSmem {
  __nv_bfloat16 *qs, *dos, *ks, *vs, *ps, *dss;
  float *ss, *dps, *lse_s, *delta_s;
  static size_t bytes() {
    constexpr int kLd = Smem<D>::kLd;
    return 4 * align128(kTile * kLd * 2) + align128(2 * kTile * kSLd * 4) + 2 * align128(kTile * kPLd * 2) + 2 * align128(kTile * 4);
  }
  __device__ void carve(unsigned char* smem) {
    constexpr int kLd = Smem<D>::kLd;
    size_t off = 0;
    auto take = [&](size_t n) { unsigned char* p = smem + off; off = align128(off + n); return p; };
    qs = (__nv_bfloat16*)take(kTile * kLd * 2);
    dos = (__nv_bfloat16*)take(kTile * kLd * 2);
    ks = (__nv_bfloat16*)take(kTile * kLd * 2);
    vs = (__nv_bfloat16*)take(kTile * kLd * 2);
    ss = (float*)take(2 * kTile * kSLd * 4);
    dps = ss + kTile * kSLd;
    ps = (__nv_bfloat16*)take(kTile * kPLd * 2);
    dss = (__nv_bfloat16*)take(kTile * kPLd * 2);
    lse_s = (float*)take(kTile * 4);
    delta_s = (float*)take(kTile * 4);
  }
};

__device__ void load_rows_f32(float* dst, const float* src, int row0, int T) {
  for (int r = threadIdx.x; r < kTile; r += blockDim.x) dst[r] = row0 + r < T ? src[row0 + r] : 0.f;
}

// dK, dV of one key tile: walks the query tiles that keep it, for every query head of its GQA group.
template <int D>
__global__ void __launch_bounds__(kThreads) dkdv_kernel(float* dk, float* dv, const __nv_bfloat16* dout, const __nv_bfloat16* q, const __nv_bfloat16* k,
                            const __nv_bfloat16* v, const float* lse, const float* delta, int H, int Hkv, int T, DeviceTileMask m,
                            float scale) {
  constexpr int kLd = Smem<D>::kLd, kOLd = Smem<D>::kOLd;
  extern __shared__ __align__(128) unsigned char smem[];
  BackwardSmem<D> sm;
  sm.carve(smem);
  const int kt = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32;
  const int k0 = kt * kTile, group = H / Hkv;
  load_tile<D>(sm.ks, k + ((int64_t)b * Hkv + kvh) * T * D, k0, T);
  load_tile<D>(sm.vs, v + ((int64_t)b * Hkv + kvh) * T * D, k0, T);

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> dk_acc[D / 16], dv_acc[D / 16];
  for (int n = 0; n < D / 16; n++) { wmma::fill_fragment(dk_acc[n], 0.f); wmma::fill_fragment(dv_acc[n], 0.f); }

  for (int g = 0; g < group; g++) {
    const int h = kvh * group + g, mh = h / (H / m.n_mask_heads);
    const int64_t bh = (int64_t)b * H + h;
    const int col = mh * m.n_tiles + kt;
    for (int t = m.q_ptr[col]; t < m.q_ptr[col + 1]; t++) {
      const int q0 = m.q_idx[t] * kTile;
      __syncthreads();
      load_tile<D>(sm.qs, q + bh * T * D, q0, T);
      load_tile<D>(sm.dos, dout + bh * T * D, q0, T);
      load_rows_f32(sm.lse_s, lse + bh * T, q0, T);
      load_rows_f32(sm.delta_s, delta + bh * T, q0, T);
      __syncthreads();
      // Each warp: S and dP for its 16 query rows against the 64 keys, then P and dS.
      warp_scores<D>(sm.ss + warp * 16 * kSLd, sm.qs + warp * 16 * kLd, sm.ks);
      warp_scores<D>(sm.dps + warp * 16 * kSLd, sm.dos + warp * 16 * kLd, sm.vs);
      __syncwarp();
      probs_and_dscores<D>(sm.ps + warp * 16 * kPLd, sm.dss + warp * 16 * kPLd, sm.ss + warp * 16 * kSLd, sm.dps + warp * 16 * kSLd,
                           sm.lse_s + warp * 16, sm.delta_s + warp * 16, q0 + warp * 16, k0, T, scale);
      __syncthreads();
      // Each warp owns 16 key rows: dV += P^T dO, dK += dS^T Q (over the 64 query rows).
      for (int kk = 0; kk < kTile / 16; kk++) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major> pt, dst;
        wmma::load_matrix_sync(pt, sm.ps + kk * 16 * kPLd + warp * 16, kPLd);
        wmma::load_matrix_sync(dst, sm.dss + kk * 16 * kPLd + warp * 16, kPLd);
        for (int n = 0; n < D / 16; n++) {
          wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fdo, fq;
          wmma::load_matrix_sync(fdo, sm.dos + kk * 16 * kLd + n * 16, kLd);
          wmma::load_matrix_sync(fq, sm.qs + kk * 16 * kLd + n * 16, kLd);
          wmma::mma_sync(dv_acc[n], pt, fdo, dv_acc[n]);
          wmma::mma_sync(dk_acc[n], dst, fq, dk_acc[n]);
        }
      }
    }
  }
  __syncthreads();
  // Stage through the S/dP area (2 * 64 * kSLd floats >= 64 * kOLd for D <= 128).
  float* stage = sm.ss + warp * 16 * kOLd;
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

// dQ of one query tile: walks its key-tile list, recomputing P and dS.
template <int D>
__global__ void __launch_bounds__(kThreads) dq_kernel(float* dq, const __nv_bfloat16* dout, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                          const float* lse, const float* delta, int H, int Hkv, int T, DeviceTileMask m, float scale) {
  constexpr int kLd = Smem<D>::kLd, kOLd = Smem<D>::kOLd;
  extern __shared__ __align__(128) unsigned char smem[];
  BackwardSmem<D> sm;
  sm.carve(smem);
  const int qt = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int kvh = h / (H / Hkv), mh = h / (H / m.n_mask_heads);
  const int warp = threadIdx.x / 32;
  const int q0 = qt * kTile;
  const int64_t bh = (int64_t)b * H + h;
  load_tile<D>(sm.qs, q + bh * T * D, q0, T);
  load_tile<D>(sm.dos, dout + bh * T * D, q0, T);
  load_rows_f32(sm.lse_s, lse + bh * T, q0, T);
  load_rows_f32(sm.delta_s, delta + bh * T, q0, T);

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> dq_acc[D / 16];
  for (int n = 0; n < D / 16; n++) wmma::fill_fragment(dq_acc[n], 0.f);

  const int row = mh * m.n_tiles + qt;
  for (int t = m.kv_ptr[row]; t < m.kv_ptr[row + 1]; t++) {
    const int k0 = m.kv_idx[t] * kTile;
    __syncthreads();
    load_tile<D>(sm.ks, k + ((int64_t)b * Hkv + kvh) * T * D, k0, T);
    load_tile<D>(sm.vs, v + ((int64_t)b * Hkv + kvh) * T * D, k0, T);
    __syncthreads();
    warp_scores<D>(sm.ss + warp * 16 * kSLd, sm.qs + warp * 16 * kLd, sm.ks);
    warp_scores<D>(sm.dps + warp * 16 * kSLd, sm.dos + warp * 16 * kLd, sm.vs);
    __syncwarp();
    probs_and_dscores<D>(sm.ps + warp * 16 * kPLd, sm.dss + warp * 16 * kPLd, sm.ss + warp * 16 * kSLd, sm.dps + warp * 16 * kSLd,
                         sm.lse_s + warp * 16, sm.delta_s + warp * 16, q0 + warp * 16, k0, T, scale);
    __syncwarp();
    // dQ (16 x D) += dS (16 x 64) . K (64 x D)
    for (int kk = 0; kk < kTile / 16; kk++) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fds;
      wmma::load_matrix_sync(fds, sm.dss + warp * 16 * kPLd + kk * 16, kPLd);
      for (int n = 0; n < D / 16; n++) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fk;
        wmma::load_matrix_sync(fk, sm.ks + kk * 16 * kLd + n * 16, kLd);
        wmma::mma_sync(dq_acc[n], fds, fk, dq_acc[n]);
      }
    }
  }
  __syncthreads();
  float* stage = sm.ss + warp * 16 * kOLd;
  for (int n = 0; n < D / 16; n++) wmma::store_matrix_sync(stage + n * 16, dq_acc[n], kOLd, wmma::mem_row_major);
  __syncwarp();
  store_rows<D>(dq + bh * T * D, stage, q0 + warp * 16, T, scale);
}

template <int D>
size_t forward_smem_bytes() {
  constexpr int kLd = Smem<D>::kLd, kOLd = Smem<D>::kOLd;
  return 3 * align128(kTile * kLd * 2) + align128(kTile * kSLd * 4) + align128(kTile * kPLd * 2) + align128(kTile * kOLd * 4) + 2 * align128(kTile * 4);
}

Status check_shapes(int B, int H, int Hkv, int T, int D, const DeviceTileMask& m) {
  if (D != 64 && D != 128) return Status::error("blocksparse attention (cuda): head_dim " + std::to_string(D) + " is not supported (64 or 128)");
  if (Hkv <= 0 || H % Hkv != 0) return Status::error("blocksparse attention (cuda): H must be a multiple of Hkv");
  if (m.n_mask_heads <= 0 || H % m.n_mask_heads != 0) return Status::error("blocksparse attention (cuda): mask heads must divide H");
  if (m.T != T || m.n_tiles != ceil_div(T, kTile)) return Status::error("blocksparse attention (cuda): mask was built for another sequence length");
  return Status::success();
}

template <int D>
Status forward_launch(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, int B, int H,
                      int Hkv, int T, const DeviceTileMask& m, cudaStream_t s) {
  const size_t bytes = forward_smem_bytes<D>();
  CUDA_TRY(cudaFuncSetAttribute(forward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
  dim3 grid(m.n_tiles, H, B);
  forward_kernel<D><<<grid, kThreads, bytes, s>>>(out, lse, q, k, v, H, Hkv, T, m, 1.f / sqrtf((float)D));
  CUDA_TRY_LAUNCH();
  return Status::success();
}

template <int D>
Status backward_launch(float* dq, float* dk, float* dv, const __nv_bfloat16* dout, const __nv_bfloat16* q, const __nv_bfloat16* k,
                       const __nv_bfloat16* v, const __nv_bfloat16* out, const float* lse, float* delta, int B, int H, int Hkv, int T,
                       const DeviceTileMask& m, cudaStream_t s) {
  const int64_t rows = (int64_t)B * H * T;
  delta_kernel<D><<<(unsigned)((rows + kWarps - 1) / kWarps), kThreads, 0, s>>>(delta, dout, out, rows);
  CUDA_TRY_LAUNCH();
  const size_t bytes = BackwardSmem<D>::bytes();
  const float scale = 1.f / sqrtf((float)D);
  CUDA_TRY(cudaFuncSetAttribute(dkdv_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
  CUDA_TRY(cudaFuncSetAttribute(dq_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
  dkdv_kernel<D><<<dim3(m.n_tiles, Hkv, B), kThreads, bytes, s>>>(dk, dv, dout, q, k, v, lse, delta, H, Hkv, T, m, scale);
  CUDA_TRY_LAUNCH();
  dq_kernel<D><<<dim3(m.n_tiles, H, B), kThreads, bytes, s>>>(dq, dout, q, k, v, lse, delta, H, Hkv, T, m, scale);
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
                                     int B, int H, int Hkv, int T, int D, const DeviceTileMask& m, cudaStream_t s) {
  STATUS_TRY(check_shapes(B, H, Hkv, T, D, m));
  return D == 64 ? forward_launch<64>(out, lse, q, k, v, B, H, Hkv, T, m, s) : forward_launch<128>(out, lse, q, k, v, B, H, Hkv, T, m, s);
}

Status blocksparse_attention_backward(float* dq, float* dk, float* dv, const __nv_bfloat16* dout, const __nv_bfloat16* q, const __nv_bfloat16* k,
                                      const __nv_bfloat16* v, const __nv_bfloat16* out, const float* lse, float* scratch, int B, int H, int Hkv,
                                      int T, int D, const DeviceTileMask& m, cudaStream_t s) {
  STATUS_TRY(check_shapes(B, H, Hkv, T, D, m));
  return D == 64 ? backward_launch<64>(dq, dk, dv, dout, q, k, v, out, lse, scratch, B, H, Hkv, T, m, s)
                 : backward_launch<128>(dq, dk, dv, dout, q, k, v, out, lse, scratch, B, H, Hkv, T, m, s);
}

}  // namespace cuda_backend
