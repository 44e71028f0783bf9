"""Block-sparse attention of a Sparse Studio export, in PyTorch.

Copied into every export folder. Depends on torch only (any version from 1.13). It computes, for
one layer and any input, the key blocks the Sparse Studio engine would select and attends over
them:

- static blocks: the diagonal, ``global_blocks``, ``global_rows``, ``window_blocks`` and the
  seeded ``random_blocks`` (splitmix64, as native/src/block_mask.cpp draws them);
- dynamic blocks: the ``topk_blocks`` best remaining causal blocks of the layer's selector
  (``pooled`` on q/k after RoPE, ``indexer`` on the layer's normed input x, ties to the lower
  block), or ``infllm_v2``'s per-token selection (init and local blocks forced);
- one mask per KV head when ``share_gqa_group`` (the GQA group shares it), else per query head;
  causal; sequences shorter than ``dense_below`` are dense.

Layouts: q (B, H, T, D) after RoPE, k and v (B, Hkv, T, D), x (B, T, C) the input of the attention
block after its RMSNorm (what a Hugging Face attention module receives as ``hidden_states``).

    from sparse_attention import load_selectors
    selectors = load_selectors(export_dir)        # {layer: LayerSelector} for block-sparse layers
    sel = selectors[4]
    out = sel(q, k, v, x)                         # (B, H, T, D)
    block_mask = sel.block_mask(q, k, x)          # FlexAttention BlockMask (torch >= 2.5)
    bits = sel.bitmap(q, k, x)                    # InfLLM-style uint64 rows (as int64), see bitmap()

``forward`` uses FlexAttention where ``torch.nn.attention.flex_attention`` exists and a masked
softmax otherwise (``impl='masked'`` forces the fallback).
"""
import json
import math
import os
import struct

import torch

FORMAT = 'sparse-studio/1'
_U64 = (1 << 64) - 1
SELECTORS = ('none', 'pooled', 'indexer', 'infllm_v2')


def _splitmix64(state):
    """(new state, output) of splitmix64 on Python ints."""
    state = (state + 0x9E3779B97F4A7C15) & _U64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64
    return state, z ^ (z >> 31)


def _row_seed(seed, layer, head, row):
    state = seed & _U64
    for part in (layer, head, row):
        state ^= part & _U64
        state, state = _splitmix64(state)
    return state


def read_safetensors(path):
    """{name: tensor} of a safetensors file (F32, F64, I32, I64, U64 read as int64 bit patterns)."""
    dtypes = {'F32': torch.float32, 'F64': torch.float64, 'I32': torch.int32, 'I64': torch.int64, 'U64': torch.int64,
              'F16': torch.float16, 'BF16': torch.bfloat16, 'U8': torch.uint8}
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    body = bytearray(data[8 + n:])
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        begin, end = info['data_offsets']
        dtype = dtypes[info['dtype']]
        t = torch.frombuffer(body, dtype=dtype, count=(end - begin) // torch.tensor([], dtype=dtype).element_size(),
                             offset=begin) if end > begin else torch.zeros(0, dtype=dtype)
        out[name] = t.clone().reshape(info['shape'])
    return out


def save_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} (float32, int32, int64; name ending in '.bitmap' as U64)."""
    names = {torch.float32: 'F32', torch.float64: 'F64', torch.int32: 'I32', torch.int64: 'I64'}
    header, chunks, offset = {}, [], 0
    if metadata:
        header['__metadata__'] = {k: str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.contiguous().cpu()
        raw = t.numpy().tobytes()
        dtype = 'U64' if name.endswith('bitmap') and t.dtype == torch.int64 else names[t.dtype]
        header[name] = {'dtype': dtype, 'shape': list(t.shape), 'data_offsets': [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header)
    text += ' ' * ((8 - len(text) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text.encode())
        for c in chunks:
            f.write(c)


def _block_means(x, block_size):
    """x (..., T, C) -> (..., nb, C) float64 means over each block of tokens (the tail over its length)."""
    T = x.shape[-2]
    nb = (T + block_size - 1) // block_size
    pad = nb * block_size - T
    xd = x.double()
    if pad:
        xd = torch.cat([xd, xd.new_zeros(xd.shape[:-2] + (pad, xd.shape[-1]))], dim=-2)
    sums = xd.reshape(xd.shape[:-2] + (nb, block_size, xd.shape[-1])).sum(-2)
    counts = torch.full((nb,), float(block_size), dtype=torch.float64, device=x.device)
    counts[-1] = T - (nb - 1) * block_size
    return sums / counts[:, None]


def _top_by_score(score, candidates, k):
    """bool (..., n) of the k[...] best candidates per row: higher score first, ties to the lower index."""
    s = torch.where(candidates, score, torch.full_like(score, -math.inf))
    order = torch.sort(s, dim=-1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(s.shape[-1], device=s.device).expand_as(order).contiguous())
    return candidates & (rank < k.unsqueeze(-1))


class LayerSelector(torch.nn.Module):
    """One block-sparse layer: its mask spec, its selector's parameters, and attention over the selection."""

    def __init__(self, mask, layer, num_heads, num_kv_heads, indexer=None):
        super().__init__()
        if mask.get('selector', 'none') not in SELECTORS:
            raise ValueError('mask.selector: unknown selector %r' % mask.get('selector'))
        if num_heads % num_kv_heads:
            raise ValueError('num_attention_heads must be a multiple of num_key_value_heads')
        self.mask = dict(mask)
        self.layer = int(layer)
        self.num_heads = int(num_heads)
        self.num_kv_heads = int(num_kv_heads)
        self.block_size = int(mask['block_size'])
        self.selector = mask.get('selector', 'none')
        self.n_mask_heads = self.num_kv_heads if mask.get('share_gqa_group', True) else self.num_heads
        self._static = {}
        if self.selector == 'indexer':
            if indexer is None:
                raise ValueError('layer %d: the indexer selector needs its weights (wq, wk, weights_proj)' % layer)
            self.register_buffer('wq', indexer['wq'].float())
            self.register_buffer('wk', indexer['wk'].float())
            self.register_buffer('weights_proj', indexer['weights_proj'].float().reshape(-1))

    # ------------------------------------------------------------------ static blocks
    def static_blocks(self, T, device=None):
        """(kept, candidates): bool (n_mask_heads, nb, nb) static + random blocks, and the causal
        blocks left for top-k. Depends on T only (cached)."""
        key = (T, str(device))
        if key in self._static:
            return self._static[key]
        m, B = self.mask, self.block_size
        nb = (T + B - 1) // B
        kept = torch.zeros(self.n_mask_heads, nb, nb, dtype=torch.bool)
        cand = torch.zeros(self.n_mask_heads, nb, nb, dtype=torch.bool)
        dense = T < m.get('dense_below', 0)
        for h in range(self.n_mask_heads):
            for i in range(nb):
                if dense:
                    kept[h, i, :i + 1] = True
                    continue
                free = []
                for j in range(i + 1):
                    if j == i or j < m['global_blocks'] or i < m['global_rows'] or j >= i - m['window_blocks']:
                        kept[h, i, j] = True
                    else:
                        free.append(j)
                draws = min(m['random_blocks'], len(free))
                state = _row_seed(int(m['random_seed']), self.layer, h, i)
                for d in range(draws):
                    state, r = _splitmix64(state)
                    pick = d + r % (len(free) - d)
                    free[d], free[pick] = free[pick], free[d]
                    kept[h, i, free[d]] = True
                for j in free[draws:]:
                    cand[h, i, j] = True
        out = (kept.to(device), cand.to(device))
        self._static[key] = out
        return out

    # ------------------------------------------------------------------ selector scores
    def block_scores(self, q, k, x=None):
        """Selector scores (B, n_mask_heads, nb, nb) float32, -inf above the diagonal."""
        Bsz, H, T, D = q.shape
        nb = (T + self.block_size - 1) // self.block_size
        if self.selector == 'pooled':
            qbar, kbar = _block_means(q, self.block_size), _block_means(k, self.block_size)
            G = H // self.num_kv_heads
            if self.n_mask_heads == self.num_kv_heads:
                s = torch.einsum('bgid,bgjd->bgij', qbar.reshape(Bsz, self.num_kv_heads, G, nb, D).sum(2), kbar)
            else:
                s = torch.einsum('bhid,bhjd->bhij', qbar, kbar.repeat_interleave(G, dim=1))
        elif self.selector == 'indexer':
            if x is None:
                raise ValueError('layer %d: the indexer selector scores the normed layer input x (B, T, C)' % self.layer)
            xbar = _block_means(x, self.block_size)  # (B, nb, C)
            Hi = self.weights_proj.numel()
            Di = self.wk.shape[0]
            qi = (xbar @ self.wq.double().t()).reshape(Bsz, nb, Hi, Di)
            kj = xbar @ self.wk.double().t()
            a = torch.einsum('bihd,bjd->bijh', qi, kj) / math.sqrt(Di)
            s = (torch.relu(a) * self.weights_proj.double()).sum(-1)
            s = s.unsqueeze(1).expand(Bsz, self.n_mask_heads, nb, nb)
        else:
            raise ValueError('layer %d: selector %r has no block scores' % (self.layer, self.selector))
        causal = torch.ones(nb, nb, dtype=torch.bool, device=q.device).tril()
        return torch.where(causal, s.float(), torch.full((), -math.inf, device=q.device))

    # ------------------------------------------------------------------ selection
    def token_blocks(self, q, k, x=None):
        """bool (B, n_mask_heads, T, nb): the key blocks each query token of each mask head attends to."""
        Bsz, H, T, D = q.shape
        bs = self.block_size
        nb = (T + bs - 1) // bs
        rows = torch.arange(T, device=q.device) // bs
        if self.selector == 'infllm_v2' and T >= self.mask.get('dense_below', 0):
            return self._infllm_v2(q, k)
        kept, cand = self.static_blocks(T, q.device)
        kept = kept.unsqueeze(0).expand(Bsz, -1, -1, -1)
        topk = self.mask.get('topk_blocks', 0)
        dense = T < self.mask.get('dense_below', 0)
        if topk > 0 and self.selector not in ('none', 'infllm_v2') and not dense:
            scores = self.block_scores(q, k, x)
            c = cand.unsqueeze(0).expand_as(scores)
            k_row = torch.clamp(c.sum(-1), max=topk)
            kept = kept | _top_by_score(scores, c, k_row)
        return kept[:, :, rows, :]

    def _infllm_v2(self, q, k):
        m, bs = self.mask, self.block_size
        Bsz, H, T, D = q.shape
        Hkv, G = self.num_kv_heads, H // self.num_kv_heads
        kernel, stride = bs // 2, bs // 4
        per_block = bs // stride
        nb = (T + bs - 1) // bs
        local = m['window_blocks'] + 1
        k_max = min(nb, m['global_blocks'] + local + m['topk_blocks'])
        t = torch.arange(T, device=q.device)
        nc = (T - kernel) // stride + 1 if T >= kernel else 0
        if nc > 0:
            kc = k.double().unfold(2, kernel, stride).mean(-1)  # (B, Hkv, nc, D)
            logits = torch.einsum('bgztd,bgjd->bgztj', q.double().reshape(Bsz, Hkv, G, T, D), kc) / math.sqrt(D)
            visible = (torch.arange(nc, device=q.device)[None, :] * stride + kernel) <= (t[:, None] + 1)  # (T, nc)
            logits = logits.masked_fill(~visible, -math.inf)
            p = torch.softmax(logits, dim=-1)
            p = torch.nan_to_num(p, nan=0.0)  # rows with no visible compressed key
            score = p.sum(2)  # (B, Hkv, T, nc)
        else:
            score = q.new_zeros((Bsz, Hkv, T, 0), dtype=torch.float64)
        pooled = torch.zeros(Bsz, Hkv, T, nb, dtype=torch.float64, device=q.device)
        for b in range(nb):
            lo, hi = max(0, b * per_block - 1), min(nc - 1, (b + 1) * per_block - 1)
            if lo <= hi:
                pooled[..., b] = torch.clamp(score[..., lo:hi + 1].max(-1).values, min=0)
        qb = (t // bs)[:, None]
        blk = torch.arange(nb, device=q.device)[None, :]
        causal = blk <= qb
        forced = causal & ((blk < m['global_blocks']) | (qb - blk < local))
        pooled = pooled.masked_fill(forced, math.inf)
        take = torch.clamp(qb[:, 0] + 1, max=k_max).expand(Bsz, Hkv, T)
        return _top_by_score(pooled, causal.expand_as(pooled), take)

    def allowed(self, q, k, x=None):
        """bool (B, H, T, T): causal token pairs the layer computes."""
        blocks = self.token_blocks(q, k, x)
        Bsz, H, T, _ = q.shape
        per = blocks.repeat_interleave(H // self.n_mask_heads, dim=1)  # (B, H, T, nb)
        cols = torch.arange(T, device=q.device) // self.block_size
        tok = per[..., cols]
        return tok & torch.ones(T, T, dtype=torch.bool, device=q.device).tril()

    def bitmap(self, q, k, x=None):
        """InfLLM-style bitmaps int64 (B, n_mask_heads, T, words): one row per mask head (KV head when
        the group shares) and query token, bit j % 64 of word j // 64 = key block j (lowest block in
        the lowest bit). The int64 values are the uint64 bit patterns."""
        return blocks_to_bitmap(self.token_blocks(q, k, x))

    def density(self, q, k, x=None):
        """The density the engine's evaluation reports: kept causal block pairs / causal block pairs
        over the mask heads (mean over the batch), or for infllm_v2's per-token selection kept causal
        token pairs / causal token pairs over the KV heads."""
        T = q.shape[2]
        if self.selector == 'infllm_v2' and T >= self.mask.get('dense_below', 0):
            a = self.allowed(q, k, x)[:, ::self.num_heads // self.n_mask_heads]
            return a.sum().item() / (a.shape[0] * a.shape[1] * T * (T + 1) / 2)
        blocks = self.token_blocks(q, k, x)
        nb = blocks.shape[-1]
        rows = blocks[:, :, ::self.block_size, :]  # one row per query block
        kept = (rows & torch.ones(nb, nb, dtype=torch.bool, device=q.device).tril()).sum().item()
        return kept / (rows.shape[0] * rows.shape[1] * nb * (nb + 1) / 2)

    def block_mask(self, q, k, x=None):
        """A FlexAttention BlockMask (BLOCK_SIZE = the mask's block size) of this input's selection."""
        from torch.nn.attention.flex_attention import create_block_mask
        blocks = self.token_blocks(q, k, x)
        Bsz, H, T, _ = q.shape
        G, bs = H // self.n_mask_heads, self.block_size

        def mask_mod(b, h, q_idx, kv_idx):
            return (q_idx >= kv_idx) & blocks[b, h // G, q_idx, kv_idx // bs]
        return create_block_mask(mask_mod, Bsz, H, T, T, device=q.device, BLOCK_SIZE=bs)

    def forward(self, q, k, v, x=None, impl='auto'):
        """Attention output (B, H, T, D) over the selected blocks, scale 1/sqrt(D)."""
        if impl in ('auto', 'flex') and _has_flex():
            from torch.nn.attention.flex_attention import flex_attention
            return flex_attention(q, k, v, block_mask=self.block_mask(q, k, x), enable_gqa=self.num_heads != self.num_kv_heads)
        if impl == 'flex':
            raise RuntimeError('torch.nn.attention.flex_attention is not available in this torch')
        return masked_attention(q, k, v, self.allowed(q, k, x))


def _has_flex():
    """True where torch has FlexAttention (torch.nn.attention.flex_attention)."""
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
        return True
    except Exception:
        return False


def blocks_to_bitmap(blocks):
    """bool (..., nb) -> int64 (..., ceil(nb / 64)) uint64 bit patterns, block j in bit j % 64 of word j // 64."""
    nb = blocks.shape[-1]
    words = (nb + 63) // 64
    pad = words * 64 - nb
    b = blocks.long()
    if pad:
        b = torch.cat([b, b.new_zeros(b.shape[:-1] + (pad,))], dim=-1)
    weights = torch.tensor([1 << i if i < 63 else -(1 << 63) for i in range(64)], dtype=torch.int64, device=blocks.device)
    # distinct bits never carry, so the sum is the bitwise or (bit 63 by two's complement)
    return (b.reshape(b.shape[:-1] + (words, 64)) * weights).sum(-1)


def masked_attention(q, k, v, allowed):
    """Softmax attention restricted to `allowed` (B, H, T, T); GQA by repeating k/v per group."""
    H, Hkv = q.shape[1], k.shape[1]
    kk, vv = k.repeat_interleave(H // Hkv, dim=1), v.repeat_interleave(H // Hkv, dim=1)
    s = (q.float() @ kk.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~allowed, -math.inf)
    return (torch.softmax(s, dim=-1) @ vv.float()).to(q.dtype)


def load_selectors(export_dir, device=None):
    """{layer: LayerSelector} for the block-sparse layers of an export (config.json's
    sparse_attention, the indexer weights from selector.safetensors)."""
    with open(os.path.join(export_dir, 'config.json')) as f:
        config = json.load(f)
    sparse = config.get('sparse_attention')
    if not sparse or sparse.get('format') != FORMAT:
        raise ValueError('%s: config.json has no sparse_attention block of format %s' % (export_dir, FORMAT))
    weights = {}
    path = os.path.join(export_dir, 'selector.safetensors')
    if os.path.exists(path):
        weights = read_safetensors(path)
    out = {}
    for entry in sparse['layers']:
        if entry.get('attention') != 'block_sparse':
            continue
        layer, mask = entry['layer'], entry['mask']
        indexer = None
        if mask.get('selector') == 'indexer':
            prefix = 'model.layers.%d.self_attn.indexer.' % layer
            indexer = {n: weights[prefix + n + '.weight'] for n in ('wq', 'wk', 'weights_proj')}
        sel = LayerSelector(mask, layer, config['num_attention_heads'], config['num_key_value_heads'], indexer)
        out[layer] = sel.to(device) if device is not None else sel
    return out
