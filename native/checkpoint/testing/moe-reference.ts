// Test support: a naive float64 Qwen3-MoE block and its routing metrics, written from transformers'
// Qwen3MoeSparseMoeBlock and load_balancing_loss_func (independently of the engine): per token,
// softmax over every expert, top-k by probability with ties to the lower expert index, the chosen
// probabilities renormalised when norm_topk_prob, and the weighted sum of the chosen experts'
// SwiGLU outputs. reference.ts calls referenceMoeBlock for the MoE layers.
import type { ModelConfig } from '../../engine-api';
import { referenceForward } from './reference';

type Weights = Map<string, Float64Array | Float32Array>;

/** One MoE layer's routing over one sequence. */
export interface RouterRecord { layer: number; T: number; probs: Float64Array; experts: number[][] }

/** transformers' rule for which decoder layers hold a sparse MoE block. */
export function referenceIsMoeLayer(c: ModelConfig, l: number): boolean {
  const experts = c.num_experts ?? 0;
  if (experts <= 0) return false;
  if ((c.mlp_only_layers ?? []).includes(l)) return false;
  return (l + 1) % (c.decoder_sparse_step ?? 1) === 0;
}

const silu = (x: number) => x / (1 + Math.exp(-x));

/** The MoE block of layer `l` over h (T, C), the post-attention-normed hidden states. */
export function referenceMoeBlock(c: ModelConfig, w: Weights, l: number, h: Float64Array, T: number, record?: RouterRecord[]): Float64Array {
  const C = c.hidden_size, E = c.num_experts!, K = c.num_experts_per_tok!, F = c.moe_intermediate_size!;
  const get = (name: string) => {
    const t = w.get(`model.layers.${l}.mlp.${name}`);
    if (!t) throw new Error(`reference: missing model.layers.${l}.mlp.${name}`);
    return t;
  };
  const router = get('gate.weight');
  const out = new Float64Array(T * C);
  const probs = new Float64Array(T * E);
  const chosenAll: number[][] = [];
  for (let t = 0; t < T; t++) {
    const x = h.subarray(t * C, (t + 1) * C);
    const z = Array.from({ length: E }, (_, e) => {
      let s = 0;
      for (let i = 0; i < C; i++) s += x[i] * router[e * C + i];
      return s;
    });
    const m = Math.max(...z);
    const ex = z.map((v) => Math.exp(v - m));
    const sum = ex.reduce((a, b) => a + b, 0);
    const p = ex.map((v) => v / sum);
    p.forEach((v, e) => (probs[t * E + e] = v));
    const order = Array.from({ length: E }, (_, e) => e).sort((a, b) => (p[b] !== p[a] ? p[b] - p[a] : a - b));
    const chosen = order.slice(0, K);
    chosenAll.push(chosen);
    const total = chosen.reduce((a, e) => a + p[e], 0);
    for (const e of chosen) {
      const weight = c.norm_topk_prob ? p[e] / total : p[e];
      const g = get(`experts.${e}.gate_proj.weight`), u = get(`experts.${e}.up_proj.weight`), d = get(`experts.${e}.down_proj.weight`);
      const act = new Float64Array(F);
      for (let f = 0; f < F; f++) {
        let a = 0, b = 0;
        for (let i = 0; i < C; i++) { a += x[i] * g[f * C + i]; b += x[i] * u[f * C + i]; }
        act[f] = silu(a) * b;
      }
      for (let o = 0; o < C; o++) {
        let s = 0;
        for (let f = 0; f < F; f++) s += act[f] * d[o * F + f];
        out[t * C + o] += weight * s;
      }
    }
  }
  record?.push({ layer: l, T, probs, experts: chosenAll });
  return out;
}

export interface ReferenceRouting {
  /** transformers' load_balancing_loss_func over every MoE layer's rows together. */
  aux: number;
  /** Mean over MoE layers of Var(u) + mean |u - 1/E|, u the mean router probability per expert (unweighted). */
  seed: number;
  usage: Record<string, number[]>;
  entropy: Record<string, number>;
}

/** Routing metrics of the records of a batch (every sequence, every MoE layer). */
export function referenceRouting(c: ModelConfig, records: RouterRecord[]): ReferenceRouting {
  const E = c.num_experts!, K = c.num_experts_per_tok!;
  const layers = [...new Set(records.map((r) => r.layer))].sort((a, b) => a - b);
  // load_balancing_loss_func: tokens_per_expert = mean over rows of the top-k one-hot (k, E);
  // router_prob_per_expert = mean over rows of the softmax; E * sum(tokens_per_expert * router_prob).
  let rows = 0;
  const hits = new Float64Array(E), prob = new Float64Array(E);
  const usage: Record<string, number[]> = {}, entropy: Record<string, number> = {};
  let seed = 0;
  for (const l of layers) {
    const mine = records.filter((r) => r.layer === l);
    const count = new Float64Array(E), soft = new Float64Array(E);
    let tokens = 0, ent = 0;
    for (const r of mine) {
      for (let t = 0; t < r.T; t++) {
        for (const e of r.experts[t]) count[e]++;
        for (let e = 0; e < E; e++) {
          const p = r.probs[t * E + e];
          soft[e] += p;
          if (p > 0) ent -= p * Math.log(p);
        }
      }
      tokens += r.T;
    }
    for (let e = 0; e < E; e++) { hits[e] += count[e]; prob[e] += soft[e]; }
    rows += tokens;
    usage[String(l)] = Array.from(count, (n) => n / (tokens * K));
    entropy[String(l)] = ent / tokens;
    const u = Array.from(soft, (s) => s / tokens);
    const mean = u.reduce((a, b) => a + b, 0) / E;
    seed += u.reduce((a, v) => a + (v - mean) ** 2, 0) / E + u.reduce((a, v) => a + Math.abs(v - 1 / E), 0) / E;
  }
  let aux = 0;
  for (let e = 0; e < E; e++) aux += (hits[e] / rows) * (prob[e] / rows);
  return { aux: aux * E, seed: seed / layers.length, usage, entropy };
}

/** Mean next-token cross-entropy of a (B, T+1) batch and the routing metrics of its forward. */
export function referenceMoeLoss(c: ModelConfig, w: Weights, tokens: ArrayLike<number>, B: number, T: number): { ce: number; routing: ReferenceRouting } {
  const records: RouterRecord[] = [];
  const V = c.vocab_size;
  let total = 0;
  for (let b = 0; b < B; b++) {
    const row = Array.from({ length: T + 1 }, (_, i) => tokens[b * (T + 1) + i]);
    const { logits } = referenceForward(c, w, row.slice(0, T), undefined, records);
    for (let t = 0; t < T; t++) {
      let m = -Infinity;
      for (let j = 0; j < V; j++) m = Math.max(m, logits[t * V + j]);
      let z = 0;
      for (let j = 0; j < V; j++) z += Math.exp(logits[t * V + j] - m);
      total += m + Math.log(z) - logits[t * V + row[t + 1]];
    }
  }
  return { ce: total / (B * T), routing: referenceRouting(c, records) };
}
