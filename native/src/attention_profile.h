// Attention profile of the dense teacher: the block-pooled attention mass map and the
// attention-KL floor of block masks (docs/method.md, "Attention profile").
//
// Row block mass: for query head h and query position t, R[t, j] = the dense causal softmax
// probability of q_t.k_s/sqrt(D) summed over the keys s <= t of key block j (0 for j > t/block).
// The pooled map (H, nb, nb) is the mean over the rows of each query block (and the batch).
//
// Floor: a student whose mask keeps the key blocks S of a row has KL(P_s || P_t) >= -log(Σ_{j in S}
// R[t, j]) (equality for the teacher restricted to S and renormalised), so the attention KL of
// any student at a mask is at least the mean over rows of -log(kept teacher mass); recall is the
// mean kept mass. All accumulation is in float64.
//
// Shapes: B batch, H query heads, Hkv KV heads, T tokens, D head dim; q (B, H, T, D), k (B, Hkv,
// T, D). Query head h reads KV head h / (H / Hkv); a mask with M mask heads gives query head h
// mask head h / (H / M).
#pragma once
#include <cstdint>
#include <vector>

namespace engine {

inline int profile_blocks(int T, int block) { return (T + block - 1) / block; }

// Writes R (B, H, T, nb), nb = profile_blocks(T, block).
void attention_row_block_mass(const float* q, const float* k, int B, int H, int Hkv, int T, int D, int block,
                              double* rows);

// Adds the pooled map of R into pooled (H, nb, nb) with weight `weight` per sequence: pooled[h,i,j] +=
// weight * Σ_b mean over the rows t of query block i of R[b,h,t,j].
void pool_block_mass(const double* rows, int B, int H, int T, int block, double weight, double* pooled);

// Nested masks given by join levels: join (M, nb, nb), the first level at which the pair (mask
// head, query block, key block) is kept (< 0 or >= levels: never; causal pairs only). Adds, for each
// level l, Σ over the B*H*T rows of -log(kept mass) (each row clamped at >= 0) into floor_sum[l]
// and of the kept mass into recall_sum[l].
void nested_mask_floor(const double* rows, int B, int H, int T, int block, const int32_t* join, int M, int levels,
                       double* floor_sum, double* recall_sum);

// The oracle's nested masks from a pooled map (H, nb, nb) for M mask heads (M divides H).
// Level l's mask is the one that reaches density >= densities[l] (ascending, in (0, 1]); every
// level keeps the diagonal. Within a (mask head, query block) the key blocks are added in
// decreasing order of the mask head's summed mass over its query heads; across query blocks the
// next pair is the one lowering Σ_{heads, query blocks} rows_i * -log(pooled kept mass) most.
// Returns join (M, nb, nb); `achieved` gets each level's actual density (kept / causal pairs).
std::vector<int32_t> oracle_join_levels(const double* pooled, int H, int M, int T, int block,
                                        const std::vector<double>& densities, std::vector<double>* achieved);

}  // namespace engine
