"""Compact decoder for the families the studio's engine supports (native/checkpoint/families.ts):
llama, qwen3 (per-head q/k RMSNorm before RoPE), minicpm (μP: embeddings x scale_emb, residual
branches x scale_depth / sqrt(L), final hidden / (hidden_size / dim_model_base) before the head,
tied embeddings by default). SwiGLU MLP, grouped-query attention, RoPE in HF rotate-half layout.
Parameter names are Hugging Face's, so checkpoints load and save without renaming.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from masks import token_mask

FAMILIES = {
    "llama": {"tie": False, "qk_norm": False, "scaled": False},
    "qwen3": {"tie": False, "qk_norm": True, "scaled": False},
    "minicpm": {"tie": True, "qk_norm": False, "scaled": True},
}

try:  # FlexAttention where torch provides it (>= 2.5)
    from torch.nn.attention.flex_attention import BlockMask, flex_attention
    HAVE_FLEX = True
except Exception:  # pragma: no cover - older torch
    HAVE_FLEX = False


def resolve_config(raw):
    t = raw.get("model_type")
    if t not in FAMILIES:
        raise ValueError(f"config.json: model_type must be one of {', '.join(FAMILIES)}, got {t!r}")
    fam = FAMILIES[t]
    hidden = raw["hidden_size"]
    heads = raw["num_attention_heads"]
    c = {
        "model_type": t, "vocab_size": raw["vocab_size"], "hidden_size": hidden,
        "intermediate_size": raw["intermediate_size"], "num_layers": raw["num_hidden_layers"],
        "heads": heads, "kv_heads": raw.get("num_key_value_heads") or heads,
        "head_dim": raw.get("head_dim") or hidden // heads, "eps": raw.get("rms_norm_eps", 1e-6),
        "rope_theta": raw.get("rope_theta", 10000.0),
        "tie": raw.get("tie_word_embeddings", fam["tie"]), "qk_norm": fam["qk_norm"],
        "embedding_scale": 1.0, "residual_scale": 1.0, "logit_divisor": 1.0,
    }
    rs = raw.get("rope_scaling")
    if rs and (rs.get("rope_type") or rs.get("type")) not in (None, "default"):
        raise ValueError(f"config.json: rope_scaling {rs.get('rope_type') or rs.get('type')} is not supported by this export (plain RoPE only)")
    if raw.get("hidden_act", "silu") != "silu":
        raise ValueError("config.json: only silu (SwiGLU) is supported")
    if fam["scaled"]:
        f32 = lambda x: float(torch.tensor(x, dtype=torch.float32))
        c["embedding_scale"] = f32(raw.get("scale_emb", 1))
        c["residual_scale"] = f32(f32(raw.get("scale_depth", 1)) / f32(math.sqrt(c["num_layers"])))
        c["logit_divisor"] = f32(f32(hidden) / f32(raw.get("dim_model_base", hidden)))
    return c


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def rope_tables(seq, dim, theta, device):
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64, device=device).float() / dim))
    freqs = torch.outer(torch.arange(seq, device=device).float(), inv)
    emb = torch.cat([freqs, freqs], -1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    a, b = x.chunk(2, -1)
    return torch.cat([-b, a], -1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, H, Hkv, D = c["hidden_size"], c["heads"], c["kv_heads"], c["head_dim"]
        self.H, self.Hkv, self.D = H, Hkv, D
        self.q_proj = nn.Linear(C, H * D, bias=False)
        self.k_proj = nn.Linear(C, Hkv * D, bias=False)
        self.v_proj = nn.Linear(C, Hkv * D, bias=False)
        self.o_proj = nn.Linear(H * D, C, bias=False)
        if c["qk_norm"]:
            self.q_norm = RMSNorm(D, c["eps"])
            self.k_norm = RMSNorm(D, c["eps"])
        self.qk_norm = c["qk_norm"]

    def forward(self, x, rope, mask):
        """mask: None (dense causal) or a dict with 'keep' (B or 1, mask heads, nb, nb) and 'block_size'."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.H, self.D)
        k = self.k_proj(x).view(B, T, self.Hkv, self.D)
        v = self.v_proj(x).view(B, T, self.Hkv, self.D).transpose(1, 2)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = rope
        q = (q * cos[:T, None] + rotate_half(q) * sin[:T, None]).transpose(1, 2)
        k = (k * cos[:T, None] + rotate_half(k) * sin[:T, None]).transpose(1, 2)
        out = attend(q, k, v, mask)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, self.H * self.D)), q, k


def allowed(mask, T, H, device):
    """(B or 1, H, T, T) bool of the kept causal token pairs."""
    if mask is None:
        return torch.ones(T, T, dtype=torch.bool, device=device).tril()[None, None]
    return torch.stack([token_mask(k, T, mask["block_size"], H) for k in mask["keep"].cpu()]).to(device)


def attend(q, k, v, mask):
    B, H, T, D = q.shape
    group = H // k.shape[1]
    if HAVE_FLEX and mask is not None and q.is_cuda and mask.get("flex") is not None:
        return flex_attention(q, k, v, block_mask=mask["flex"], enable_gqa=group > 1)
    kk, vv = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    s = (q @ kk.transpose(-1, -2)) / math.sqrt(D)
    s = s.masked_fill(~allowed(mask, T, H, q.device), float("-inf"))
    return torch.softmax(s.float(), -1).to(q.dtype) @ vv


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, Fh = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(C, Fh, bias=False)
        self.up_proj = nn.Linear(C, Fh, bias=False)
        self.down_proj = nn.Linear(Fh, C, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["eps"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["eps"])
        self.mlp = MLP(c)
        self.rs = c["residual_scale"]

    def forward(self, x, rope, mask):
        a, q, k = self.self_attn(self.input_layernorm(x), rope, mask)
        x = x + a * self.rs if self.rs != 1 else x + a
        m = self.mlp(self.post_attention_layernorm(x))
        x = x + m * self.rs if self.rs != 1 else x + m
        return x, q, k


class Inner(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["num_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["eps"])


class CausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = Inner(c)
        if not c["tie"]:
            self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        self._rope = None

    def head_weight(self):
        return self.model.embed_tokens.weight if self.c["tie"] else self.lm_head.weight

    def rope(self, T, device):
        if self._rope is None or self._rope[0].shape[0] < T or self._rope[0].device != device:
            self._rope = rope_tables(T, self.c["head_dim"], self.c["rope_theta"], device)
        return self._rope

    def forward(self, ids, masks=None):
        """ids (B, T). masks: per layer None or a mask dict.
        Returns (hidden after the final norm, [(q, k) per layer], logits)."""
        c = self.c
        x = self.model.embed_tokens(ids)
        if c["embedding_scale"] != 1:
            x = x * c["embedding_scale"]
        rope = self.rope(ids.shape[1], ids.device)
        qk = []
        for l, layer in enumerate(self.model.layers):
            x, q, k = layer(x, rope, masks[l] if masks else None)
            qk.append((q, k))
        hidden = self.model.norm(x)
        return hidden, qk, self.logits(hidden)

    def logits(self, hidden):
        h = hidden / self.c["logit_divisor"] if self.c["logit_divisor"] != 1 else hidden
        return h @ self.head_weight().t()


def load_state(model, tensors):
    own = dict(model.named_parameters())
    for name, p in own.items():
        if name not in tensors:
            raise KeyError(f"checkpoint: missing tensor {name}")
        t = tensors[name]
        if tuple(t.shape) != tuple(p.shape):
            raise ValueError(f"checkpoint: tensor {name}: shape {list(t.shape)}, expected {list(p.shape)}")
        with torch.no_grad():
            p.copy_(t.to(p.dtype))
    for name in tensors:
        if name in own or name.endswith("rotary_emb.inv_freq") or (name == "lm_head.weight" and model.c["tie"]):
            continue
        raise KeyError(f"checkpoint: unexpected tensor {name}")


def param_kinds(name):
    """(0-based layer or None, parameter kind) of a Hugging Face tensor name."""
    if name.startswith("model.layers."):
        layer = int(name.split(".")[2])
        rest = name.split(".", 3)[3]
        for kind, keys in (("q", ("q_proj",)), ("k", ("k_proj",)), ("v", ("v_proj",)), ("o", ("o_proj",)),
                           ("mlp", ("mlp.",)), ("norms", ("layernorm", "q_norm", "k_norm")), ("selector", ("indexer",))):
            if any(k in rest for k in keys):
                return layer, kind
        raise ValueError(f"unknown tensor {name}")
    if name.startswith("model.norm"):
        return None, "norms"
    return None, "embeddings"
