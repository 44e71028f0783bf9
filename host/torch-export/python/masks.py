"""Block masks exactly as the engine builds them (native/src/block_mask.cpp).

A row (query block i) keeps, first reason wins: the diagonal, key blocks j < global_blocks,
every earlier block when i < global_rows, the window_blocks blocks before the diagonal; then
random_blocks extra blocks drawn among the free ones (splitmix64 seeded per seed, layer, mask
head and row; partial Fisher-Yates), then topk_blocks of the remaining free blocks with the
highest selector scores (ties to the lower block). Masks are (mask heads, blocks, blocks) bool.
"""
import math

import torch

M64 = 0xFFFFFFFFFFFFFFFF
GOLDEN = 0x9E3779B97F4A7C15


def _mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def row_seed(seed, layer, head, row):
    state = seed & M64
    for part in (layer, head, row):
        state ^= part & M64
        state = _mix((state + GOLDEN) & M64)
    return state


def n_blocks(seq, block_size):
    return (seq + block_size - 1) // block_size


def mask_heads(spec, heads, kv_heads):
    return kv_heads if spec["share_gqa_group"] else heads


def is_dynamic(spec, seq):
    return spec["topk_blocks"] > 0 and spec["selector"] != "none" and seq >= spec["dense_below"]


def build_block_mask(spec, seq, heads, kv_heads, layer, scores=None):
    """(mask heads, nb, nb) bool keep-map. `scores` (mask heads, nb, nb) is needed for top-k blocks."""
    nb = n_blocks(seq, spec["block_size"])
    mh = mask_heads(spec, heads, kv_heads)
    keep = [[[False] * nb for _ in range(nb)] for _ in range(mh)]
    dense = seq < spec["dense_below"]
    use_topk = (not dense) and spec["topk_blocks"] > 0 and spec["selector"] != "none"
    if use_topk and scores is None:
        raise ValueError("mask.topk_blocks: block scores are required when topk_blocks > 0 and a selector is set")
    g, gr, w = spec["global_blocks"], spec["global_rows"], spec["window_blocks"]
    for h in range(mh):
        for i in range(nb):
            row = keep[h][i]
            if dense:
                for j in range(i + 1):
                    row[j] = True
                continue
            free = []
            for j in range(i + 1):
                if j == i or j < g or i < gr or j >= i - w:
                    row[j] = True
                else:
                    free.append(j)
            draws = min(spec["random_blocks"], len(free))
            state = row_seed(spec["random_seed"], layer, h, i)
            for d in range(draws):
                state = (state + GOLDEN) & M64
                r = _mix(state)
                pick = d + r % (len(free) - d)
                free[d], free[pick] = free[pick], free[d]
                row[free[d]] = True
            if not use_topk:
                continue
            rest = free[draws:]
            k = min(spec["topk_blocks"], len(rest))
            s = scores[h][i]

            def key(j):
                v = s[j]
                return (1, 0.0, j) if math.isnan(v) else (0, -v, j)

            for j in sorted(rest, key=key)[:k]:
                row[j] = True
    return torch.tensor(keep, dtype=torch.bool)


def density(keep):
    """Kept causal block pairs / all causal block pairs, over every mask head."""
    mh, nb, _ = keep.shape
    return keep.sum().item() / (mh * nb * (nb + 1) / 2)


def flops_saved(keep, T, block_size):
    """Share of causal token-pair dot products the mask skips, over every mask head (BlockMask::flops_saved)."""
    mh, nb, _ = keep.shape
    lens = torch.tensor([min(block_size, T - b * block_size) for b in range(nb)], dtype=torch.float64)
    w = torch.tril(lens[:, None] * lens[None, :], -1) + torch.diag(lens * (lens + 1) / 2)
    total = mh * w.sum().item()
    return 1.0 - (keep.double().cpu() * w).sum().item() / total if total > 0 else 0.0


def pooled_block_scores(q, k, spec, block_size):
    """Pooled selector for one sequence: q (H, T, D), k (Hkv, T, D) after RoPE -> (mask heads, nb, nb) floats."""
    H, T, D = q.shape
    Hkv = k.shape[0]
    nb = n_blocks(T, block_size)
    group = H // Hkv

    def block_means(x):
        x = x.double()
        pad = nb * block_size - T
        sums = torch.nn.functional.pad(x, (0, 0, 0, pad)).reshape(x.shape[0], nb, block_size, D).sum(2)
        lens = torch.tensor([min(block_size, T - i * block_size) for i in range(nb)], dtype=torch.float64)
        return sums / lens[None, :, None]

    qbar, kbar = block_means(q), block_means(k)
    if spec["share_gqa_group"]:
        s = torch.einsum("hgid,hjd->hij", qbar.reshape(Hkv, group, nb, D), kbar)
    else:
        s = torch.einsum("hid,hjd->hij", qbar, kbar.repeat_interleave(group, 0))
    s = s.float()
    causal = torch.ones(nb, nb, dtype=torch.bool).tril()
    return s.masked_fill(~causal, float("-inf")).tolist()


def token_mask(keep, seq, block_size, heads):
    """(heads, T, T) bool: causal pairs inside kept blocks, per query head."""
    mh = keep.shape[0]
    idx = torch.arange(seq) // block_size
    m = keep[:, idx][:, :, idx]
    causal = torch.ones(seq, seq, dtype=torch.bool).tril()
    m = m & causal
    return m.repeat_interleave(heads // mh, 0)


def kept_lists(keep):
    """Per mask head and query block, the kept key blocks (ascending): the engine's kv lists."""
    return [[[j for j in range(len(row)) if row[j]] for row in head] for head in keep.tolist()]
