"""Times torch's FlexAttention on the exact BlockMask our engine built (written by cuda_bench as
raw int32 kv_num_blocks / kv_indices) and dense SDPA flash attention, forward + backward, with
the shapes of cuda_bench (B=1, H=16, Hkv=4, D=128, bf16). Prints one JSON object per line."""
import json
import sys

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.flex_attention import BlockMask, flex_attention

B, H, HKV, D, BLOCK = 1, 16, 4, 128, 64


def timed(fn, reps):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def main(mask_dir, lengths):
    flex = torch.compile(flex_attention)
    for T in lengths:
        nb = T // BLOCK
        kv_num = torch.from_numpy(np.fromfile(f"{mask_dir}/kv_num_blocks_{T}.i32", dtype=np.int32).reshape(1, HKV, nb)).cuda()
        kv_idx = torch.from_numpy(np.fromfile(f"{mask_dir}/kv_indices_{T}.i32", dtype=np.int32).reshape(1, HKV, nb, nb)).cuda()
        # Our mask is per GQA group: each query head of a group uses its group's row.
        kv_num = kv_num.repeat_interleave(H // HKV, dim=1)
        kv_idx = kv_idx.repeat_interleave(H // HKV, dim=1)
        causal = lambda b, h, q, k: q >= k
        mask = BlockMask.from_kv_blocks(kv_num, kv_idx, BLOCK_SIZE=BLOCK, mask_mod=causal, seq_lengths=(T, T))
        q = torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        k = torch.randn(B, HKV, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        v = torch.randn(B, HKV, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        reps = 2 if T >= 131072 else 5
        out = flex(q, k, v, block_mask=mask, enable_gqa=True)
        fwd = timed(lambda: flex(q, k, v, block_mask=mask, enable_gqa=True), reps)
        g = torch.randn_like(out)
        both = timed(lambda: flex(q, k, v, block_mask=mask, enable_gqa=True).backward(g), reps)
        print(json.dumps({"bench": "torch_attention", "impl": "flex_attention", "seq": T, "ms_fwd": round(fwd, 3), "ms_bwd": round(both - fwd, 3)}))
        kd, vd = k.repeat_interleave(H // HKV, dim=1).detach().requires_grad_(), v.repeat_interleave(H // HKV, dim=1).detach().requires_grad_()
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            sdpa = lambda: torch.nn.functional.scaled_dot_product_attention(q, kd, vd, is_causal=True)
            fwd = timed(sdpa, reps)
            both = timed(lambda: sdpa().backward(g), reps)
        print(json.dumps({"bench": "torch_attention", "impl": "sdpa_flash_dense", "seq": T, "ms_fwd": round(fwd, 3), "ms_bwd": round(both - fwd, 3)}))


if __name__ == "__main__":
    main(sys.argv[1], [int(x) for x in sys.argv[2:]] or [8192, 32768, 131072])
