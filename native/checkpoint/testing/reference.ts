// Test support: a naive float64 forward of the Llama-family decoder, written straight from the
// Hugging Face modelling code (llama, qwen3 QK-norm, minicpm scaling, GQA, RoPE with every
// rope_scaling type of rope-reference.ts, LongRoPE with MiniCPM's always-long factor choice). The
// engine's loss and gradients are held to it.
import type { ModelConfig } from '../../engine-api';
import { referenceIsMoeLayer, referenceMoeBlock, type RouterRecord } from './moe-reference';
import { referenceRopeParameters } from './rope-reference';

type Weights = Map<string, Float64Array | Float32Array>;

function rmsnorm(x: Float64Array, rows: number, C: number, w: ArrayLike<number>, eps: number): Float64Array {
  const out = new Float64Array(rows * C);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < C; i++) ss += x[r * C + i] ** 2;
    const rstd = 1 / Math.sqrt(ss / C + eps);
    for (let i = 0; i < C; i++) out[r * C + i] = x[r * C + i] * rstd * w[i];
  }
  return out;
}

// out (rows, O) = x (rows, I) @ W (O, I)^T
function linear(x: Float64Array, rows: number, I: number, W: ArrayLike<number>, O: number): Float64Array {
  const out = new Float64Array(rows * O);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < O; o++) {
      let s = 0;
      for (let i = 0; i < I; i++) s += x[r * I + i] * W[o * I + i];
      out[r * O + o] = s;
    }
  }
  return out;
}

function ropeTables(c: ModelConfig, T: number): { cos: Float64Array; sin: Float64Array } {
  const half = c.head_dim / 2;
  const { invFreq: inv, attentionFactor: mscale } = referenceRopeParameters(c, T);
  const cos = new Float64Array(T * half), sin = new Float64Array(T * half);
  for (let p = 0; p < T; p++) {
    for (let i = 0; i < half; i++) {
      cos[p * half + i] = Math.cos(p * inv[i]) * mscale;
      sin[p * half + i] = Math.sin(p * inv[i]) * mscale;
    }
  }
  return { cos, sin };
}

// In place on x (T, heads, D), rotate-half.
function rope(x: Float64Array, T: number, heads: number, D: number, t: { cos: Float64Array; sin: Float64Array }): void {
  const half = D / 2;
  for (let p = 0; p < T; p++) {
    for (let h = 0; h < heads; h++) {
      const o = (p * heads + h) * D;
      for (let i = 0; i < half; i++) {
        const a = x[o + i], b = x[o + i + half], c = t.cos[p * half + i], s = t.sin[p * half + i];
        x[o + i] = a * c - b * s;
        x[o + i + half] = b * c + a * s;
      }
    }
  }
}

/**
 * Sparse attention for the reference: given a layer's rotated q (T, H, D) and k (T, Hkv, D), the
 * keys each (KV head, query) may read (null: dense causal attention for that layer).
 */
export type KeyMask = (layer: number, q: Float64Array, k: Float64Array) => ((kvHead: number, i: number, j: number) => boolean) | null;

/**
 * Final hidden states (T, C) and logits (T, V) of one sequence of input ids; `routing` collects the
 * MoE layers' routing; `attnEntropy` (one entry per layer) accumulates each layer's sum over heads
 * and query rows of the attention entropy -sum_j p_ij log p_ij (nats).
 */
export function referenceForward(c: ModelConfig, w: Weights, ids: ArrayLike<number>, keyMask?: KeyMask, routing?: RouterRecord[], attnEntropy?: Float64Array): { hidden: Float64Array; logits: Float64Array } {
  const T = ids.length, C = c.hidden_size, F = c.intermediate_size, H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim, V = c.vocab_size;
  const get = (name: string) => {
    const t = w.get(name);
    if (!t) throw new Error(`reference: missing ${name}`);
    return t;
  };
  const minicpm = c.model_type === 'minicpm';
  const rs = minicpm ? c.scale_depth! / Math.sqrt(c.num_hidden_layers) : 1;
  const emb = get('model.embed_tokens.weight');
  let x = new Float64Array(T * C);
  for (let t = 0; t < T; t++) for (let i = 0; i < C; i++) x[t * C + i] = emb[ids[t] * C + i] * (minicpm ? c.scale_emb! : 1);
  const tables = ropeTables(c, T);
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const h = rmsnorm(x, T, C, get(p + 'input_layernorm.weight'), c.rms_norm_eps);
    let q = linear(h, T, C, get(p + 'self_attn.q_proj.weight'), H * D);
    let k = linear(h, T, C, get(p + 'self_attn.k_proj.weight'), Hkv * D);
    const v = linear(h, T, C, get(p + 'self_attn.v_proj.weight'), Hkv * D);
    if (c.model_type === 'qwen3' || c.model_type === 'qwen3_moe') {
      q = rmsnorm(q, T * H, D, get(p + 'self_attn.q_norm.weight'), c.rms_norm_eps);
      k = rmsnorm(k, T * Hkv, D, get(p + 'self_attn.k_norm.weight'), c.rms_norm_eps);
    }
    rope(q, T, H, D, tables);
    rope(k, T, Hkv, D, tables);
    const att = new Float64Array(T * H * D);
    const allowed = keyMask?.(l, q, k) ?? null;
    for (let hh = 0; hh < H; hh++) {
      const kv = Math.floor(hh / (H / Hkv));
      for (let i = 0; i < T; i++) {
        const s = new Float64Array(i + 1);
        let m = -Infinity;
        for (let j = 0; j <= i; j++) {
          if (allowed && !allowed(kv, i, j)) { s[j] = -Infinity; continue; }
          let d = 0;
          for (let e = 0; e < D; e++) d += q[(i * H + hh) * D + e] * k[(j * Hkv + kv) * D + e];
          s[j] = d / Math.sqrt(D);
          m = Math.max(m, s[j]);
        }
        let z = 0;
        for (let j = 0; j <= i; j++) z += (s[j] = Math.exp(s[j] - m));
        if (attnEntropy) for (let j = 0; j <= i; j++) if (s[j] > 0) attnEntropy[l] -= (s[j] / z) * Math.log(s[j] / z);
        for (let j = 0; j <= i; j++) for (let e = 0; e < D; e++) att[(i * H + hh) * D + e] += (s[j] / z) * v[(j * Hkv + kv) * D + e];
      }
    }
    const o = linear(att, T, H * D, get(p + 'self_attn.o_proj.weight'), C);
    for (let i = 0; i < T * C; i++) x[i] += rs * o[i];
    const h2 = rmsnorm(x, T, C, get(p + 'post_attention_layernorm.weight'), c.rms_norm_eps);
    let d: Float64Array;
    if (referenceIsMoeLayer(c, l)) {
      d = referenceMoeBlock(c, w, l, h2, T, routing);
    } else {
      const g = linear(h2, T, C, get(p + 'mlp.gate_proj.weight'), F);
      const u = linear(h2, T, C, get(p + 'mlp.up_proj.weight'), F);
      for (let i = 0; i < T * F; i++) g[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
      d = linear(g, T, F, get(p + 'mlp.down_proj.weight'), C);
    }
    const next = new Float64Array(T * C);
    for (let i = 0; i < T * C; i++) next[i] = x[i] + rs * d[i];
    x = next;
  }
  const hidden = rmsnorm(x, T, C, get('model.norm.weight'), c.rms_norm_eps);
  const scaled = hidden.map((v) => v / (minicpm ? C / c.dim_model_base! : 1));
  const head = c.tie_word_embeddings ? emb : get('lm_head.weight');
  return { hidden, logits: linear(scaled, T, C, head, V) };
}

/** Mean next-token cross-entropy over a (B, T+1) token batch, as the engine defines it. */
export function referenceLoss(c: ModelConfig, w: Weights, tokens: ArrayLike<number>, B: number, T: number, keyMask?: KeyMask): number {
  let total = 0;
  for (let b = 0; b < B; b++) {
    const row = Array.from({ length: T + 1 }, (_, i) => tokens[b * (T + 1) + i]);
    const { logits } = referenceForward(c, w, row.slice(0, T), keyMask);
    const V = c.vocab_size;
    for (let t = 0; t < T; t++) {
      let m = -Infinity;
      for (let j = 0; j < V; j++) m = Math.max(m, logits[t * V + j]);
      let z = 0;
      for (let j = 0; j < V; j++) z += Math.exp(logits[t * V + j] - m);
      total += m + Math.log(z) - logits[t * V + row[t + 1]];
    }
  }
  return total / (B * T);
}

/** Mean over layers, sequences, query heads and query rows of the attention entropy (nats), as the engine's attn_entropy. */
export function referenceAttentionEntropy(c: ModelConfig, w: Weights, tokens: ArrayLike<number>, B: number, T: number, keyMask?: KeyMask): number {
  const sums = new Float64Array(c.num_hidden_layers);
  for (let b = 0; b < B; b++) referenceForward(c, w, Array.from({ length: T }, (_, i) => tokens[b * (T + 1) + i]), keyMask, undefined, sums);
  return sums.reduce((a, v) => a + v, 0) / (c.num_hidden_layers * B * c.num_attention_heads * T);
}
