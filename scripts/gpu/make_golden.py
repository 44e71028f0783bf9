"""Writes golden fixtures from Hugging Face transformers for tiny Llama and Qwen3 models:
config.json + model.safetensors + golden.json (input ids, logits of the first 4 positions,
mean next-token loss). The CPU engine is checked against them in CI once they are committed
(native/test/golden/<arch>/). MiniCPM needs trust_remote_code (its modelling file is not in
transformers), so it is checked against our own TypeScript reference instead."""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen3Config

out_root = sys.argv[1] if len(sys.argv) > 1 else "golden"
torch.manual_seed(0)
common = dict(vocab_size=97, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6, rope_theta=10000.0)
for name, cfg in {"llama": LlamaConfig(**common, tie_word_embeddings=False),
                  "qwen3": Qwen3Config(**common, head_dim=16, tie_word_embeddings=True)}.items():
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32).eval()
    path = os.path.join(out_root, name)
    model.save_pretrained(path, safe_serialization=True)
    ids = torch.randint(0, cfg.vocab_size, (1, 33))
    with torch.no_grad():
        out = model(ids, labels=ids)
    json.dump({"input_ids": ids[0].tolist(), "loss": out.loss.item(), "logits_head": out.logits[0, :4].tolist()},
              open(os.path.join(path, "golden.json"), "w"))
    print(name, "loss", out.loss.item())
