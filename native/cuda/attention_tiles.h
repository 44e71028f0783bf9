// Shared memory of the block-sparse attention kernels (blocksparse_attention.cu) as host-side
// constexpr functions of their tile configuration: the launchers size the kernels with these, the
// kernels carve their shared memory in the same pieces, and a unit test on the CPU
// (cuda_tests.cpp, cuda_host_attention_fits_*) checks them against the per-block limits of the
// GPUs we target. Plain C++ (no CUDA headers), so host code and tests include it directly.
//
// Tiles: a CTA owns kTile = 64 rows (queries in the forward and dQ kernels, keys in dK/dV) and
// streams the other operand through shared memory `kv` rows at a time (keys in forward and dQ,
// queries in dK/dV): 64, or 32 at head_dim 128 for GPUs with 99 KB per block (sm_86, sm_89,
// sm_120: at kv 64 the D 128 kernels need 113 KB forward and 123 KB backward). Mask tiles stay 64
// tokens; a kv of 32 visits each listed tile in two halves.
#pragma once
#include <cstddef>
#include <string>

// The layout helpers are used by the kernels too.
#ifdef __CUDACC__
#define ATTENTION_TILES_HD __host__ __device__
#else
#define ATTENTION_TILES_HD
#endif

namespace cuda_backend {
namespace attention_tiles {

constexpr int kTile = 64;
ATTENTION_TILES_HD constexpr size_t align128(size_t x) { return (x + 127) & ~size_t(127); }
ATTENTION_TILES_HD constexpr int ld_bf16(int D) { return D + 8; }      // bf16 Q/K/V/dO rows (16-byte aligned, bank-conflict padding)
ATTENTION_TILES_HD constexpr int ld_out(int D) { return D + 4; }       // fp32 output rows
ATTENTION_TILES_HD constexpr int ld_scores(int cols) { return cols + 4; }  // fp32 S, dP rows
ATTENTION_TILES_HD constexpr int ld_probs(int cols) { return cols + 8; }   // bf16 P, dS rows

// Q (64 rows), K and V (kv rows), S (64 x kv fp32), P (64 x kv bf16), O (64 x D fp32), row max and sum.
constexpr size_t forward_smem(int D, int kv) {
  return align128((size_t)kTile * ld_bf16(D) * 2) + 2 * align128((size_t)kv * ld_bf16(D) * 2) + align128((size_t)kTile * ld_scores(kv) * 4) +
         align128((size_t)kTile * ld_probs(kv) * 2) + align128((size_t)kTile * ld_out(D) * 4) + 2 * align128(kTile * 4);
}
// Q and dO (64 rows, later the dQ staging area), K and V (kv rows), S and dP (64 x kv fp32),
// P and dS (64 x kv bf16), lse and delta (64).
constexpr size_t dq_smem(int D, int kv) {
  return 2 * align128((size_t)kTile * ld_bf16(D) * 2) + 2 * align128((size_t)kv * ld_bf16(D) * 2) +
         2 * align128((size_t)kTile * ld_scores(kv) * 4) + 2 * align128((size_t)kTile * ld_probs(kv) * 2) + 2 * align128(kTile * 4);
}
// K and V (64 rows, later the dK/dV staging area), Q and dO (kv rows), S and dP (kv x 64 fp32),
// P and dS (kv x 64 bf16), lse and delta (kv).
constexpr size_t dkdv_smem(int D, int kv) {
  return 2 * align128((size_t)kTile * ld_bf16(D) * 2) + 2 * align128((size_t)kv * ld_bf16(D) * 2) +
         2 * align128((size_t)kv * ld_scores(kTile) * 4) + 2 * align128((size_t)kv * ld_probs(kTile) * 2) + 2 * align128((size_t)kv * 4);
}
constexpr size_t max_smem(int D, int kv) {
  return forward_smem(D, kv) > dq_smem(D, kv) ? (forward_smem(D, kv) > dkdv_smem(D, kv) ? forward_smem(D, kv) : dkdv_smem(D, kv))
                                              : (dq_smem(D, kv) > dkdv_smem(D, kv) ? dq_smem(D, kv) : dkdv_smem(D, kv));
}
// The 64-row resident tiles double as the fp32 output staging area at the end of dQ and dK/dV.
constexpr bool staging_fits(int D) { return 2 * align128((size_t)kTile * ld_bf16(D) * 2) >= (size_t)kTile * ld_out(D) * 4; }
static_assert(staging_fits(64) && staging_fits(128), "dQ/dK/dV staging must fit in the two resident bf16 tiles");

// The kernel variants that exist: (64, 64), (128, 64), (128, 32).
constexpr bool compiled(int D, int kv) { return (D == 64 && kv == 64) || (D == 128 && (kv == 64 || kv == 32)); }

// Which variant runs head_dim D (64 or 128) on a device allowing `limit` bytes of shared memory
// per block (cudaDevAttrMaxSharedMemoryPerBlockOptin): kv 64 when all three kernels fit, else
// 32 (D 128), else none, with the reason. `forced` (64 or 32) asks for one variant (tests).
struct Plan {
  int kv = 0;             // 0: none fits (see reason)
  size_t bytes = 0;       // the largest of the three kernels' needs at kv
  std::string reason;
};
inline Plan plan(int D, size_t limit, int forced = 0) {
  Plan p;
  if (D != 64 && D != 128) {
    p.reason = "head_dim " + std::to_string(D) + " is not supported by the attention kernels (64 or 128)";
    return p;
  }
  if (forced && !compiled(D, forced)) {
    p.reason = "no attention kernel for head_dim " + std::to_string(D) + " with tiles of " + std::to_string(forced) + " rows";
    return p;
  }
  for (int kv : {64, 32}) {
    if (!compiled(D, kv) || (forced && kv != forced)) continue;
    p.bytes = max_smem(D, kv);
    if (p.bytes <= limit) {
      p.kv = kv;
      return p;
    }
  }
  p.reason = "attention at head_dim " + std::to_string(D) + " needs " + std::to_string(p.bytes) +
             " bytes of shared memory per block (smallest tiles), above this device's limit of " + std::to_string(limit) + " bytes";
  return p;
}

}  // namespace attention_tiles
}  // namespace cuda_backend
