// Forward and backward passes of the decoder. Each layer is two branches, attention and MLP, each
// one call in either direction, so a family can swap a branch without touching the pass.
#include <algorithm>
#include <stdexcept>

#include "model.h"
#include "model_acts.h"
#include "token_sparse_attention.h"

namespace engine {

// ---------------------------------------------------------------------------- forward

void Model::forward(Activations& a, const int32_t* inputs, int B, int T, bool teacher) const {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  Backend* bp = backend_.get();
  const int N = B * T, C = c.hidden_size, H = c.num_heads, D = c.head_dim, L = c.num_layers;
  a.B = B;
  a.T = T;
  // The teacher's forward keeps only what the losses and metrics read: q, k and lse of every
  // layer and the final hidden state. Its other buffers are shared by all layers (two residual
  // streams used in turn), which halves the activation memory of a distillation step.
  a.resid.resize(teacher ? 2 : L + 1);
  a.layers.resize(L);
  for (auto& r : a.resid) r.resize(bp, (int64_t)N * C);
  auto resid = [&](int i) -> Buf& { return a.resid[teacher ? i % 2 : i]; };
  a.scratch.resize(bp, (int64_t)N * std::max(C, H * D));

  be.embedding_forward(resid(0).data(), inputs, dev_weights(embed_index_, teacher), N, C);
  if (c.embedding_scale != 1) be.scale(resid(0).data(), resid(0).data(), c.embedding_scale, (int64_t)N * C);

  for (int l = 0; l < L; l++) {
    Buf& mid = (teacher ? a.layers[0] : a.layers[l]).resid_mid;  // the teacher keeps one
    mid.resize(bp, (int64_t)N * C);
    attention_forward(a, l, resid(l).data(), mid.data(), teacher);
    mlp_forward(a, l, mid.data(), resid(l + 1).data(), teacher);
  }
  a.hidden.resize(bp, (int64_t)N * C);
  a.hidden_rstd.resize(bp, N);
  be.rmsnorm_forward(a.hidden.data(), a.hidden_rstd.data(), resid(L).data(), dev_weights(final_norm_index_, teacher), N,
                     C, c.rms_norm_eps);
}

void Model::attention_forward(Activations& a, int l, const float* x, float* out, bool teacher) const {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  Backend* bp = backend_.get();
  const int B = a.B, T = a.T, N = B * T, C = c.hidden_size, H = c.num_heads, Hkv = c.num_kv_heads, D = c.head_dim;
  const float eps = c.rms_norm_eps;
  auto w = [&](size_t i) { return dev_weights(i, teacher); };
  const LayerParams& lp = layers_[l];
  LayerActs& la = a.layers[l];
  LayerActs& work = teacher ? a.layers[0] : la;  // buffers the teacher does not keep per layer
  work.ln1.resize(bp, (int64_t)N * C); work.ln1_rstd.resize(bp, N);
  la.q.resize(bp, (int64_t)N * H * D); la.k.resize(bp, (int64_t)N * Hkv * D); work.v.resize(bp, (int64_t)N * Hkv * D);
  work.att.resize(bp, (int64_t)N * H * D); la.lse.resize(bp, (int64_t)N * H); work.merged.resize(bp, (int64_t)N * H * D);

  be.rmsnorm_forward(work.ln1.data(), work.ln1_rstd.data(), x, w(lp.ln1), N, C, eps);
  Buf& qt = a.qt;
  Buf& kt = a.kt;
  qt.resize(bp, (int64_t)N * H * D);
  kt.resize(bp, (int64_t)N * Hkv * D);
  be.matmul_forward(qt.data(), work.ln1.data(), w(lp.q), N, C, H * D);
  be.matmul_forward(kt.data(), work.ln1.data(), w(lp.k), N, C, Hkv * D);
  be.matmul_forward(work.merged.data(), work.ln1.data(), w(lp.v), N, C, Hkv * D);  // v staged in merged
  be.to_heads(work.v.data(), work.merged.data(), B, T, Hkv, D);
  if (c.qk_norm) {
    work.q_pre.resize(bp, qt.size());
    work.k_pre.resize(bp, kt.size());
    be.copy(work.q_pre.data(), qt.data(), qt.size());
    be.copy(work.k_pre.data(), kt.data(), kt.size());
    work.qn_rstd.resize(bp, (int64_t)N * H); work.kn_rstd.resize(bp, (int64_t)N * Hkv);
    be.rmsnorm_forward(qt.data(), work.qn_rstd.data(), work.q_pre.data(), w(lp.q_norm), N * H, D, eps);
    be.rmsnorm_forward(kt.data(), work.kn_rstd.data(), work.k_pre.data(), w(lp.k_norm), N * Hkv, D, eps);
  }
  const RopeArrays rope = rope_arrays();
  be.rope_forward(qt.data(), B, T, H, D, rope);
  be.rope_forward(kt.data(), B, T, Hkv, D, rope);
  be.to_heads(la.q.data(), qt.data(), B, T, H, D);
  be.to_heads(la.k.data(), kt.data(), B, T, Hkv, D);
  build_masks(la, l, B, T, teacher);
  if (!la.token_sel.empty()) {
    token_sparse_attention_forward(work.att.data(), la.lse.data(), la.q.data(), la.k.data(), work.v.data(), B, H, Hkv,
                                   T, D, la.token_sel.data());
  } else if (la.masks.empty() || la.masks[0].dense) {
    be.attention_forward(work.att.data(), la.lse.data(), la.q.data(), la.k.data(), work.v.data(), B, H, Hkv, T, D,
                         nullptr);
  } else {
    for_each_mask(la.masks, B, [&](int b0, int bb, const BlockMask& mask) {
      const size_t qo = (size_t)b0 * H * T * D, ko = (size_t)b0 * Hkv * T * D;
      be.attention_forward(work.att.data() + qo, la.lse.data() + (size_t)b0 * H * T, la.q.data() + qo,
                           la.k.data() + ko, work.v.data() + ko, bb, H, Hkv, T, D, &mask);
    });
  }
  be.from_heads(work.merged.data(), work.att.data(), B, T, H, D);
  be.matmul_forward(a.scratch.data(), work.merged.data(), w(lp.o), N, H * D, C);
  be.add_scaled(out, x, a.scratch.data(), c.residual_scale, (int64_t)N * C);
}

void Model::mlp_forward(Activations& a, int l, const float* x, float* out, bool teacher) const {
  if (config_.is_moe_layer(l)) return moe_forward(a, l, x, out, teacher);
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  Backend* bp = backend_.get();
  const int N = a.B * a.T, C = c.hidden_size, F = c.intermediate_size;
  auto w = [&](size_t i) { return dev_weights(i, teacher); };
  const LayerParams& lp = layers_[l];
  LayerActs& work = teacher ? a.layers[0] : a.layers[l];
  work.ln2.resize(bp, (int64_t)N * C); work.ln2_rstd.resize(bp, N);
  work.gate.resize(bp, (int64_t)N * F); work.up.resize(bp, (int64_t)N * F); work.act.resize(bp, (int64_t)N * F);
  be.rmsnorm_forward(work.ln2.data(), work.ln2_rstd.data(), x, w(lp.ln2), N, C, c.rms_norm_eps);
  be.matmul_forward(work.gate.data(), work.ln2.data(), w(lp.gate), N, C, F);
  be.matmul_forward(work.up.data(), work.ln2.data(), w(lp.up), N, C, F);
  be.swiglu_forward(work.act.data(), work.gate.data(), work.up.data(), (int64_t)N * F);
  be.matmul_forward(a.scratch.data(), work.act.data(), w(lp.down), N, F, C);
  be.add_scaled(out, x, a.scratch.data(), c.residual_scale, (int64_t)N * C);
}

// Builds the layer's masks (one shared, or one per sequence for top-k) from forward values.
void Model::build_masks(LayerActs& la, int l, int B, int T, bool teacher) const {
  la.masks.clear();
  la.token_sel.clear();
  la.dq_kl.clear();
  la.dk_kl.clear();
  la.ent_grads = false;
  if (teacher || !attention_[l]) return;
  const MaskSpec& spec = *attention_[l];
  const int H = config_.num_heads, Hkv = config_.num_kv_heads, D = config_.head_dim, C = config_.hidden_size;
  if (spec.selector == MaskSpec::InfLLMv2 && T >= spec.dense_below) {
    if (!backend_->host_resident())
      throw std::invalid_argument("mask.selector: infllm_v2 attends per query token, which only the cpu backend runs");
    for (int b = 0; b < B; b++)
      la.token_sel.push_back(infllmv2_select(la.q.data() + (size_t)b * H * T * D, la.k.data() + (size_t)b * Hkv * T * D,
                                             H, Hkv, T, D, spec));
    return;
  }
  const bool dynamic = spec.topk_blocks > 0 && spec.selector != MaskSpec::None && T >= spec.dense_below;
  if (!dynamic) {
    la.masks.push_back(build_block_mask(spec, T, H, Hkv, l, nullptr));
    return;
  }
  const int nb = (T + spec.block_size - 1) / spec.block_size;
  const int heads = spec.share_gqa_group ? Hkv : H;
  std::vector<float> scores((size_t)heads * nb * nb);
  const LayerParams& lp = layers_[l];
  for (int b = 0; b < B; b++) {
    if (spec.selector == MaskSpec::Pooled) {
      backend_->pooled_block_scores(scores.data(), la.q.data() + (size_t)b * H * T * D,
                                    la.k.data() + (size_t)b * Hkv * T * D, H, Hkv, T, D, spec.block_size,
                                    spec.share_gqa_group);
    } else {
      backend_->indexer_block_scores(scores.data(), la.ln1.data() + (size_t)b * T * C, dev_weights(lp.idx_q, false),
                                     dev_weights(lp.idx_k, false), dev_weights(lp.idx_h, false), indexer_shape_, T,
                                     spec.block_size, heads);
    }
    la.masks.push_back(build_block_mask(spec, T, H, Hkv, l, scores.data()));
  }
}


// ---------------------------------------------------------------------------- backward

void Model::backward(Activations& a, const float* dhidden, const int32_t* inputs, int B, int T) {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  Backend* bp = backend_.get();
  const int N = B * T, C = c.hidden_size, F = c.intermediate_size, H = c.num_heads, Hkv = c.num_kv_heads,
            D = c.head_dim, L = c.num_layers;
  const int stop = lowest_trainable_layer();  // layers below `stop` need no gradient

  if (stop >= L) {  // only the final norm (and head) can train
    if (params_[final_norm_index_].trainable) {
      Buf scratch(bp, (int64_t)N * C);
      be.rmsnorm_backward(scratch.data(), dev_grad(final_norm_index_), dhidden, a.resid[L].data(),
                          dev_weights(final_norm_index_, false), a.hidden_rstd.data(), N, C);
    }
    return;
  }
  BackwardBuffers& g = a.backward;
  g.dres.resize(bp, (int64_t)N * C);
  be.fill(g.dres.data(), 0.0f, g.dres.size());  // the norm's backward accumulates into it
  be.rmsnorm_backward(g.dres.data(), dev_grad(final_norm_index_), dhidden, a.resid[L].data(),
                      dev_weights(final_norm_index_, false), a.hidden_rstd.data(), N, C);
  for (Buf* b : {&g.dbranch, &g.dln}) b->resize(bp, (int64_t)N * C);
  for (Buf* b : {&g.dact, &g.dgate, &g.dup}) b->resize(bp, (int64_t)N * F);
  for (Buf* b : {&g.dmerged, &g.datt, &g.dq, &g.dqt}) b->resize(bp, (int64_t)N * H * D);
  for (Buf* b : {&g.dk, &g.dv, &g.dkt, &g.dvt}) b->resize(bp, (int64_t)N * Hkv * D);

  for (int l = L - 1; l >= std::max(stop, 0); l--) {
    mlp_backward(a, l, g);
    attention_backward(a, l, g);
  }
  if (stop < 0) {  // embeddings train: resid[0] = embedding_scale * table[token]
    if (c.embedding_scale != 1) be.scale(g.dres.data(), g.dres.data(), c.embedding_scale, (int64_t)N * C);
    be.embedding_backward(dev_grad(embed_index_), g.dres.data(), inputs, N, C);
  }
}

// resid[l+1] = resid_mid + rs * down(swiglu(gate(ln2), up(ln2)))
void Model::mlp_backward(Activations& a, int l, BackwardBuffers& g) {
  if (config_.is_moe_layer(l)) return moe_backward(a, l, g);
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  const int N = a.B * a.T, C = c.hidden_size, F = c.intermediate_size;
  auto dw = [&](size_t i) { return dev_grad(i); };
  auto w = [&](size_t i) { return dev_weights(i, false); };
  const LayerParams& lp = layers_[l];
  LayerActs& la = a.layers[l];
  be.scale(g.dbranch.data(), g.dres.data(), c.residual_scale, (int64_t)N * C);
  be.fill(g.dact.data(), 0.0f, g.dact.size());
  linear_backward(g.dact.data(), lp.down, g.dbranch.data(), la.act.data(), w(lp.down), N, F, C);
  be.swiglu_backward(g.dgate.data(), g.dup.data(), g.dact.data(), la.gate.data(), la.up.data(), (int64_t)N * F);
  be.fill(g.dln.data(), 0.0f, g.dln.size());
  linear_backward(g.dln.data(), lp.gate, g.dgate.data(), la.ln2.data(), w(lp.gate), N, C, F);
  linear_backward(g.dln.data(), lp.up, g.dup.data(), la.ln2.data(), w(lp.up), N, C, F);
  be.rmsnorm_backward(g.dres.data(), dw(lp.ln2), g.dln.data(), la.resid_mid.data(), w(lp.ln2), la.ln2_rstd.data(), N,
                      C);
}

// resid_mid = resid[l] + rs * o(attention(rope(q), rope(k), v))
void Model::attention_backward(Activations& a, int l, BackwardBuffers& g) {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  Backend* bp = backend_.get();
  const int B = a.B, T = a.T, N = B * T, C = c.hidden_size, H = c.num_heads, Hkv = c.num_kv_heads, D = c.head_dim;
  auto dw = [&](size_t i) { return dev_grad(i); };
  auto w = [&](size_t i) { return dev_weights(i, false); };
  const RopeArrays rope = rope_arrays();
  const LayerParams& lp = layers_[l];
  LayerActs& la = a.layers[l];
  be.scale(g.dbranch.data(), g.dres.data(), c.residual_scale, (int64_t)N * C);
  be.fill(g.dmerged.data(), 0.0f, g.dmerged.size());
  linear_backward(g.dmerged.data(), lp.o, g.dbranch.data(), la.merged.data(), w(lp.o), N, H * D, C);
  be.to_heads(g.datt.data(), g.dmerged.data(), B, T, H, D);
  if (!la.token_sel.empty()) {
    token_sparse_attention_backward(g.dq.data(), g.dk.data(), g.dv.data(), g.datt.data(), la.q.data(), la.k.data(),
                                    la.v.data(), la.att.data(), la.lse.data(), B, H, Hkv, T, D, la.token_sel.data());
  } else if (la.masks.empty() || la.masks[0].dense) {
    be.attention_backward(g.dq.data(), g.dk.data(), g.dv.data(), g.datt.data(), la.q.data(), la.k.data(), la.v.data(),
                          la.att.data(), la.lse.data(), B, H, Hkv, T, D, nullptr);
  } else {
    for_each_mask(la.masks, B, [&](int b0, int bb, const BlockMask& mask) {
      const size_t qo = (size_t)b0 * H * T * D, ko = (size_t)b0 * Hkv * T * D, lo = (size_t)b0 * H * T;
      be.attention_backward(g.dq.data() + qo, g.dk.data() + ko, g.dv.data() + ko, g.datt.data() + qo, la.q.data() + qo,
                            la.k.data() + ko, la.v.data() + ko, la.att.data() + qo, la.lse.data() + lo, bb, H, Hkv,
                            T, D, &mask);
    });
  }
  if (!la.dq_kl.empty()) {  // attention-KL distillation reaches q and k directly
    be.add_scaled(g.dq.data(), g.dq.data(), la.dq_kl.data(), 1.0f, g.dq.size());
    be.add_scaled(g.dk.data(), g.dk.data(), la.dk_kl.data(), 1.0f, g.dk.size());
  }
  if (la.ent_grads) {  // so does the attention-entropy term
    be.add_scaled(g.dq.data(), g.dq.data(), la.dq_ent.data(), 1.0f, g.dq.size());
    be.add_scaled(g.dk.data(), g.dk.data(), la.dk_ent.data(), 1.0f, g.dk.size());
  }
  be.from_heads(g.dqt.data(), g.dq.data(), B, T, H, D);
  be.from_heads(g.dkt.data(), g.dk.data(), B, T, Hkv, D);
  be.from_heads(g.dvt.data(), g.dv.data(), B, T, Hkv, D);
  be.rope_backward(g.dqt.data(), B, T, H, D, rope);
  be.rope_backward(g.dkt.data(), B, T, Hkv, D, rope);
  if (c.qk_norm) {
    g.dpre.resize(bp, (int64_t)N * H * D);
    be.fill(g.dpre.data(), 0.0f, g.dpre.size());
    be.rmsnorm_backward(g.dpre.data(), dw(lp.q_norm), g.dqt.data(), la.q_pre.data(), w(lp.q_norm), la.qn_rstd.data(),
                        N * H, D);
    g.dqt.swap(g.dpre);
    g.dpre.resize(bp, (int64_t)N * Hkv * D);
    be.fill(g.dpre.data(), 0.0f, g.dpre.size());
    be.rmsnorm_backward(g.dpre.data(), dw(lp.k_norm), g.dkt.data(), la.k_pre.data(), w(lp.k_norm), la.kn_rstd.data(),
                        N * Hkv, D);
    g.dkt.swap(g.dpre);
  }
  be.fill(g.dln.data(), 0.0f, g.dln.size());
  linear_backward(g.dln.data(), lp.q, g.dqt.data(), la.ln1.data(), w(lp.q), N, C, H * D);
  linear_backward(g.dln.data(), lp.k, g.dkt.data(), la.ln1.data(), w(lp.k), N, C, Hkv * D);
  linear_backward(g.dln.data(), lp.v, g.dvt.data(), la.ln1.data(), w(lp.v), N, C, Hkv * D);
  be.rmsnorm_backward(g.dres.data(), dw(lp.ln1), g.dln.data(), a.resid[l].data(), w(lp.ln1), la.ln1_rstd.data(), N, C);
}

}  // namespace engine
