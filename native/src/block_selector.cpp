// Block selection: pooled-key scores, the trainable indexer and its KL losses (warm-up and
// selected set; see block_selector.h for the definitions).
#include "block_selector.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "blocksparse_attention.h"
#include "gemm.h"
#include "op_checks.h"
#include "parallel.h"

namespace engine {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int blocks_of(int T, int block_size) { return (T + block_size - 1) / block_size; }

// pooled (nb, C): mean of x (T, C) over each block of tokens (the tail block over its own length)
std::vector<double> block_means(const float* x, int T, int C, int block_size) {
  const int nb = blocks_of(T, block_size);
  std::vector<double> pooled((size_t)nb * C, 0.0);
  for (int b = 0; b < nb; b++) {
    const int t0 = b * block_size, t1 = std::min(T, t0 + block_size);
    double* row = &pooled[(size_t)b * C];
    for (int t = t0; t < t1; t++)
      for (int c = 0; c < C; c++) row[c] += x[(size_t)t * C + c];
    for (int c = 0; c < C; c++) row[c] /= (t1 - t0);
  }
  return pooled;
}

// Indexer activations for one sequence: xbar (nb, C) pooled input, qi (nb, Hi*Di), kj (nb, Di),
// a (nb, nb, Hi) pre-relu logits q.k / sqrt(Di) (causal pairs only).
struct IndexerActs {
  int nb = 0;
  std::vector<double> xbar, qi, kj, a;
};

IndexerActs indexer_acts(const float* x, const float* w_q, const float* w_k, const IndexerShape& s, int T,
                         int block_size) {
  IndexerActs z;
  z.nb = blocks_of(T, block_size);
  const int nb = z.nb, HD = s.Hi * s.Di;
  z.xbar = block_means(x, T, s.C, block_size);
  z.qi.assign((size_t)nb * HD, 0.0);
  z.kj.assign((size_t)nb * s.Di, 0.0);
  for (int b = 0; b < nb; b++) {
    const double* xb = &z.xbar[(size_t)b * s.C];
    for (int o = 0; o < HD; o++) {
      double acc = 0;
      for (int c = 0; c < s.C; c++) acc += (double)w_q[(size_t)o * s.C + c] * xb[c];
      z.qi[(size_t)b * HD + o] = acc;
    }
    for (int o = 0; o < s.Di; o++) {
      double acc = 0;
      for (int c = 0; c < s.C; c++) acc += (double)w_k[(size_t)o * s.C + c] * xb[c];
      z.kj[(size_t)b * s.Di + o] = acc;
    }
  }
  const double inv = 1.0 / std::sqrt((double)s.Di);
  z.a.assign((size_t)nb * nb * s.Hi, 0.0);
  for (int i = 0; i < nb; i++)
    for (int j = 0; j <= i; j++)
      for (int h = 0; h < s.Hi; h++) {
        double acc = 0;
        const double *qv = &z.qi[(size_t)i * HD + (size_t)h * s.Di], *kv = &z.kj[(size_t)j * s.Di];
        for (int d = 0; d < s.Di; d++) acc += qv[d] * kv[d];
        z.a[((size_t)i * nb + j) * s.Hi + h] = acc * inv;
      }
  return z;
}

double score_of(const IndexerActs& z, const float* w_h, int Hi, int i, int j) {
  double s = 0;
  for (int h = 0; h < Hi; h++) s += (double)w_h[h] * std::max(0.0, z.a[((size_t)i * z.nb + j) * Hi + h]);
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------- pooled keys
void pooled_block_scores(float* scores, const float* q, const float* k, int H, int Hkv, int T, int D, int block_size,
                         bool share_gqa_group) {
  check_selector_args(T, block_size, "pooled_block_scores");
  check_selector_heads(H, Hkv, "pooled_block_scores");
  const int nb = blocks_of(T, block_size), group = H / Hkv;
  const int n_heads = share_gqa_group ? Hkv : H;
  // Pooled queries per head and pooled keys per KV head; by linearity the mean over queries of
  // q . kbar equals qbar . kbar.
  std::vector<std::vector<double>> qbar(H), kbar(Hkv);
  parallel_for(H + Hkv, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; t++) {
      if (t < H) qbar[t] = block_means(q + (size_t)t * T * D, T, D, block_size);
      else kbar[t - H] = block_means(k + (size_t)(t - H) * T * D, T, D, block_size);
    }
  });
  parallel_for((int64_t)n_heads * nb, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const int mh = (int)(r / nb), i = (int)(r % nb);
      const int h_first = share_gqa_group ? mh * group : mh, h_last = share_gqa_group ? h_first + group : mh + 1;
      const int kvh = share_gqa_group ? mh : mh / group;
      float* row = scores + (size_t)r * nb;
      for (int j = 0; j < nb; j++) {
        if (j > i) { row[j] = kNegInf; continue; }
        double s = 0;
        for (int h = h_first; h < h_last; h++) {
          const double *qv = &qbar[h][(size_t)i * D], *kv = &kbar[kvh][(size_t)j * D];
          for (int d = 0; d < D; d++) s += qv[d] * kv[d];
        }
        row[j] = (float)s;
      }
    }
  });
}

// ---------------------------------------------------------------------------- indexer
void indexer_init(float* w_q, float* w_k, float* w_h, const IndexerShape& s, uint64_t seed) {
  check_indexer_shape(s);
  // nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); per-head weights start at 1/Hi.
  uint64_t state = seed ^ 0x1D3C5A7Bull;
  const double bound = 1.0 / std::sqrt((double)s.C);
  auto uniform = [&] { return (float)(((double)(splitmix64(state) >> 11) * (1.0 / 9007199254740992.0) * 2 - 1) * bound); };
  for (size_t i = 0; i < (size_t)s.Hi * s.Di * s.C; i++) w_q[i] = uniform();
  for (size_t i = 0; i < (size_t)s.Di * s.C; i++) w_k[i] = uniform();
  for (int h = 0; h < s.Hi; h++) w_h[h] = 1.0f / s.Hi;
}

void indexer_block_scores(float* scores, const float* x, const float* w_q, const float* w_k, const float* w_h,
                          const IndexerShape& s, int T, int block_size, int n_mask_heads) {
  check_indexer_shape(s);
  check_selector_args(T, block_size, "indexer_block_scores");
  IndexerActs z = indexer_acts(x, w_q, w_k, s, T, block_size);
  const int nb = z.nb;
  for (int i = 0; i < nb; i++)
    for (int j = 0; j < nb; j++) scores[(size_t)i * nb + j] = j > i ? kNegInf : (float)score_of(z, w_h, s.Hi, i, j);
  for (int h = 1; h < n_mask_heads; h++) std::copy(scores, scores + (size_t)nb * nb, scores + (size_t)h * nb * nb);
}

namespace {

// Phase 1: row i's KL over every causal key block; writes d loss / d score into dscore.
double warmup_kl(std::vector<double>& dscore, const IndexerActs& z, const float* w_h, const float* target, int Hi) {
  const int nb = z.nb;
  const double inv_rows = 1.0 / nb;
  double loss = 0;
  std::vector<double> logits(nb);
  for (int i = 0; i < nb; i++) {
    // log-softmax of the causal scores of row i
    double mx = -INFINITY;
    for (int j = 0; j <= i; j++) mx = std::max(mx, logits[j] = score_of(z, w_h, Hi, i, j));
    double sum = 0;
    for (int j = 0; j <= i; j++) sum += std::exp(logits[j] - mx);
    const double lse = mx + std::log(sum);
    double mass = 0;
    for (int j = 0; j <= i; j++) {
      const double t = target[(size_t)i * nb + j], logp = logits[j] - lse;
      if (t > 0) loss += t * (std::log(t) - logp) * inv_rows;
      mass += t;
    }
    // d/dz_j of sum_j t_j (log t_j - log p_j) = p_j * sum(t) - t_j
    for (int j = 0; j <= i; j++)
      dscore[(size_t)i * nb + j] = (std::exp(logits[j] - lse) * mass - target[(size_t)i * nb + j]) * inv_rows;
  }
  return loss;
}

// Phase 2: per mask head m and row i, the KL over the kept key blocks S with the target
// renormalised over S; ADDS d loss / d score into dscore (the mask heads share one score map).
double selected_kl(std::vector<double>& dscore, const IndexerActs& z, const float* w_h, const float* target, int Hi,
                   const BlockMask& mask) {
  const int nb = z.nb, M = mask.n_mask_heads;
  const double inv_rows = 1.0 / ((double)nb * M);
  double loss = 0;
  std::vector<double> logits(nb), tsel(nb);
  for (int m = 0; m < M; m++)
    for (int i = 0; i < nb; i++) {
      const int32_t* kept = mask.kv_idx.data() + mask.kv_ptr[(size_t)m * nb + i];
      const int n = mask.kv_ptr[(size_t)m * nb + i + 1] - mask.kv_ptr[(size_t)m * nb + i];
      double mass = 0;
      for (int p = 0; p < n; p++) mass += target[(size_t)i * nb + kept[p]];
      if (!(mass > 0)) continue;  // the teacher puts nothing on S: no direction to learn
      double mx = -INFINITY;
      for (int p = 0; p < n; p++) mx = std::max(mx, logits[p] = score_of(z, w_h, Hi, i, kept[p]));
      double sum = 0;
      for (int p = 0; p < n; p++) sum += std::exp(logits[p] - mx);
      const double lse = mx + std::log(sum);
      for (int p = 0; p < n; p++) {
        const double t = tsel[p] = target[(size_t)i * nb + kept[p]] / mass;
        if (t > 0) loss += t * (std::log(t) - (logits[p] - lse)) * inv_rows;
      }
      // the renormalised target sums to 1: d/dz_j = p_j - t_j on S, 0 elsewhere
      for (int p = 0; p < n; p++) dscore[(size_t)i * nb + kept[p]] += (std::exp(logits[p] - lse) - tsel[p]) * inv_rows;
    }
  return loss;
}

}  // namespace

double indexer_kl_loss(float* dw_q, float* dw_k, float* dw_h, const float* x, const float* w_q, const float* w_k,
                       const float* w_h, const float* target, const IndexerShape& s, int T, int block_size,
                       const BlockMask* selected) {
  check_indexer_shape(s);
  check_selector_args(T, block_size, "indexer_kl_loss");
  if (selected) check_indexer_selected(*selected, T, block_size, "indexer_kl_loss");
  IndexerActs z = indexer_acts(x, w_q, w_k, s, T, block_size);
  const int nb = z.nb, HD = s.Hi * s.Di;
  const double inv_sqrt = 1.0 / std::sqrt((double)s.Di);
  std::vector<double> dscore((size_t)nb * nb, 0.0);
  const double loss =
      selected ? selected_kl(dscore, z, w_h, target, s.Hi, *selected) : warmup_kl(dscore, z, w_h, target, s.Hi);
  if (!dw_q && !dw_k && !dw_h) return loss;
  // Back through score = sum_h w_h relu(a_h), a_h = qi_h . kj / sqrt(Di), qi = w_q xbar, kj = w_k xbar.
  std::vector<double> dqi((size_t)nb * HD, 0.0), dkj((size_t)nb * s.Di, 0.0), dwh(s.Hi, 0.0);
  for (int i = 0; i < nb; i++)
    for (int j = 0; j <= i; j++) {
      const double g = dscore[(size_t)i * nb + j];
      if (g == 0) continue;
      for (int h = 0; h < s.Hi; h++) {
        const double a = z.a[((size_t)i * nb + j) * s.Hi + h];
        if (a <= 0) continue;
        dwh[h] += g * a;
        const double da = g * w_h[h] * inv_sqrt;
        double *dq = &dqi[(size_t)i * HD + (size_t)h * s.Di], *dk = &dkj[(size_t)j * s.Di];
        const double *qv = &z.qi[(size_t)i * HD + (size_t)h * s.Di], *kv = &z.kj[(size_t)j * s.Di];
        for (int d = 0; d < s.Di; d++) {
          dq[d] += da * kv[d];
          dk[d] += da * qv[d];
        }
      }
    }
  if (dw_h)
    for (int h = 0; h < s.Hi; h++) dw_h[h] += (float)dwh[h];
  // dw (out, C) += sum_b dact[b][out] * xbar[b][:]
  auto outer = [&](float* dw, const std::vector<double>& dact, int out) {
    for (int o = 0; o < out; o++)
      for (int c = 0; c < s.C; c++) {
        double acc = 0;
        for (int b = 0; b < nb; b++) acc += dact[(size_t)b * out + o] * z.xbar[(size_t)b * s.C + c];
        dw[(size_t)o * s.C + c] += (float)acc;
      }
  };
  if (dw_q) outer(dw_q, dqi, HD);
  if (dw_k) outer(dw_k, dkj, s.Di);
  return loss;
}

// ---------------------------------------------------------------------------- teacher target
void teacher_block_attention(float* target, const float* q, const float* k, const float* lse, int H, int Hkv, int T,
                             int D, int block_size) {
  using namespace blocksparse_detail;
  check_selector_args(T, block_size, "teacher_block_attention");
  check_selector_heads(H, Hkv, "teacher_block_attention");
  const int nb = blocks_of(T, block_size), group = H / Hkv;
  const float scale = 1.0f / std::sqrt((float)D);
  std::vector<int32_t> all_blocks(nb);
  for (int j = 0; j < nb; j++) all_blocks[j] = j;
  std::vector<int64_t> cost(nb);
  for (int i = 0; i < nb; i++) cost[i] = i + 1;
  // One task per query block: sums every head into its own target row (deterministic).
  run_scheduled(cost, [&](int64_t task) {
    const int i = (int)task, q0 = i * block_size, rows = std::min(T, q0 + block_size) - q0;
    thread_local std::vector<float> S, row_lse;
    thread_local std::vector<Span> spans;
    thread_local std::vector<double> acc;
    S.resize((size_t)kSpanTokens * std::max(kSpanTokens, block_size));
    row_lse.resize(rows);
    acc.assign(nb, 0.0);
    coalesce(all_blocks.data(), i + 1, block_size, spans);
    for (int h = 0; h < H; h++) {
      const float* Q = q + ((size_t)h * T + q0) * D;
      const float* K = k + (size_t)(h / group) * T * D;
      if (lse) {
        std::copy(lse + (size_t)h * T + q0, lse + (size_t)h * T + q0 + rows, row_lse.begin());
      } else {  // dense log-sum-exp over the causal keys (online over spans)
        std::vector<float> m(rows, kNegInf), l(rows, 0.0f);
        for (const Span& sp : spans) {
          const int k0 = sp.first_block * block_size, cols = std::min(T, (sp.last_block + 1) * block_size) - k0;
          sgemm_serial(false, true, rows, cols, D, scale, Q, D, K + (size_t)k0 * D, D, 0.0f, S.data(), cols);
          for (int r = 0; r < rows; r++) {
            float* srow = &S[(size_t)r * cols];
            const int n = valid_cols(q0 + r, k0, cols);
            const float mx = std::max(m[r], row_max(srow, n));
            l[r] = l[r] * std::exp(m[r] - mx) + exp_sub_sum(srow, n, mx);
            m[r] = mx;
          }
        }
        for (int r = 0; r < rows; r++) row_lse[r] = m[r] + std::log(l[r]);
      }
      for (const Span& sp : spans) {
        const int k0 = sp.first_block * block_size, cols = std::min(T, (sp.last_block + 1) * block_size) - k0;
        sgemm_serial(false, true, rows, cols, D, scale, Q, D, K + (size_t)k0 * D, D, 0.0f, S.data(), cols);
        for (int r = 0; r < rows; r++) {
          float* srow = &S[(size_t)r * cols];
          const int n = valid_cols(q0 + r, k0, cols);
          exp_sub_sum(srow, n, row_lse[r]);
          for (int c = 0; c < n; c++) acc[(k0 + c) / block_size] += srow[c];
        }
      }
    }
    double total = 0;
    for (int j = 0; j <= i; j++) total += acc[j];
    float* out = target + (size_t)i * nb;
    for (int j = 0; j < nb; j++) out[j] = j <= i && total > 0 ? (float)(acc[j] / total) : 0.0f;
  });
}

}  // namespace engine

// ============================================================================ infllm_v2 (per token)

namespace engine {

double TokenBlockSelection::density() const {
  double kept = 0, total = 0;
  for (int g = 0; g < n_kv_heads; g++)
    for (int t = 0; t < T; t++) {
      total += t + 1;
      const int32_t* r = row(g, t);
      for (int i = 0; i < n(g, t); i++) {
        const int b0 = r[i] * block_size;
        kept += std::max(0, std::min(t + 1, b0 + block_size) - b0);
      }
    }
  return total > 0 ? kept / total : 1.0;
}

TokenBlockSelection infllmv2_select(const float* q, const float* k, int H, int Hkv, int T, int D,
                                    const MaskSpec& spec) {
  const std::string bad = validate_mask_spec(spec);
  if (!bad.empty()) throw std::invalid_argument(bad);
  if (spec.selector != MaskSpec::InfLLMv2) throw std::invalid_argument("infllmv2_select: mask.selector must be infllm_v2");
  check_selector_args(T, spec.block_size, "infllmv2_select");
  check_selector_heads(H, Hkv, "infllmv2_select");
  if (D < 1) throw std::invalid_argument("infllmv2_select: head dim must be >= 1");
  const int B = spec.block_size, kernel = B / 2, stride = B / 4, per_block = B / stride;
  const int nb = blocks_of(T, B), G = H / Hkv;
  const int forced_local = spec.window_blocks + 1;
  TokenBlockSelection sel;
  sel.T = T;
  sel.block_size = B;
  sel.n_blocks = nb;
  sel.n_kv_heads = Hkv;
  sel.dense = T < spec.dense_below;
  sel.k_max = sel.dense ? nb : std::min(nb, spec.global_blocks + forced_local + spec.topk_blocks);
  sel.blocks.assign((size_t)Hkv * T * sel.k_max, -1);
  sel.count.assign((size_t)Hkv * T, 0);
  if (sel.dense) {
    for (int g = 0; g < Hkv; g++)
      for (int t = 0; t < T; t++) {
        const int qb = t / B;
        int32_t* r = sel.blocks.data() + ((size_t)g * T + t) * sel.k_max;
        for (int b = 0; b <= qb; b++) r[b] = b;
        sel.count[(size_t)g * T + t] = qb + 1;
      }
    return sel;
  }
  const int nc = T >= kernel ? (T - kernel) / stride + 1 : 0;
  const double scale = 1.0 / std::sqrt((double)D);
  parallel_for((int64_t)Hkv * T, [&](int64_t r0, int64_t r1) {
    std::vector<double> kc, score(nc), logits(nc), pooled(nb);
    std::vector<int> order(nb);
    int cached_g = -1;
    for (int64_t r = r0; r < r1; r++) {
      const int g = (int)(r / T), t = (int)(r % T);
      if (g != cached_g) {  // compressed keys of this KV head (double means)
        kc.assign((size_t)nc * D, 0.0);
        const float* kg = k + (size_t)g * T * D;
        for (int j = 0; j < nc; j++) {
          double* row = &kc[(size_t)j * D];
          for (int i = 0; i < kernel; i++)
            for (int d = 0; d < D; d++) row[d] += kg[(size_t)(j * stride + i) * D + d];
          for (int d = 0; d < D; d++) row[d] /= kernel;
        }
        cached_g = g;
      }
      const int visible = t + 1 >= kernel ? std::min(nc, (t + 1 - kernel) / stride + 1) : 0;
      std::fill(score.begin(), score.end(), 0.0);
      for (int h = g * G; h < (g + 1) * G; h++) {
        const float* qt = q + ((size_t)h * T + t) * D;
        double mx = -std::numeric_limits<double>::infinity();
        for (int j = 0; j < visible; j++) {
          double dot = 0;
          const double* row = &kc[(size_t)j * D];
          for (int d = 0; d < D; d++) dot += (double)qt[d] * row[d];
          logits[j] = dot * scale;
          mx = std::max(mx, logits[j]);
        }
        double sum = 0;
        for (int j = 0; j < visible; j++) sum += (logits[j] = std::exp(logits[j] - mx));
        for (int j = 0; j < visible; j++) score[j] += logits[j] / sum;
      }
      const int qb = t / B;
      int n_cand = 0;
      for (int b = 0; b <= qb; b++) {
        const bool forced = b < spec.global_blocks || qb - b < forced_local;
        if (forced) {
          pooled[b] = std::numeric_limits<double>::infinity();
        } else {
          double m = 0;
          for (int j = std::max(0, b * per_block - 1); j <= std::min(nc - 1, (b + 1) * per_block - 1); j++)
            m = std::max(m, score[j]);
          pooled[b] = m;
        }
        order[n_cand++] = b;
      }
      const int take = std::min(n_cand, sel.k_max);
      std::partial_sort(order.begin(), order.begin() + take, order.begin() + n_cand, [&](int a, int b) {
        return pooled[a] != pooled[b] ? pooled[a] > pooled[b] : a < b;
      });
      std::sort(order.begin(), order.begin() + take);
      int32_t* out = sel.blocks.data() + (size_t)r * sel.k_max;
      for (int i = 0; i < take; i++) out[i] = order[i];
      sel.count[r] = take;
    }
  });
  return sel;
}

}  // namespace engine
