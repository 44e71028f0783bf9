// Attention-distribution metrics and the attention-KL distillation loss (see attention_metrics.h).
//
// Design choices:
// - Work per (batch, head, query block) over the student's kept blocks, with the teacher's
//   scores computed on the same kept tiles; the teacher's dense log-sum-exp is an input (the
//   teacher's forward has it) or, for metrics only, recomputed over all causal keys.
// - Metrics accumulate in float64 with libm exp: they are reported and gated on, and the
//   "KL = -log(kept mass)" identity should hold to 1e-6. The training loss uses float32 tiles
//   with the vectorised exp, like the attention kernels.
// - The loss backward follows the attention backward: dq per (batch, head, query block) over the
//   key lists, dk per (batch, KV head, key block) over the transposed lists; no atomics.
#include "attention_metrics.h"

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

using namespace blocksparse_detail;

// ---------------------------------------------------------------------------- metrics
AttentionMetrics attention_metrics(const float* q_s, const float* k_s, const float* q_t, const float* k_t,
                                   const float* lse_t, int B, int H, int Hkv, int T, int D, const BlockMask& mask,
                                   double* kl_rows, double* recall_rows) {
  check_attention_kl_args(B, H, Hkv, T, D, mask, "attention_metrics");
  const int nb = mask.n_blocks, bs = mask.block_size, group = H / Hkv;
  const float scale = 1.0f / std::sqrt((float)D);
  std::vector<int32_t> all_blocks(nb);
  for (int j = 0; j < nb; j++) all_blocks[j] = j;
  const int64_t tasks = (int64_t)B * H * nb;
  std::vector<double> task_kl(tasks, 0.0), task_recall(tasks, 0.0);
  std::vector<int64_t> cost(tasks);
  for (int64_t t = 0; t < tasks; t++) {
    const int i = (int)(t % nb), h = (int)(t / nb % H);
    const int r = mask.mask_head(h, H) * nb + i;
    cost[t] = (int64_t)(mask.kv_ptr[r + 1] - mask.kv_ptr[r]) * 2 + (lse_t ? 0 : i + 1);
  }
  run_scheduled(cost, [&](int64_t t) {
    const int i = (int)(t % nb), h = (int)(t / nb % H), b = (int)(t / nb / H);
    const int kvh = h / group, r = mask.mask_head(h, H) * nb + i;
    const int q0 = i * bs, rows = mask.block_len(i);
    const size_t head = (size_t)b * H + h, kv_head = (size_t)b * Hkv + kvh;
    thread_local Strip student, teacher, dense;
    thread_local std::vector<Span> spans, all_spans;
    coalesce(&mask.kv_idx[mask.kv_ptr[r]], mask.kv_ptr[r + 1] - mask.kv_ptr[r], bs, spans);
    student.fill(spans, q_s + (head * T + q0) * D, k_s + kv_head * T * D, rows, T, D, bs, scale);
    teacher.fill(spans, q_t + (head * T + q0) * D, k_t + kv_head * T * D, rows, T, D, bs, scale);
    // Teacher's dense log-sum-exp: given, or over every causal key.
    std::vector<double> lt(rows), ls(rows);
    if (lse_t) {
      for (int row = 0; row < rows; row++) lt[row] = lse_t[head * T + q0 + row];
    } else {
      coalesce(all_blocks.data(), i + 1, bs, all_spans);
      dense.fill(all_spans, q_t + (head * T + q0) * D, k_t + kv_head * T * D, rows, T, D, bs, scale);
      for (int row = 0; row < rows; row++) {
        double mx = -INFINITY, sum = 0;
        for (int pass = 0; pass < 2; pass++)
          for (size_t c = 0; c < all_spans.size(); c++) {
            const int cols = span_cols(all_spans[c], bs, T), n = valid_cols(q0 + row, span_k0(all_spans[c], bs), cols);
            const float* s = dense.s.data() + dense.offset[c] + (size_t)row * cols;
            for (int col = 0; col < n; col++) {
              if (pass == 0) mx = std::max(mx, (double)s[col]);
              else sum += std::exp(s[col] - mx);
            }
          }
        lt[row] = mx + std::log(sum);
      }
    }
    double kl_sum = 0, recall_sum = 0;
    for (int row = 0; row < rows; row++) {
      double mx = -INFINITY, sum = 0;
      for (int pass = 0; pass < 2; pass++)
        for (size_t c = 0; c < spans.size(); c++) {
          const int cols = span_cols(spans[c], bs, T), n = valid_cols(q0 + row, span_k0(spans[c], bs), cols);
          const float* s = student.s.data() + student.offset[c] + (size_t)row * cols;
          for (int col = 0; col < n; col++) {
            if (pass == 0) mx = std::max(mx, (double)s[col]);
            else sum += std::exp(s[col] - mx);
          }
        }
      ls[row] = mx + std::log(sum);
      double kl = 0, recall = 0;
      for (size_t c = 0; c < spans.size(); c++) {
        const int cols = span_cols(spans[c], bs, T), n = valid_cols(q0 + row, span_k0(spans[c], bs), cols);
        const float* ss = student.s.data() + student.offset[c] + (size_t)row * cols;
        const float* st = teacher.s.data() + teacher.offset[c] + (size_t)row * cols;
        for (int col = 0; col < n; col++) {
          const double log_ps = ss[col] - ls[row], log_pt = st[col] - lt[row];
          kl += std::exp(log_ps) * (log_ps - log_pt);
          recall += std::exp(log_pt);
        }
      }
      kl = std::max(kl, 0.0);  // a KL is never negative; rounding can make a kept-everything row -1e-9
      if (kl_rows) kl_rows[head * T + q0 + row] = kl;
      if (recall_rows) recall_rows[head * T + q0 + row] = recall;
      kl_sum += kl;
      recall_sum += recall;
    }
    task_kl[t] = kl_sum;
    task_recall[t] = recall_sum;
  });
  AttentionMetrics m;
  for (int64_t t = 0; t < tasks; t++) {  // fixed order: deterministic
    m.attn_kl += task_kl[t];
    m.attn_recall += task_recall[t];
  }
  const double rows_total = (double)B * H * T;
  m.attn_kl /= rows_total;
  m.attn_recall /= rows_total;
  m.density = mask.density();
  m.attn_flops_saved = mask.flops_saved();
  return m;
}

// ---------------------------------------------------------------------------- distillation loss
double attn_kl_loss(float* dq_s, float* dk_s, const float* q_s, const float* k_s, const float* q_t, const float* k_t,
                    const float* lse_t, int B, int H, int Hkv, int T, int D, const BlockMask& mask) {
  check_attention_kl_args(B, H, Hkv, T, D, mask, "attn_kl_loss");
  check_teacher_lse(lse_t, "attn_kl_loss");
  if (!dq_s != !dk_s) throw std::invalid_argument("attn_kl_loss: pass both dq_s and dk_s, or neither");
  const int nb = mask.n_blocks, bs = mask.block_size, group = H / Hkv;
  const float scale = 1.0f / std::sqrt((float)D);
  const double inv_rows = 1.0 / ((double)B * H * T);
  const int64_t tasks = (int64_t)B * H * nb;
  // Per row, saved for the dk pass: the student's masked lse and the row's KL.
  std::vector<float> lse_s((size_t)B * H * T), kl_row((size_t)B * H * T);
  std::vector<double> task_loss(tasks, 0.0);
  std::vector<int64_t> cost(tasks);
  for (int64_t t = 0; t < tasks; t++) {
    const int i = (int)(t % nb), h = (int)(t / nb % H);
    const int r = mask.mask_head(h, H) * nb + i;
    cost[t] = mask.kv_ptr[r + 1] - mask.kv_ptr[r];
  }
  const bool grads = dq_s != nullptr;

  // Pass 1: loss, and dq per (b, h, query block).
  run_scheduled(cost, [&](int64_t t) {
    const int i = (int)(t % nb), h = (int)(t / nb % H), b = (int)(t / nb / H);
    const int kvh = h / group, r = mask.mask_head(h, H) * nb + i;
    const int q0 = i * bs, rows = mask.block_len(i);
    const size_t head = (size_t)b * H + h, kv_head = (size_t)b * Hkv + kvh;
    thread_local Strip student, teacher;
    thread_local std::vector<Span> spans;
    thread_local std::vector<float> dQ;
    coalesce(&mask.kv_idx[mask.kv_ptr[r]], mask.kv_ptr[r + 1] - mask.kv_ptr[r], bs, spans);
    const float* Qs = q_s + (head * T + q0) * D;
    const float* Ks = k_s + kv_head * T * D;
    student.fill(spans, Qs, Ks, rows, T, D, bs, scale);
    teacher.fill(spans, q_t + (head * T + q0) * D, k_t + kv_head * T * D, rows, T, D, bs, scale);
    double loss = 0;
    for (int row = 0; row < rows; row++) {
      const size_t at = head * T + q0 + row;
      float mx = -std::numeric_limits<float>::infinity();
      for (size_t c = 0; c < spans.size(); c++) {
        const int cols = span_cols(spans[c], bs, T), n = valid_cols(q0 + row, span_k0(spans[c], bs), cols);
        mx = std::max(mx, row_max(student.s.data() + student.offset[c] + (size_t)row * cols, n));
      }
      // log-softmax logits kept in the student strip: a = s_s - lse_s; teacher strip -> a - (s_t - lse_t)
      double sum = 0;
      thread_local std::vector<float> e;
      for (size_t c = 0; c < spans.size(); c++) {
        const int cols = span_cols(spans[c], bs, T), n = valid_cols(q0 + row, span_k0(spans[c], bs), cols);
        const float* s = student.s.data() + student.offset[c] + (size_t)row * cols;
        e.assign(s, s + n);
        sum += exp_sub_sum(e.data(), n, mx);
      }
      const float ls = mx + (float)std::log(sum);
      const float lt = lse_t[at];
      double kl = 0;
      for (size_t c = 0; c < spans.size(); c++) {
        const int cols = span_cols(spans[c], bs, T), n = valid_cols(q0 + row, span_k0(spans[c], bs), cols);
        float* ss = student.s.data() + student.offset[c] + (size_t)row * cols;
        float* st = teacher.s.data() + teacher.offset[c] + (size_t)row * cols;
        for (int col = 0; col < n; col++) {
          const float log_ps = ss[col] - ls;
          ss[col] = log_ps;                     // student strip now holds log p_s
          st[col] = log_ps - (st[col] - lt);    // teacher strip now holds log p_s - log p_t
          kl += std::exp((double)log_ps) * st[col];
        }
      }
      lse_s[at] = ls;
      kl_row[at] = (float)kl;
      loss += kl;
      if (!grads) continue;
      // g = p_s * (log p_s - log p_t - KL_row) / N, written into the student strip; masked -> 0
      for (size_t c = 0; c < spans.size(); c++) {
        const int cols = span_cols(spans[c], bs, T), n = valid_cols(q0 + row, span_k0(spans[c], bs), cols);
        float* ss = student.s.data() + student.offset[c] + (size_t)row * cols;
        const float* st = teacher.s.data() + teacher.offset[c] + (size_t)row * cols;
        exp_sub_sum(ss, n, 0.0f);
        for (int col = 0; col < n; col++) ss[col] = (float)(ss[col] * (st[col] - kl) * inv_rows);
        for (int col = n; col < cols; col++) ss[col] = 0.0f;
      }
    }
    task_loss[t] = loss;
    if (!grads) return;
    dQ.assign((size_t)rows * D, 0.0f);
    for (size_t c = 0; c < spans.size(); c++) {
      const int k0 = span_k0(spans[c], bs), cols = span_cols(spans[c], bs, T);
      // dQ (rows, D) += scale * g (rows, cols) K (cols, D)
      sgemm_serial(false, false, rows, D, cols, scale, student.s.data() + student.offset[c], cols, Ks + (size_t)k0 * D,
                   D, 1.0f, dQ.data(), D);
    }
    std::copy(dQ.begin(), dQ.end(), dq_s + (head * T + q0) * D);
  });
  double loss = 0;
  for (int64_t t = 0; t < tasks; t++) loss += task_loss[t];
  loss *= inv_rows;
  if (!grads) return loss;

  // Pass 2: dk per (b, KV head, key block j) over the query blocks that keep j.
  run_scheduled(mask.key_block_costs(B, H, Hkv), [&](int64_t t) {
    const int j = (int)(t % nb), kvh = (int)(t / nb % Hkv), b = (int)(t / nb / Hkv);
    const int k0 = j * bs, cols = mask.block_len(j);
    const size_t kv_head = (size_t)b * Hkv + kvh;
    const float* Ks = k_s + (kv_head * T + k0) * D;
    const float* Kt = k_t + (kv_head * T + k0) * D;
    thread_local std::vector<float> Ss, St, dK;
    thread_local std::vector<Span> spans;
    Ss.resize((size_t)kSpanTokens * std::max(kSpanTokens, bs));
    St.resize(Ss.size());
    dK.assign((size_t)cols * D, 0.0f);
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
      const int col = mask.mask_head(h, H) * nb + j;
      coalesce(&mask.q_idx[mask.q_ptr[col]], mask.q_ptr[col + 1] - mask.q_ptr[col], bs, spans);
      const size_t head = (size_t)b * H + h;
      for (const Span& sp : spans) {
        const int q0 = sp.first_block * bs, rows = std::min(T, (sp.last_block + 1) * bs) - q0;
        const float* Qs = q_s + (head * T + q0) * D;
        sgemm_serial(false, true, rows, cols, D, scale, Qs, D, Ks, D, 0.0f, Ss.data(), cols);
        sgemm_serial(false, true, rows, cols, D, scale, q_t + (head * T + q0) * D, D, Kt, D, 0.0f, St.data(), cols);
        for (int row = 0; row < rows; row++) {
          const size_t at = head * T + q0 + row;
          const int n = valid_cols(q0 + row, k0, cols);
          float* ss = Ss.data() + (size_t)row * cols;
          const float* st = St.data() + (size_t)row * cols;
          const float ls = lse_s[at], lt = lse_t[at], kl = kl_row[at];
          for (int c = 0; c < n; c++) {
            const float log_ps = ss[c] - ls, diff = log_ps - (st[c] - lt);
            ss[c] = diff - kl;  // times p_s below
            St[(size_t)row * cols + c] = log_ps;
          }
          exp_sub_sum(St.data() + (size_t)row * cols, n, 0.0f);
          for (int c = 0; c < n; c++) ss[c] = (float)(St[(size_t)row * cols + c] * ss[c] * inv_rows);
          for (int c = n; c < cols; c++) ss[c] = 0.0f;
        }
        // dK (cols, D) += scale * g^T (cols, rows) Qs (rows, D)
        sgemm_serial(true, false, cols, D, rows, scale, Ss.data(), cols, Qs, D, 1.0f, dK.data(), D);
      }
    }
    std::copy(dK.begin(), dK.end(), dk_s + (kv_head * T + k0) * D);
  });
  return loss;
}

}  // namespace engine
